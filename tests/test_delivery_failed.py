"""A dead-lettered notification becomes a real `delivery_failed` alert (real store,
real receiver): a fresh seq, an `alert` audit record, the other channels of its route."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from receivers import WebhookReceiver

from auditor.errors import DeliveryError
from auditor.model import Transition
from auditor.notify import Message, WebhookNotifier
from auditor.outbox import deliver_pending, delivery_failed_fingerprint
from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, RouteSettings, Secret
from auditor.store import Store, transition_to_json

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
pytestmark = pytest.mark.integration


class Refusing:
    name = "soc"

    def send(self, message: Message) -> None:
        raise DeliveryError("refused with HTTP 400", retryable=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "a.db")
    yield s
    s.close()


def _settings(rx: WebhookReceiver) -> tuple[AlertSettings, dict[str, object]]:
    channels = (ChannelSettings(name="soc", type="webhook", url=Secret("http://127.0.0.1:1/x")),
                ChannelSettings(name="pager", type="webhook", url=Secret(rx.url("/pager"))),
                ChannelSettings(name="slack", type="webhook", url=Secret(rx.url("/slack"))))
    routes = (RouteSettings(("soc", "pager"), severity=("critical",)),
              RouteSettings(("slack",), severity=("warning",)))
    alerts = AlertSettings(repeat_every=3600, retry=RetrySettings(10, 600, 3600),
                           channels=channels, routes=routes)
    return alerts, {"soc": Refusing(), "pager": WebhookNotifier("pager", channels[1].url),
                    "slack": WebhookNotifier("slack", channels[2].url)}


def _queue_drain_alarm(store: Store, at: datetime) -> int:
    """A hot_drain firing written like a cycle would (its own audit record) to soc."""
    t = Transition(kind="firing", fingerprint="ab" * 32, rule="hot_drain",
                   subject="eth-hot-1/ETH", severity="critical", at=at, since=at,
                   summary="hot wallet fell 42%", value=Decimal("0.42"),
                   threshold=Decimal("0.2"))
    seq = store.append_audit("alert", transition_to_json(t, None), at).seq
    store.enqueue("soc", [transition_to_json(t, seq)], at)
    return seq


def test_dead_letter_raises_delivery_failed_with_a_fresh_seq_to_the_routes_other_channel(
        store: Store) -> None:
    with WebhookReceiver() as rx:
        alerts, notifiers = _settings(rx)
        dead_seq = _queue_drain_alarm(store, NOW)
        report = deliver_pending(store, notifiers, alerts, "ex", NOW)  # type: ignore[arg-type]
        assert (report.dead, report.delivered) == (1, 1)
        (post,) = rx.requests
        assert post.path == "/pager"  # slack is not on soc's route
        (alarm,) = post.json()["alerts"]
    assert (alarm["rule"], alarm["subject"], alarm["transition"]) == ("delivery_failed", "soc",
                                                                      "firing")
    assert alarm["seq"] > dead_seq
    fp = delivery_failed_fingerprint("ex", "soc")
    stored = store.get_alert(fp)
    assert stored is not None and stored.state == "firing" and stored.severity == "critical"
    assert [h["seq"] for h in store.alert_history(fp)] == [alarm["seq"]]
    assert store.verify().ok


def test_a_second_dead_letter_within_repeat_every_updates_the_alert_without_a_new_message(
        store: Store) -> None:
    with WebhookReceiver() as rx:
        alerts, notifiers = _settings(rx)
        _queue_drain_alarm(store, NOW)
        deliver_pending(store, notifiers, alerts, "ex", NOW)  # type: ignore[arg-type]
        _queue_drain_alarm(store, NOW + timedelta(minutes=5))
        deliver_pending(store, notifiers, alerts, "ex", NOW + timedelta(minutes=5))  # type: ignore[arg-type]
        assert len(rx.requests) == 1
        _queue_drain_alarm(store, NOW + timedelta(minutes=61))
        deliver_pending(store, notifiers, alerts, "ex", NOW + timedelta(minutes=61))  # type: ignore[arg-type]
        kinds = [r.json()["alerts"][0]["transition"] for r in rx.requests]
    assert kinds == ["firing", "repeat"]
    alarm = store.get_alert(delivery_failed_fingerprint("ex", "soc"))
    assert alarm is not None and len(alarm.details["outbox_ids"]) == 3  # type: ignore[arg-type]


def test_delivery_failed_is_resolved_by_a_person(store: Store) -> None:
    from auditor.alerting import manual_resolve

    with WebhookReceiver() as rx:
        alerts, notifiers = _settings(rx)
        _queue_drain_alarm(store, NOW)
        deliver_pending(store, notifiers, alerts, "ex", NOW)  # type: ignore[arg-type]
    fp = delivery_failed_fingerprint("ex", "soc")
    alert = store.get_alert(fp)
    assert alert is not None
    new, t = manual_resolve(alert, NOW + timedelta(hours=1), "alice", "webhook URL fixed")
    store.resolve_alert(fp, "alice", "webhook URL fixed", NOW + timedelta(hours=1), t, new)
    assert store.get_alert(fp).state == "resolved"  # type: ignore[union-attr]
