"""Ack and silence through run_cycle and the real store: what is stored, logged and sent.

DESIGN.md "Alerts": an ack suppresses repeats only; silences last at most 24 h,
only for state rules other than stale_data, never hide an escalation, and are
announced on the critical route. Chains are scripted; the outbox table shows
what would be delivered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditor import alerts_ops
from auditor.config import load_config
from auditor.model import Alert, BlockRef, ChainReading, ChainView
from auditor.service import run_cycle
from auditor.settings import Settings, WalletSettings
from auditor.silences import SilenceRefused, check_silence
from auditor.store import Store
from auditor.store_alerts import upsert_alerts

ETH = 10**18
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOT, COLD = "0x" + "11" * 20, "0x" + "22" * 20


def write_config(tmp: Path, routes: str | None = None) -> Path:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: sil-ex}}
store: {{path: var/a.db}}
schedule: {{poll_every: 1h}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {{source: static, static: {{ETH: "100"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, guarantee_coverage: off, reserve_coverage: off, commingling: off}}
alerts:
  repeat_every: 1h
  channels:
    - {{name: console, type: log}}
    - {{name: soc, type: webhook, url: "http://127.0.0.1:1/hook"}}
  routes:
{routes or '''    - {severity: [critical], channels: [soc, console]}
    - {severity: [warning], channels: [console]}'''}
""")
    return cfg


class Chain:
    """A scripted ethereum client: hot holds `hot` wei, cold 97 ETH; a fresh head each read."""

    def __init__(self) -> None:
        self.hot = 3 * ETH
        self.at = NOW
        self.block = 100

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, Any],
             deadline: float | None = None) -> ChainReading:
        bal = {(HOT.lower(), "ETH"): self.hot, (COLD.lower(), "ETH"): 97 * ETH}
        nonces = {HOT.lower(): 0, COLD.lower(): 0}
        ts = int(self.at.timestamp())
        self.block += 1
        settled = ChainView(BlockRef(self.block - 1, "0x" + "aa" * 32, ts - 12), bal, nonces)
        return ChainReading("ethereum", True, settled,
                            ChainView(BlockRef(self.block, "0x" + "bb" * 32, ts), bal, nonces),
                            head_timestamp=ts)

    def close(self) -> None:
        pass


class World:
    def __init__(self, tmp: Path):
        self.settings: Settings = load_config(write_config(tmp), env={})
        self.store = Store.open(self.settings.store.path)
        self.chain = Chain()
        self.db = sqlite3.connect(self.settings.store.path)

    def cycle(self, at: datetime, hot_eth: float | None = None) -> list[tuple[str, str]]:
        """Run a cycle; return its (transition kind, rule) list."""
        if hot_eth is not None:
            self.chain.hot = int(hot_eth * 10) * ETH // 10
        self.chain.at = at
        out = run_cycle(self.settings, self.store, now=at, clients={"ethereum": self.chain})
        return [(t.kind, t.rule) for t in out.transitions]

    def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """(channel, transition) of every queued notification, oldest first."""
        rows = self.db.execute("SELECT channel, payload FROM outbox ORDER BY id").fetchall()
        return [(ch, t) for ch, p in rows for t in json.loads(p)]

    def sent(self, kind: str, rule: str = "hot_ratio") -> list[str]:
        return [ch for ch, t in self.outbox() if t["kind"] == kind and t["rule"] == rule]

    def audit(self, kind: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, payload FROM audit_log WHERE kind = ? ORDER BY seq",
                               (kind,)).fetchall()
        return [{**json.loads(p), "_seq": s} for s, p in rows]

    def hot_ratio_fp(self) -> str:
        (a,) = [a for a in self.store.list_alerts(True) if a.rule == "hot_ratio"]
        return a.fingerprint


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()
    w.db.close()


# -- what may be silenced -------------------------------------------------------

@pytest.mark.parametrize("rule", ["hot_drain", "cold_outflow", "stale_data", "config_changed",
                                  "delivery_failed", "large_outflow", "unmatched_outflow",
                                  "sanctioned_counterparty", "safe_changed",
                                  "unknown_destination"])
def test_theft_staleness_and_config_rules_cannot_be_silenced(rule: str) -> None:
    with pytest.raises(SilenceRefused, match=f"{rule} cannot be silenced") as e:
        check_silence(rule, 3600, "noisy")
    assert e.value.exit_code == 2


def test_a_silence_lasts_at_most_24_hours_and_needs_a_reason() -> None:
    check_silence("hot_ratio", 24 * 3600, "rebalancing")
    with pytest.raises(SilenceRefused, match="at most 24h"):
        check_silence("hot_ratio", 24 * 3600 + 1, "rebalancing")
    with pytest.raises(SilenceRefused, match="--reason"):
        check_silence("reserve_coverage", 600, "  ")


def test_silencing_an_alert_of_a_protected_rule_is_refused(world: World) -> None:
    store = world.store
    fp = alerts_ops.alerting.fingerprint("sil-ex", "stale_data", "ethereum")
    with store.transaction() as conn:
        upsert_alerts(conn, [Alert(fp, "stale_data", "ethereum", "critical", "firing", NOW, NOW,
                                   NOW)])
    with pytest.raises(SilenceRefused, match="stale_data cannot be silenced"):
        alerts_ops.silence_by_hand(world.settings, store, fp, 3600, "mallory", "quiet", NOW)
    assert store.silences() == [] and world.audit("silence") == []


# -- ack ------------------------------------------------------------------------

def test_ack_is_announced_on_the_critical_route_with_its_audit_seq(world: World) -> None:
    assert world.cycle(NOW, hot_eth=4.5) == [("firing", "hot_ratio")]
    fp = world.hot_ratio_fp()
    seq = alerts_ops.ack_by_hand(world.settings, world.store, fp, "alice", "rebalancing",
                                 NOW + MIN)
    (rec,) = world.audit("ack")
    assert rec["_seq"] == seq and rec["by"] == "alice" and rec["note"] == "rebalancing"
    acks = [(ch, t) for ch, t in world.outbox() if t["kind"] == "acknowledged"]
    assert [ch for ch, _ in acks] == ["soc", "console"]
    assert {(t["seq"], t["by"], t["note"], t["fingerprint"]) for _, t in acks} == {
        (seq, "alice", "rebalancing", fp)}


def test_ack_suppresses_repeats_but_not_escalation(world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    alerts_ops.ack_by_hand(world.settings, world.store, world.hot_ratio_fp(), "alice", "",
                           NOW + MIN)
    assert world.cycle(NOW + 61 * MIN) == []
    assert world.cycle(NOW + 125 * MIN) == []
    assert world.cycle(NOW + 130 * MIN, hot_eth=6) == [("escalated", "hot_ratio")]
    assert world.sent("escalated") == ["soc", "console"]
    assert world.store.get_alert(world.hot_ratio_fp()).acked_by is None  # escalation pages again
    assert world.cycle(NOW + 191 * MIN) == [("repeat", "hot_ratio")]


# -- silence --------------------------------------------------------------------

def test_silenced_repeat_is_stored_and_logged_but_not_sent(world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    s = alerts_ops.silence_by_hand(world.settings, world.store, "hot_ratio", 4 * 3600, "bob",
                                   "planned top-up of the hot wallet", NOW + MIN)
    assert (s.rule, s.fingerprint, s.severity) == ("hot_ratio", None, "warning")
    assert world.cycle(NOW + 61 * MIN) == [("repeat", "hot_ratio")]
    assert world.sent("repeat") == []
    (logged,) = [r for r in world.audit("alert") if r["kind"] == "repeat"]
    assert logged["details"]["silenced"] == {"id": s.id, "until": "2026-11-24T14:01:00Z",
                                             "by": "bob",
                                             "reason": "planned top-up of the hot wallet"}
    (rec,) = world.audit("silence")
    assert rec["_seq"] == s.seq and rec["by"] == "bob" and rec["ends_at"] == "2026-11-24T14:01:00Z"
    assert [ch for ch, t in world.outbox() if t["kind"] == "silenced"] == ["soc", "console"]


def test_escalation_of_a_silenced_alert_is_sent(world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    alerts_ops.silence_by_hand(world.settings, world.store, world.hot_ratio_fp(), 4 * 3600,
                               "bob", "known", NOW + MIN)
    assert world.cycle(NOW + 2 * MIN, hot_eth=6) == [("escalated", "hot_ratio")]
    assert world.sent("escalated") == ["soc", "console"]
    assert world.cycle(NOW + 63 * MIN) == [("repeat", "hot_ratio")]
    assert world.sent("repeat") == ["soc", "console"]  # critical is above the silence


def test_new_firing_under_a_silence_is_muted_and_so_is_its_resolved(world: World) -> None:
    alerts_ops.silence_by_hand(world.settings, world.store, "hot_ratio", 3600, "bob", "known",
                               NOW)
    assert world.cycle(NOW + MIN, hot_eth=4.5) == [("firing", "hot_ratio")]
    assert world.cycle(NOW + 2 * MIN, hot_eth=3) == [("resolved", "hot_ratio")]
    assert world.sent("firing") == [] and world.sent("resolved") == []


def test_resolved_of_an_alert_whose_firing_was_sent_goes_out_despite_a_silence(
        world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    alerts_ops.silence_by_hand(world.settings, world.store, "hot_ratio", 3600, "bob", "known",
                               NOW + MIN)
    assert world.cycle(NOW + 2 * MIN, hot_eth=3) == [("resolved", "hot_ratio")]
    assert world.sent("resolved") == ["console"]  # the channel that got the firing


def test_an_expired_silence_stops_applying(world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    alerts_ops.silence_by_hand(world.settings, world.store, "hot_ratio", 30 * 60, "bob", "brief",
                               NOW + MIN)
    assert world.cycle(NOW + 61 * MIN) == [("repeat", "hot_ratio")]
    assert world.sent("repeat") == ["console"]
    assert world.store.silences(active_at=NOW + 61 * MIN) == []


def test_unsilence_ends_it_early_and_history_shows_who_and_why(world: World) -> None:
    world.cycle(NOW, hot_eth=4.5)
    fp = world.hot_ratio_fp()
    s = alerts_ops.silence_by_hand(world.settings, world.store, fp, 6 * 3600, "bob",
                                   "flapping", NOW + MIN)
    assert world.cycle(NOW + 61 * MIN) == [("repeat", "hot_ratio")]
    ended = alerts_ops.unsilence_by_hand(world.settings, world.store, s.id, "carol",
                                         "top-up done", NOW + 70 * MIN)
    assert ended.ended_by == "carol" and world.audit("unsilence")[0]["_seq"] == ended.end_seq
    assert [ch for ch, t in world.outbox() if t["kind"] == "unsilenced"] == ["soc", "console"]
    assert world.cycle(NOW + 122 * MIN) == [("repeat", "hot_ratio")]
    assert world.sent("repeat") == ["console"]
    alerts_ops.ack_by_hand(world.settings, world.store, fp, "dave", "on it", NOW + 123 * MIN)
    history = world.store.alert_history(fp)
    assert [h["kind"] for h in history] == ["firing", "silence", "repeat", "unsilence",
                                            "repeat", "ack"]
    people = {(h["kind"], h.get("by"), h.get("reason", h.get("note"))) for h in history}
    assert {("silence", "bob", "flapping"), ("unsilence", "carol", "top-up done"),
            ("ack", "dave", "on it")} <= people
    with pytest.raises(Exception, match="not active"):
        alerts_ops.unsilence_by_hand(world.settings, world.store, s.id, "carol", "again",
                                     NOW + 124 * MIN)
