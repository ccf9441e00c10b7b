"""Alert delivery through the real daemon (`python -m auditor run` in a subprocess).

The config's only chain is unreachable, so every cycle fails and enqueues its
`stale_data` transition, as it would in production; a backlog left by
earlier cycles is written to the real store beforehand (real audit seqs).
Webhooks go to a real signed receiver on 127.0.0.1 that can be down, slow or
answer 500. Waits are bounded for safety, never asserted as speeds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from receivers import WebhookReceiver

from auditor.model import Transition
from auditor.notify import WebhookNotifier
from auditor.outbox import deliver_pending
from auditor.outbox_lanes import FLUSH_ROWS
from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, Secret
from auditor.store import Store, transition_to_json

pytestmark = pytest.mark.integration

SECRET = "whsec-delivery-daemon-7c1e"
PENDING = "delivered_at IS NULL AND dead_at IS NULL"


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    end = time.monotonic() + limit  # a safety bound: a broken daemon fails, never hangs
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Site:
    """A config, its store and a daemon process."""

    def __init__(self, tmp: Path, hook_url: str, *, poll_every: str = "1h"):
        self.tmp, self.db = tmp, tmp / "auditor.db"
        self.cfg = tmp / "auditor.yaml"
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cfg.write_text(f"""
exchange: {{id: dl-ex, name: Delivery Test, fiat: JPY}}
store: {{path: "{self.db}"}}
daemon: {{listen: "127.0.0.1:0"}}
schedule: {{poll_every: {poll_every}}}
chains:
  ethereum:
    type: ethereum
    rpc: [{{url: "http://127.0.0.1:9/", timeout: 1s}}]
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot-1, chain: ethereum, tier: hot, role: customer,
     addresses: ["0x00000000000000000000000000000000000000aa"]}}
prices: {{source: static, static: {{ETH: "450000"}}}}
rules: {{preset: none}}
alerts:
  retry: {{first: 1s, max: 2s, budget: 1h}}
  channels:
    - {{name: soc, type: webhook, url: "{hook_url}", secret: "${{DL_HOOK_SECRET}}", timeout: 5s}}
  routes:
    - {{severity: [critical, warning], channels: [soc]}}
""")

    def backlog(self, n: int) -> None:
        """`n` rows for soc, one transition each, as earlier cycles left them."""
        at = datetime.now(UTC)
        with Store.open(self.db) as store:
            for i in range(n):
                seq = store.append_audit("note", {"backlog": i}, at).seq
                t = Transition(kind="firing", fingerprint=f"{i:064x}", rule="hot_drain",
                               subject=f"eth-hot-1/ETH#{i}", severity="critical", at=at,
                               since=at, summary="hot wallet fell", value=Decimal("0.42"),
                               threshold=Decimal("0.2"))
                store.enqueue("soc", [transition_to_json(t, seq)], at)

    def start(self) -> None:
        env = {**os.environ, "DL_HOOK_SECRET": SECRET}
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "auditor", "run", "-c", str(self.cfg)],
                stdout=subprocess.DEVNULL, stderr=err, env=env)

    def sql(self, query: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query).fetchall()
        finally:
            conn.close()

    def pending(self) -> int:
        return int(self.sql(f"SELECT count(*) FROM outbox WHERE {PENDING}")[0][0])

    def outbox_seqs(self) -> list[int]:
        """Every seq in the outbox, in row order (the order soc must get them)."""
        import json

        rows = self.sql("SELECT payload FROM outbox WHERE channel = 'soc' ORDER BY id")
        return [t["seq"] for (payload,) in rows for t in json.loads(str(payload))]

    def attempts_of_oldest(self) -> int:
        rows = self.sql(f"SELECT attempts FROM outbox WHERE {PENDING} ORDER BY id LIMIT 1")
        return int(rows[0][0]) if rows else 0

    def wait_for(self, predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
        """`wait_for`, with the daemon's last log lines when it times out."""
        try:
            wait_for(predicate, what, limit)
        except AssertionError as e:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise AssertionError(f"{e}; daemon log:\n" + "\n".join(tail)) from None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no handler, no cleanup
            self.proc.wait(30)


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET.encode()) as receiver:
        yield receiver


@pytest.fixture
def site(tmp_path: Path, rx: WebhookReceiver) -> Iterator[Site]:
    s = Site(tmp_path, rx.url("/hooks/soc"))
    yield s
    s.kill()


def delivered_seqs(rx: WebhookReceiver) -> list[int]:
    """Seqs of the requests the receiver accepted (200), in arrival order. A body
    cut short by `kill -9` mid-send is no JSON: its sender never got the 200."""
    complete = [r for r in rx.requests
                if r.status == 200 and len(r.body) == int(r.headers.get("content-length", -1))]
    return [a["seq"] for r in complete for a in r.json()["alerts"]]


def test_receiver_down_then_up_gets_every_transition_once_in_seq_order(
        site: Site, rx: WebhookReceiver) -> None:
    site.backlog(30)
    rx.stop()
    site.start()
    site.wait_for(lambda: site.attempts_of_oldest() >= 2, "two failed attempts while down")
    assert site.pending() == 31  # the backlog and the first cycle's stale_data
    rx.start()
    site.wait_for(lambda: site.pending() == 0, "the backlog delivered after recovery")
    assert delivered_seqs(rx) == site.outbox_seqs()  # in order, none lost, none twice
    assert all(r.signature_ok for r in rx.requests)
    assert site.terminate() == 0
    assert site.sql("SELECT count(*) FROM cycles")[0][0] == 1, "no second poll was needed"


@pytest.mark.parametrize("trouble", ["slow", 500])
def test_kill_9_mid_backlog_then_restart_delivers_everything_pending(
        site: Site, rx: WebhookReceiver, trouble: str | int) -> None:
    site.backlog(200)
    rx.respond(200, delay=0.01)
    site.start()
    site.wait_for(lambda: len(rx.requests) >= 40, "part of the backlog delivered")
    if trouble == 500:
        rx.respond(500)
        site.wait_for(lambda: rx.requests[-1].status == 500, "the receiver failing")
    site.kill()
    assert site.pending() > 0, "the kill came mid-backlog"
    rx.respond(200)
    site.start()
    site.wait_for(lambda: site.pending() == 0, "everything pending delivered after the restart")
    got, expected = delivered_seqs(rx), site.outbox_seqs()
    assert set(got) == set(expected), "no seq missing"
    firsts = list(dict.fromkeys(got))
    assert firsts == expected, "each seq first arrived in order"
    duplicates = len(got) - len(firsts)
    print(f"kill -9 ({trouble}): {len(expected)} transitions, {duplicates} sent twice")
    assert duplicates <= FLUSH_ROWS + 1, "at most the unwritten marks and the one in flight"
    assert site.terminate() == 0


def test_a_retry_goes_out_when_due_not_at_the_next_poll(site: Site, rx: WebhookReceiver) -> None:
    site.backlog(3)
    rx.respond(500)
    site.start()
    site.wait_for(lambda: site.attempts_of_oldest() >= 1, "a first attempt answered 500")
    rx.respond(200)
    site.wait_for(lambda: site.pending() == 0, "the retry, 1-2 s later with poll_every 1h")
    assert site.sql("SELECT count(*) FROM cycles")[0][0] == 1, "delivered before any second poll"
    statuses = [r.status for r in rx.requests]
    assert statuses[0] == 500 and statuses[-4:] == [200] * 4
    assert delivered_seqs(rx) == site.outbox_seqs()
    assert site.terminate() == 0


def test_sigterm_lets_the_message_in_flight_finish_and_records_it(
        site: Site, rx: WebhookReceiver) -> None:
    site.backlog(5)
    rx.respond(200, delay=1.5)
    site.start()
    site.wait_for(lambda: len(rx.requests) >= 1, "the first message in flight")
    assert site.terminate() == 0
    assert len(rx.requests) == 1, "no new send after SIGTERM"
    assert site.pending() == 5  # 5 backlog + 1 stale_data, minus the one that finished
    first = site.sql("SELECT delivered_at FROM outbox ORDER BY id LIMIT 1")[0][0]
    assert first is not None, "the send in flight was recorded as delivered"


def test_rate_limit_caps_each_window_and_leaves_other_channels_free(tmp_path: Path) -> None:
    rate = 5
    with WebhookReceiver() as slack_rx, WebhookReceiver() as soc_rx, \
            Store.open(tmp_path / "a.db") as store:
        slack = ChannelSettings(name="slack", type="webhook", url=Secret(slack_rx.url()),
                                rate=Decimal(rate))
        soc = ChannelSettings(name="soc", type="webhook", url=Secret(soc_rx.url()))
        alerts = AlertSettings(retry=RetrySettings(first=1, max=2, budget=3600),
                               channels=(slack, soc))
        notifiers = {c.name: WebhookNotifier(c.name, c.url, timeout=5)  # type: ignore[arg-type]
                     for c in (slack, soc)}
        now = datetime.now(UTC)
        for seq in range(1, 13):
            store.enqueue("slack", [{"seq": seq, "kind": "firing", "rule": "hot_drain"}], now)
            store.enqueue("soc", [{"seq": 100 + seq, "kind": "firing", "rule": "hot_drain"}], now)
        report = deliver_pending(store, notifiers, alerts, "dl-ex")
        assert report.delivered == 24 and store.outbox_counts()["pending"] == 0
    assert slack_rx.seqs() == list(range(1, 13)) and soc_rx.seqs() == list(range(101, 113))
    arrivals = [r.at for r in slack_rx.requests]
    busiest = max(sum(1 for t in arrivals if start <= t < start + 0.95) for start in arrivals)
    assert busiest <= rate + 1, f"{busiest} slack requests within one second"
    assert soc_rx.requests[-1].at < slack_rx.requests[2].at, "soc did not wait for slack"
