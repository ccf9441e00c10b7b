"""`auditor test-alert`: a marked test message through the real delivery path.

The message is written like any notification (an audit `test` record and one
outbox row per channel, in one transaction) and delivered at once by the
outbox worker with the channels' real notifiers, retries and redaction. Only
the test rows are touched: a view of the store (`_TestRows`) shows the worker
those rows alone, so other pending notifications wait for the daemon as
usual. A failed test is reported, not retried later, and raises no
`delivery_failed` (the person running the test sees the error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import alerting
from .errors import AuditorError
from .notify import Notifier, make_notifier
from .outbox import deliver_pending
from .settings import Settings

__all__ = ["ProbeResult", "UnknownChannel", "send_test_alert"]


class UnknownChannel(AuditorError):
    """`--channel NAME` names no configured channel (a usage error)."""

    exit_code = 2


@dataclass(frozen=True)
class ProbeResult:
    channel: str
    delivered: bool
    error: str | None = None  # redacted by the outbox worker


def send_test_alert(settings: Settings, store: Any, channel: str | None, by: str,
                    now: datetime, notifiers: Mapping[str, Notifier] | None = None,
                    ) -> tuple[int, list[ProbeResult]]:
    """Send the test message to `channel` (None: every configured channel).
    Returns the `test` record's seq and one result per channel."""
    names = [c.name for c in settings.alerts.channels]
    if channel is not None and channel not in names:
        raise UnknownChannel(f"no channel named {channel!r}; configured: "
                             f"{', '.join(names) or 'none'} (alerts.channels)")
    targets = [channel] if channel is not None else names
    if not targets:
        raise UnknownChannel("no channels configured under alerts.channels")
    who = settings.exchange.name or settings.exchange.id
    notices = {ch: _notice(settings.exchange.id, who, ch, now) for ch in targets}
    seq, ids = store.record_test(now, by, notices)
    rows = _TestRows(store, {item_id: ch for ch, item_id in ids.items()})
    found = notifiers or {c.name: make_notifier(c) for c in settings.alerts.channels
                          if c.name in targets}
    deliver_pending(rows, found, settings.alerts, settings.exchange.id)
    return seq, [rows.result(ch, ids[ch]) for ch in targets]


def _notice(exchange_id: str, who: str, channel: str, now: datetime) -> dict[str, Any]:
    return {"seq": None, "kind": "firing", "test": True,
            "fingerprint": alerting.fingerprint(exchange_id, "test", channel),
            "rule": "test", "subject": channel, "severity": "warning",
            "at": alerting.rfc3339(now), "since": alerting.rfc3339(now),
            "summary": f"custody-auditor test alert from {who} — if you see this, "
                       f"channel {channel} works",
            "value": None, "threshold": None, "details": {"test": True}}


class _TestRows:
    """The store as the outbox worker sees it during a test: only the test rows;
    a retry becomes a dead letter (a test is not retried), no delivery_failed."""

    def __init__(self, store: Any, rows: Mapping[int, str]):
        self._store, self._rows = store, dict(rows)  # outbox id → channel
        self.outcome: dict[int, str | None] = {}  # id → None delivered, else the error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _pending(self, item_id: int) -> list[Any]:
        return [i for i in self._store.outbox_page(self._rows[item_id], item_id - 1, 1)
                if i.id == item_id]

    def pending_outbox(self, now: datetime, limit: int = 100,
                       channel: str | None = None) -> list[Any]:
        found = [i for r in sorted(self._rows) if channel in (None, self._rows[r])
                 for i in self._pending(r) if i.next_attempt_at <= now]
        return found[:limit]

    def outbox_page(self, channel: str, after_id: int, limit: int) -> list[Any]:
        found = [i for r in sorted(self._rows) if self._rows[r] == channel and r > after_id
                 for i in self._pending(r)]
        return found[:limit]

    def outbox_channels(self) -> dict[str, int]:
        return {ch: r for r, ch in sorted(self._rows.items(), reverse=True)
                if r not in self.outcome}

    def mark_delivered(self, item_id: int, at: datetime) -> None:
        self._store.mark_delivered(item_id, at)
        self.outcome[item_id] = None

    def mark_delivered_many(self, marks: Sequence[tuple[int, datetime]]) -> None:
        for item_id, at in marks:
            self.mark_delivered(item_id, at)

    def mark_retry(self, item_id: int, at: datetime, error: str, next_at: datetime) -> None:
        self.mark_dead(item_id, at, f"{error} (test-alert: not retried)")

    def mark_dead(self, item_id: int, at: datetime, error: str) -> None:
        self._store.mark_dead(item_id, at, error)
        self.outcome[item_id] = error

    def record_delivery_failed(self, *args: Any) -> tuple[None, dict[str, int]]:
        return None, {}

    def result(self, channel: str, item_id: int) -> ProbeResult:
        if item_id not in self.outcome:
            return ProbeResult(channel, False, "not attempted (the channel is down or paced); "
                                               "run the test again")
        error = self.outcome[item_id]
        return ProbeResult(channel, error is None, error)

