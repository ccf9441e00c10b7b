"""The outbox worker against the real SQLite store and a real local receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from receivers import WebhookReceiver

from auditor.model import Transition
from auditor.notify import LogNotifier, WebhookNotifier
from auditor.outbox import deliver_pending
from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, Secret
from auditor.store import Store, transition_to_json

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
TOKEN = "SECRET123"
HMAC_KEY = "whsec-real-store"

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "a.db")
    yield s
    s.close()


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=HMAC_KEY.encode()) as receiver:
        yield receiver


def stored(seq: int) -> dict[str, object]:
    t = Transition(kind="firing", fingerprint=f"{seq:064x}", rule="hot_drain",
                   subject="eth-hot-1/ETH", severity="critical", at=NOW, since=NOW,
                   summary="hot wallet fell 42%", value=Decimal("0.42"),
                   threshold=Decimal("0.2"))
    return transition_to_json(t, seq)


def setup(rx: WebhookReceiver) -> tuple[AlertSettings, dict[str, object]]:
    soc = ChannelSettings(name="soc", type="webhook", url=Secret(rx.url(f"/hooks/{TOKEN}")),
                          secret=Secret(HMAC_KEY), timeout=2)
    console = ChannelSettings(name="console", type="log")
    alerts = AlertSettings(retry=RetrySettings(first=10, max=600, budget=3600),
                           channels=(soc, console))
    notifiers = {"soc": WebhookNotifier("soc", soc.url, secret=soc.secret, timeout=2),
                 "console": LogNotifier("console")}
    return alerts, notifiers


def test_real_store_down_then_up_delivers_once_with_current_head(
        store: Store, rx: WebhookReceiver) -> None:
    alerts, notifiers = setup(rx)
    for seq in (1, 2):
        store.enqueue("soc", [stored(seq)], NOW)
    rx.stop()
    down = deliver_pending(store, notifiers, alerts, "example-ex", NOW, rand=lambda: 1.0)
    assert (down.retried, down.deferred) == (1, 1)
    assert store.outbox_counts()["retrying"] == 1
    assert all(TOKEN not in e and HMAC_KEY not in e for e in down.errors)
    rx.start()
    up = deliver_pending(store, notifiers, alerts, "example-ex", NOW + timedelta(seconds=11))
    again = deliver_pending(store, notifiers, alerts, "example-ex", NOW + timedelta(hours=1))
    assert (up.delivered, again.delivered) == (2, 0)
    assert sorted(rx.seqs()) == [1, 2]
    body = rx.requests[0].json()
    assert body["head"] == store.head() and body["sent_at"] == "2026-11-24T10:00:11Z"
    assert body["alerts"][0]["transition"] == "firing" and body["alerts"][0]["value"] == "0.42"
    assert store.outbox_counts() == {"pending": 0, "retrying": 0, "delivered": 2, "dead": 0}


def test_real_store_permanent_failure_dead_letters_and_alerts_the_log_channel(
        store: Store, rx: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    alerts, notifiers = setup(rx)
    store.enqueue("soc", [stored(7)], NOW)
    rx.respond(400)
    report = deliver_pending(store, notifiers, alerts, "example-ex", NOW)
    assert (report.dead, report.delivered) == (1, 1)
    assert store.outbox_counts() == {"pending": 0, "retrying": 0, "delivered": 1, "dead": 1}
    err = capsys.readouterr().err
    (alarm,) = [a for a in store.list_alerts() if a.rule == "delivery_failed"]
    (seq,) = [h["seq"] for h in store.alert_history(alarm.fingerprint)]  # a fresh audit seq
    assert "CRITICAL firing delivery_failed soc" in err and f"seq {seq}" in err
    assert TOKEN not in err and HMAC_KEY not in err
    json.loads(rx.requests[0].body)  # the refused message was well-formed JSON
