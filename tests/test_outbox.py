"""The outbox worker against an in-memory store with exactly store.py's outbox API."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from receivers import WebhookReceiver

from auditor.errors import DeliveryError
from auditor.notify import Message, WebhookNotifier
from auditor.outbox import backoff_delay, deliver_pending, delivery_failed_fingerprint
from auditor.outbox_lanes import TokenBucket
from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, RouteSettings, Secret

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
RETRY = RetrySettings(first=10, max=600, budget=3600)
TOKEN = "SECRET123"
HMAC_KEY = "whsec-never-print-me"


# -- an in-memory store with the outbox API of auditor/store.py ---------------

@dataclass
class FakeItem:
    id: int
    channel: str
    created_at: datetime
    transitions: list[dict[str, Any]]
    attempts: int = 0
    next_attempt_at: datetime = NOW
    first_attempt_at: datetime | None = None
    status: str = "pending"
    errors: list[str] = field(default_factory=list)
    delivered_at: datetime | None = None


class FakeStore:
    def __init__(self) -> None:
        self.items: dict[int, FakeItem] = {}
        self.heads = 0

    def enqueue(self, channel: str, transitions: list[dict[str, Any]], at: datetime,
                cycle: int | None = None) -> int:
        item_id = len(self.items) + 1
        self.items[item_id] = FakeItem(item_id, channel, at, transitions, next_attempt_at=at)
        return item_id

    def pending_outbox(self, now: datetime, limit: int = 100,
                       channel: str | None = None) -> list[FakeItem]:
        due = [i for i in self.items.values() if i.status == "pending"
               and i.next_attempt_at <= now and channel in (None, i.channel)]
        return sorted(due, key=lambda i: i.id)[:limit]

    def outbox_page(self, channel: str, after_id: int, limit: int) -> list[FakeItem]:
        rows = [i for i in self.items.values() if i.status == "pending"
                and i.channel == channel and i.id > after_id]
        return sorted(rows, key=lambda i: i.id)[:limit]

    def outbox_channels(self) -> dict[str, int]:
        first: dict[str, int] = {}
        for i in sorted(self.items.values(), key=lambda i: i.id):
            if i.status == "pending":
                first.setdefault(i.channel, i.id)
        return first

    def mark_delivered(self, id: int, at: datetime) -> None:
        item = self.items[id]
        assert item.status == "pending", "delivered twice"
        item.status, item.delivered_at = "delivered", at

    def mark_delivered_many(self, marks: list[tuple[int, datetime]]) -> None:
        assert all(self.items[id].status == "pending" for id, _ in marks), "delivered twice"
        for id, at in marks:  # not atomic: enough here (Flaky fails on its first row)
            self.mark_delivered(id, at)

    def mark_retry(self, id: int, at: datetime, error: str, next_attempt_at: datetime) -> None:
        item = self.items[id]
        item.attempts += 1
        item.first_attempt_at = item.first_attempt_at or at
        item.next_attempt_at = next_attempt_at
        item.errors.append(error)

    def mark_dead(self, id: int, at: datetime, error: str) -> None:
        item = self.items[id]
        item.status = "dead"
        item.errors.append(error)

    def head(self) -> str:
        self.heads += 1
        return f"{self.heads:064x}"

    def record_delivery_failed(self, fingerprint: str, channel: str, at: datetime, summary: str,
                               details: dict[str, Any], channels: list[str],
                               repeat_every: int = 3600) -> tuple[int, dict[str, int]]:
        """Like store.py: the alarm gets a fresh seq (here 1000, 1001, …)."""
        self.alarms = getattr(self, "alarms", 0) + 1
        seq = 999 + self.alarms
        t = {"seq": seq, "kind": "firing", "fingerprint": fingerprint, "rule": "delivery_failed",
             "subject": channel, "severity": "critical", "at": "2026-11-24T10:00:00Z",
             "since": "2026-11-24T10:00:00Z", "summary": summary, "value": None,
             "threshold": None, "details": details}
        return seq, {ch: self.enqueue(ch, [t], at) for ch in channels}


# -- notifiers -------------------------------------------------------------------

class Recorder:
    def __init__(self, name: str, fail: list[DeliveryError | Exception] | None = None):
        self.name = name
        self.sent: list[Message] = []
        self.fail = fail or []

    def send(self, message: Message) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(message)


def transition(seq: int, kind: str = "firing", rule: str = "hot_drain") -> dict[str, Any]:
    """A transition as store_codec.transition_to_json stores it."""
    return {"seq": seq, "kind": kind, "fingerprint": f"{seq:064x}", "rule": rule,
            "subject": "eth-hot-1/ETH", "severity": "critical", "at": "2026-11-24T09:59:00Z",
            "since": "2026-11-24T09:59:00Z", "summary": "hot wallet fell 42%",
            "value": "0.42", "threshold": "0.2", "details": {}}


def settings(*channels: ChannelSettings, routes: tuple[RouteSettings, ...] = ()) -> AlertSettings:
    return AlertSettings(retry=RETRY, channels=channels, routes=routes)


SOC = ChannelSettings(name="soc", type="webhook", url=Secret(f"http://127.0.0.1:1/hooks/{TOKEN}"),
                      secret=Secret(HMAC_KEY))
PAGER = ChannelSettings(name="pager", type="webhook", url=Secret("http://127.0.0.1:1/p"))
CONSOLE = ChannelSettings(name="console", type="log")
CRITICAL_ROUTE = (RouteSettings(("soc", "pager", "console"), severity=("critical",)),)


def run(store: FakeStore, notifiers: dict[str, Any], alerts: AlertSettings,
        now: datetime = NOW, **kw: Any) -> Any:
    return deliver_pending(store, notifiers, alerts, "example-ex", now, rand=lambda: 1.0, **kw)


# -- delivery -------------------------------------------------------------------

def test_delivered_item_carries_wire_alerts_head_and_sent_at() -> None:
    store, soc = FakeStore(), Recorder("soc")
    store.enqueue("soc", [transition(7), transition(8, kind="resolved")], NOW)
    report = run(store, {"soc": soc}, settings(SOC))
    assert (report.delivered, report.retried, report.dead, report.errors) == (1, 0, 0, [])
    (msg,) = soc.sent
    assert (msg.exchange, msg.sent_at, msg.head, msg.test) == ("example-ex", NOW, f"{1:064x}",
                                                               False)
    first, second = msg.alerts
    assert first["transition"] == "firing" and first["state"] == "firing" and first["seq"] == 7
    assert second["transition"] == "resolved" and second["state"] == "resolved"
    assert "kind" not in first
    assert store.items[1].status == "delivered"


def test_delivered_item_is_never_sent_again() -> None:
    store, soc = FakeStore(), Recorder("soc")
    store.enqueue("soc", [transition(1)], NOW)
    run(store, {"soc": soc}, settings(SOC))
    report = run(store, {"soc": soc}, settings(SOC), now=NOW + timedelta(hours=1))
    assert report.delivered == 0 and len(soc.sent) == 1


def test_test_transitions_make_a_test_message() -> None:
    store, soc = FakeStore(), Recorder("soc")
    store.enqueue("soc", [dict(transition(1), test=True)], NOW)
    run(store, {"soc": soc}, settings(SOC))
    assert soc.sent[0].test is True


# -- retries ----------------------------------------------------------------------

def test_backoff_doubles_from_first_up_to_max_with_jitter_in_upper_half() -> None:
    assert backoff_delay(RETRY, 0, lambda: 1.0) == 10
    assert backoff_delay(RETRY, 0, lambda: 0.0) == 5
    assert backoff_delay(RETRY, 3, lambda: 1.0) == 80
    assert backoff_delay(RETRY, 10, lambda: 1.0) == 600
    assert backoff_delay(RETRY, 10, lambda: 0.0) == 300
    assert backoff_delay(RETRY, 10_000, lambda: 1.0) == 600


def test_retryable_failure_is_retried_with_backoff_and_not_marked_delivered() -> None:
    store = FakeStore()
    store.enqueue("soc", [transition(1)], NOW)
    store.items[1].attempts = 2
    store.items[1].first_attempt_at = NOW - timedelta(minutes=1)
    soc = Recorder("soc", [DeliveryError("h answered HTTP 503; will retry", retryable=True)])
    report = run(store, {"soc": soc}, settings(SOC))
    assert (report.delivered, report.retried, report.dead) == (0, 1, 0)
    item = store.items[1]
    assert item.status == "pending" and item.next_attempt_at == NOW + timedelta(seconds=40)
    assert "503" in item.errors[0] and "503" in report.errors[0]


def test_channel_rate_limit_paces_sends_with_the_injected_sleep() -> None:
    store, soc = FakeStore(), Recorder("soc")
    for seq in range(3):
        store.enqueue("soc", [transition(seq)], NOW)
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    paced = ChannelSettings(name="soc", type="webhook", url=Secret("http://x/"), rate=2)
    report = run(store, {"soc": soc}, settings(paced), sleep=sleep, monotonic=lambda: clock[0])
    assert report.delivered == 3
    assert slept == [0.5, 0.5]


def test_after_a_retryable_failure_the_channel_waits_but_others_are_delivered() -> None:
    store, pager = FakeStore(), Recorder("pager")
    for seq in range(3):
        store.enqueue("soc", [transition(seq)], NOW)
    store.enqueue("pager", [transition(9)], NOW)
    soc = Recorder("soc", [DeliveryError("down", retryable=True)] * 5)
    report = run(store, {"soc": soc, "pager": pager}, settings(SOC, PAGER))
    assert (report.delivered, report.retried, report.deferred) == (1, 1, 2)
    assert len(soc.fail) == 4, "only one attempt on a channel that is down"
    assert [i.attempts for i in store.items.values()] == [1, 0, 0, 0]


# -- dead letters and delivery_failed -------------------------------------------

def test_retry_budget_exceeded_dead_letters_and_alerts_the_other_channels_of_its_route() -> None:
    store, pager, console = FakeStore(), Recorder("pager"), Recorder("console")
    store.enqueue("soc", [transition(41), transition(42)], NOW - timedelta(hours=2))
    store.items[1].first_attempt_at = NOW - timedelta(seconds=3601)
    soc = Recorder("soc", [DeliveryError("timed out", retryable=True)])
    report = run(store, {"soc": soc, "pager": pager, "console": console},
                 settings(SOC, PAGER, CONSOLE, routes=CRITICAL_ROUTE))
    assert store.items[1].status == "dead"
    assert report.dead == 1 and report.delivered == 2
    assert sorted(i.channel for i in store.items.values() if i.id != 1) == ["console", "pager"]
    (alert,) = pager.sent[0].alerts
    fp = hashlib.sha256(b"example-ex\ndelivery_failed\nsoc").hexdigest()
    assert alert["fingerprint"] == fp == delivery_failed_fingerprint("example-ex", "soc")
    assert (alert["rule"], alert["subject"], alert["severity"]) == ("delivery_failed", "soc",
                                                                    "critical")
    assert (alert["transition"], alert["state"], alert["seq"]) == ("firing", "firing", 1000)
    assert "soc" in alert["summary"] and "2026-11-24T08:00:00Z" in alert["summary"]
    assert console.sent[0].alerts == pager.sent[0].alerts


def test_budget_counts_from_created_at_before_any_attempt() -> None:
    store = FakeStore()
    store.enqueue("soc", [transition(1)], NOW - timedelta(seconds=3601))
    soc = Recorder("soc", [DeliveryError("down", retryable=True)])
    report = run(store, {"soc": soc, "pager": Recorder("pager")}, settings(SOC, PAGER))
    assert store.items[1].status == "dead" and report.dead == 1


def test_permanent_failure_is_dead_at_once_and_alerts_the_others() -> None:
    store, pager = FakeStore(), Recorder("pager")
    store.enqueue("soc", [transition(5)], NOW)
    soc = Recorder("soc", [DeliveryError("refused with HTTP 400", retryable=False)])
    report = run(store, {"soc": soc, "pager": pager},
                 settings(SOC, PAGER, routes=(RouteSettings(("soc", "pager")),)))
    assert store.items[1].status == "dead" and report.retried == 0
    assert pager.sent[0].alerts[0]["rule"] == "delivery_failed"
    assert "400" in pager.sent[0].alerts[0]["summary"]


def test_delivery_failed_goes_to_stderr_log_when_no_other_channel(
        capsys: pytest.CaptureFixture[str]) -> None:
    store = FakeStore()
    store.enqueue("soc", [transition(3)], NOW)
    soc = Recorder("soc", [DeliveryError("refused with HTTP 400", retryable=False)])
    report = run(store, {"soc": soc}, settings(SOC))
    assert [i.channel for i in store.items.values()] == ["soc", "log"]
    assert store.items[2].status == "delivered" and report.delivered == 1
    err = capsys.readouterr().err
    assert "CRITICAL firing delivery_failed soc" in err and "seq 1000" in err


def test_dead_delivery_failed_alarm_only_goes_to_log_channels() -> None:
    store, console = FakeStore(), Recorder("console")
    store.enqueue("pager", [transition(3, rule="delivery_failed")], NOW)
    pager = Recorder("pager", [DeliveryError("HTTP 400", retryable=False)])
    run(store, {"soc": Recorder("soc"), "pager": pager, "console": console},
        settings(SOC, PAGER, CONSOLE))
    assert [i.channel for i in store.items.values()] == ["pager", "console"]
    assert console.sent[0].alerts[0]["subject"] == "pager"


def test_delivery_failed_skips_channels_outside_the_dead_channels_routes() -> None:
    store, pager, console = FakeStore(), Recorder("pager"), Recorder("console")
    store.enqueue("soc", [transition(5)], NOW)
    soc = Recorder("soc", [DeliveryError("HTTP 400", retryable=False)])
    routes = (RouteSettings(("soc",), severity=("critical",)),
              RouteSettings(("pager",), severity=("warning",)))
    run(store, {"soc": soc, "pager": pager, "console": console},
        settings(SOC, PAGER, CONSOLE, routes=routes))
    assert [i.channel for i in store.items.values()] == ["soc", "console"]  # log: no other
    assert pager.sent == [] and console.sent[0].alerts[0]["seq"] == 1000


def test_unknown_channel_is_written_to_the_log_channel_then_dead(
        capsys: pytest.CaptureFixture[str]) -> None:
    store = FakeStore()
    store.enqueue("removed", [transition(11)], NOW)
    report = run(store, {"soc": Recorder("soc")}, settings(SOC))
    assert store.items[1].status == "dead" and report.dead == 1
    assert "removed" in store.items[1].errors[0]
    assert "hot_drain eth-hot-1/ETH" in capsys.readouterr().err


def test_unknown_channel_retries_when_the_log_channel_fails() -> None:
    store = FakeStore()
    store.enqueue("removed", [transition(11)], NOW)
    console = Recorder("console", [DeliveryError("stderr closed", retryable=True)])
    report = run(store, {"console": console}, settings(CONSOLE))
    assert store.items[1].status == "pending" and report.retried == 1


# -- never raises, never leaks -----------------------------------------------

def test_store_failure_on_one_item_does_not_stop_the_others() -> None:
    class Flaky(FakeStore):
        def mark_delivered(self, id: int, at: datetime) -> None:
            if id == 1:
                raise RuntimeError("database is locked")
            super().mark_delivered(id, at)

    store = Flaky()
    store.enqueue("soc", [transition(1)], NOW)
    store.enqueue("soc", [transition(2)], NOW)
    report = run(store, {"soc": Recorder("soc")}, settings(SOC))
    assert report.delivered == 1 and "database is locked" in report.errors[0]
    assert store.items[1].status == "pending", "unconfirmed: delivered again next run"


def test_unreadable_outbox_is_reported_not_raised() -> None:
    class Broken(FakeStore):
        def outbox_channels(self) -> dict[str, int]:
            raise RuntimeError("no such table: outbox")

    report = run(Broken(), {}, settings())
    assert "no such table" in report.errors[0]


def test_notifier_exception_text_is_withheld_and_secrets_scrubbed(
        caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.enqueue("soc", [transition(1)], NOW)
    store.enqueue("pager", [transition(2)], NOW)
    soc = Recorder("soc", [ValueError(f"bad http://127.0.0.1:1/hooks/{TOKEN}")])
    pager = Recorder("pager", [DeliveryError(f"leaky {HMAC_KEY} /hooks/{TOKEN}", retryable=True)])
    with caplog.at_level(logging.DEBUG):
        report = run(store, {"soc": soc, "pager": pager}, settings(SOC, PAGER))
    texts = [*report.errors, caplog.text, *store.items[1].errors, *store.items[2].errors]
    assert report.retried == 2
    assert all(TOKEN not in t and HMAC_KEY not in t for t in texts)
    assert any("ValueError" in e for e in report.errors)


# -- against a real receiver -----------------------------------------------------

@pytest.mark.integration
def test_receiver_down_then_up_gets_each_message_exactly_once(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookReceiver(secret=HMAC_KEY.encode()) as rx:
        url = rx.url(f"/hooks/{TOKEN}")
        soc = ChannelSettings(name="soc", type="webhook", url=Secret(url), secret=Secret(HMAC_KEY),
                              timeout=2)
        notifiers = {"soc": WebhookNotifier("soc", soc.url, secret=soc.secret, timeout=2)}
        store = FakeStore()
        for seq in (1, 2, 3):
            store.enqueue("soc", [transition(seq)], NOW)
        rx.stop()
        with caplog.at_level(logging.DEBUG):
            down = run(store, notifiers, settings(soc))
        assert (down.delivered, down.retried, down.deferred) == (0, 1, 2)
        leaked = [*down.errors, caplog.text, capsys.readouterr().err, *store.items[1].errors]
        assert all(TOKEN not in t and HMAC_KEY not in t for t in leaked)
        rx.start()
        up = run(store, notifiers, settings(soc), now=NOW + timedelta(minutes=1))
        again = run(store, notifiers, settings(soc), now=NOW + timedelta(hours=1))
        assert (up.delivered, again.delivered) == (3, 0)
        assert sorted(rx.seqs()) == [1, 2, 3]
        assert all(r.signature_ok for r in rx.requests)


# -- lanes: concurrency, order, pacing, paging, stop -------------------------------

class Log:
    """Sends of several notifiers in the order they happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def notifier(self, name: str, before: Any = None) -> Any:
        log = self

        class Sink:
            def __init__(self) -> None:
                self.name = name

            def send(self, message: Message) -> None:
                if before is not None:
                    before(message)
                with log.lock:
                    log.events.extend((name, a["seq"]) for a in message.alerts)

        return Sink()

    def seqs(self, name: str) -> list[int]:
        return [seq for who, seq in self.events if who == name]


def test_token_bucket_spaces_messages_by_one_over_rate() -> None:
    bucket = TokenBucket(4.0, now=10.0)
    assert bucket.wait(10.0) == 0
    bucket.take(10.0)
    assert bucket.wait(10.0) == pytest.approx(0.25)
    assert bucket.wait(10.1) == pytest.approx(0.15)
    assert bucket.wait(10.25) == 0
    bucket.take(10.25)
    assert bucket.wait(20.0) == 0, "an idle channel gets its token back"
    bucket.take(20.0)
    assert bucket.wait(20.0) > 0, "but no burst: one token at most"


def test_a_rate_limited_channel_does_not_hold_up_the_others() -> None:
    store, log = FakeStore(), Log()
    for seq in range(1, 4):
        store.enqueue("slack", [transition(seq)], NOW)
    for seq in range(11, 14):
        store.enqueue("soc", [transition(seq)], NOW)
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    slack = ChannelSettings(name="slack", type="webhook", url=Secret("http://x/"), rate=1)
    report = run(store, {"slack": log.notifier("slack"), "soc": log.notifier("soc")},
                 settings(slack, SOC), sleep=sleep, monotonic=lambda: clock[0])
    assert report.delivered == 6
    assert log.seqs("slack") == [1, 2, 3] and log.seqs("soc") == [11, 12, 13]
    assert log.events.index(("soc", 13)) < log.events.index(("slack", 2))
    assert slept == [1.0, 1.0], "paced only while nothing else could go"


def test_a_slow_channel_does_not_hold_up_the_others() -> None:
    store, log = FakeStore(), Log()
    store.enqueue("slow", [transition(1)], NOW)
    for seq in range(11, 14):
        store.enqueue("soc", [transition(seq)], NOW)
    soc_done = threading.Event()

    def hold(message: Message) -> None:
        soc_done.wait(10)  # the slow receiver answers once soc got everything (or never)

    def after_soc(message: Message) -> None:
        if message.alerts[0]["seq"] == 13:
            soc_done.set()

    slow = ChannelSettings(name="slow", type="webhook", url=Secret("http://x/"))
    report = run(store, {"slow": log.notifier("slow", hold),
                         "soc": log.notifier("soc", after_soc)}, settings(slow, SOC))
    assert report.delivered == 4
    assert log.events[:3] == [("soc", 11), ("soc", 12), ("soc", 13)]
    assert soc_done.is_set(), "soc was served while slow's send was still in flight"


def test_younger_rows_wait_behind_a_row_waiting_for_its_retry() -> None:
    store, log = FakeStore(), Log()
    for seq in (1, 2, 3):
        store.enqueue("soc", [transition(seq)], NOW)
    store.items[1].attempts, store.items[1].first_attempt_at = 1, NOW
    store.items[1].next_attempt_at = NOW + timedelta(seconds=10)
    notifiers = {"soc": log.notifier("soc")}
    early = run(store, notifiers, settings(SOC))
    assert (early.delivered, log.events) == (0, [])
    due = run(store, notifiers, settings(SOC), now=NOW + timedelta(seconds=10))
    assert due.delivered == 3 and log.seqs("soc") == [1, 2, 3]


def test_a_backlog_is_read_a_page_at_a_time_and_delivered_in_order() -> None:
    class Paged(FakeStore):
        pages: list[int] = []

        def outbox_page(self, channel: str, after_id: int, limit: int) -> list[FakeItem]:
            page = super().outbox_page(channel, after_id, limit)
            self.pages.append(len(page))
            return page

    store, log = Paged(), Log()
    for seq in range(1, 26):
        store.enqueue("soc", [transition(seq)], NOW)
    report = run(store, {"soc": log.notifier("soc")}, settings(SOC), limit=10)
    assert report.delivered == 25 and log.seqs("soc") == list(range(1, 26))
    assert store.pages == [10, 10, 5]


def test_a_row_is_marked_delivered_only_after_its_send_returned() -> None:
    store = FakeStore()
    for seq in (1, 2):
        store.enqueue("soc", [transition(seq)], NOW)
    seen: list[str] = []

    def check(message: Message) -> None:
        seen.append(store.items[message.alerts[0]["seq"]].status)

    report = run(store, {"soc": Log().notifier("soc", check)}, settings(SOC))
    assert seen == ["pending", "pending"] and report.delivered == 2
    assert {i.status for i in store.items.values()} == {"delivered"}


def test_stop_lets_the_send_in_flight_finish_and_starts_no_other() -> None:
    store = FakeStore()
    for seq in (1, 2, 3):
        store.enqueue("soc", [transition(seq)], NOW)
    stop = threading.Event()
    report = run(store, {"soc": Log().notifier("soc", lambda m: stop.set())}, settings(SOC),
                 stop=stop)
    assert report.delivered == 1
    assert [i.status for i in store.items.values()] == ["delivered", "pending", "pending"]
