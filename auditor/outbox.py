"""The outbox delivery worker: pending items → notifiers, retries, dead letters.

Transitions reach the outbox in the cycle's transaction (store.py); this
worker delivers them at least once: an item is marked delivered only after
its notifier returned. A retryable failure is retried with exponential
backoff and full jitter until the channel's retry budget is spent; then, or
at once for a permanent failure, the item is dead-lettered and a
`delivery_failed` alert (critical) is queued to every other configured
channel (the `log` channel if there is none), so a silent channel is noticed.

After a retryable failure the channel counts as down for the rest of the
run: its other items wait for the next run instead of each waiting out a
timeout (a run must stay well inside the cycle deadline).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .errors import DeliveryError
from .notify.base import Message, Notifier, rfc3339, wire_alert
from .notify.http import collect_secrets, scrub
from .notify.log import LogNotifier
from .settings import AlertSettings, ChannelSettings, RetrySettings

__all__ = [
    "FALLBACK_CHANNEL",
    "OutboxItem",
    "OutboxStore",
    "DeliveryReport",
    "backoff_delay",
    "delivery_failed_fingerprint",
    "deliver_pending",
]

log = logging.getLogger("auditor.outbox")

FALLBACK_CHANNEL = "log"  # stderr, used when no other channel exists or is configured


class OutboxItem(Protocol):
    id: int
    channel: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    first_attempt_at: datetime | None
    transitions: list[dict[str, Any]]


class OutboxStore(Protocol):
    """The part of `store.Store` the worker uses (positional arguments only)."""

    def pending_outbox(self, now: datetime, limit: int = 100,
                       channel: str | None = None) -> Sequence[OutboxItem]: ...
    def mark_delivered(self, item_id: int, at: datetime, /) -> None: ...
    def mark_retry(self, item_id: int, at: datetime, error: str,
                   next_attempt_at: datetime, /) -> None: ...
    def mark_dead(self, item_id: int, at: datetime, error: str, /) -> None: ...
    def enqueue(self, channel: str, transitions: list[dict[str, Any]], at: datetime,
                cycle: int | None = None, /) -> int: ...
    def head(self) -> str: ...


@dataclass
class DeliveryReport:
    """What one run did. `errors` name channel and item, never a secret.
    `deferred`: items not attempted because their channel failed earlier in
    the run (they stay pending)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
    deferred: int = 0


def backoff_delay(retry: RetrySettings, attempts: int, rand: Callable[[], float]) -> float:
    """Seconds until the next attempt after `attempts` earlier failed ones:
    min(first × 2^attempts, max), jittered uniformly within [delay/2, delay]."""
    delay = float(min(retry.first * 2 ** min(attempts, 62), retry.max))
    return delay / 2 + rand() * delay / 2


def delivery_failed_fingerprint(exchange_id: str, channel: str) -> str:
    text = f"{exchange_id}\ndelivery_failed\n{channel}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def deliver_pending(store: OutboxStore, notifiers: Mapping[str, Notifier],
                    alert_settings: AlertSettings, exchange_id: str,
                    now: datetime | None = None, *, limit: int = 1000,
                    clock: Callable[[], datetime] = _utcnow,
                    sleep: Callable[[float], None] = time.sleep,
                    monotonic: Callable[[], float] = time.monotonic,
                    rand: Callable[[], float] = random.random) -> DeliveryReport:
    """Deliver every due outbox item once. Never raises; see `DeliveryReport`.

    `now` fixes the time of the whole run (tests, `poll --once`); without it
    each send is stamped with `clock()`. `sleep`/`monotonic` pace channels
    with a `rate`; `rand` is the jitter source.
    """
    run = _Run(store, notifiers, alert_settings, exchange_id, now, clock, sleep, monotonic, rand)
    try:
        run.run(limit)
    except Exception as exc:  # the worker must never take the daemon down
        run.record(f"outbox run stopped: {type(exc).__name__}: {run.scrub(str(exc))}")
    return run.report


class _Run:
    def __init__(self, store: OutboxStore, notifiers: Mapping[str, Notifier],
                 settings: AlertSettings, exchange_id: str, now: datetime | None,
                 clock: Callable[[], datetime], sleep: Callable[[float], None],
                 monotonic: Callable[[], float], rand: Callable[[], float]):
        self.store, self.notifiers, self.settings = store, notifiers, settings
        self.exchange_id, self.fixed_now, self.clock = exchange_id, now, clock
        self.sleep, self.monotonic, self.rand = sleep, monotonic, rand
        self.report = DeliveryReport()
        self.channels = {c.name: c for c in settings.channels}
        self.secrets = collect_secrets(settings.channels)
        self.down: dict[str, str] = {}  # channel → error of its retryable failure this run
        self.dead: dict[str, list[tuple[OutboxItem, str]]] = {}
        self.next_slot: dict[str, float] = {}
        self.fallback = LogNotifier(FALLBACK_CHANNEL)

    # -- helpers ------------------------------------------------------------
    def now(self) -> datetime:
        return self.fixed_now if self.fixed_now is not None else self.clock()

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def record(self, text: str) -> None:
        self.report.errors.append(text)
        log.warning("%s", text)

    def retry_of(self, channel: str) -> RetrySettings:
        ch = self.channels.get(channel)
        return ch.retry if ch is not None and ch.retry is not None else self.settings.retry

    def notifier_for(self, channel: str) -> Notifier | None:
        found = self.notifiers.get(channel)
        if found is None and channel == FALLBACK_CHANNEL:
            return self.fallback
        return found

    def over_budget(self, item: OutboxItem, at: datetime) -> bool:
        start = item.first_attempt_at or item.created_at
        return (at - start).total_seconds() > self.retry_of(item.channel).budget

    # -- the run --------------------------------------------------------------
    def run(self, limit: int) -> None:
        start = self.now()
        for item in self.store.pending_outbox(start, limit=limit):
            self.guarded(item)
        queued = self.queue_delivery_failed()
        # Deliver the alarms in this run too: `poll --once` has no next run.
        for channel in sorted({channel for channel, _ in queued}):
            for item in self.store.pending_outbox(self.now(), limit=limit, channel=channel):
                if (channel, item.id) in queued:
                    self.guarded(item)

    def guarded(self, item: OutboxItem) -> None:
        try:
            self.process(item)
        except Exception as exc:  # a store error on one item must not stop the others
            self.record(f"channel {item.channel}: outbox item {item.id}: "
                        f"{type(exc).__name__}: {self.scrub(str(exc))}")

    def process(self, item: OutboxItem) -> None:
        at = self.now()
        notifier = self.notifier_for(item.channel)
        if notifier is None:
            self.unknown_channel(item, at)
        elif item.channel in self.down:
            self.defer(item, at)
        else:
            self.throttle(item.channel)
            error = self.attempt(notifier, item, at)
            if error is None:
                self.store.mark_delivered(item.id, at)
                self.report.delivered += 1
            else:
                self.failed(item, at, error)

    def message(self, item: OutboxItem, at: datetime) -> Message:
        alerts = [wire_alert(t) for t in item.transitions]
        test = any(t.get("test") is True for t in item.transitions)
        return Message(self.exchange_id, at, self.store.head(), alerts, test=test)

    def attempt(self, notifier: Notifier, item: OutboxItem, at: datetime) -> DeliveryError | None:
        message = self.message(item, at)
        try:
            notifier.send(message)
        except DeliveryError as exc:
            return DeliveryError(self.scrub(str(exc)), retryable=exc.retryable)
        except Exception as exc:  # a notifier bug; its text may hold a URL, so withhold it
            return DeliveryError(f"{type(exc).__name__} in the {item.channel} notifier "
                                 "(details withheld: they may contain secrets)", retryable=True)
        return None

    def throttle(self, channel: str) -> None:
        ch = self.channels.get(channel)
        if ch is None or ch.rate is None or ch.rate <= 0:
            return
        interval = 1.0 / float(ch.rate)  # a timing, not an amount
        now = self.monotonic()
        slot = max(self.next_slot.get(channel, now), now)
        if slot > now:
            self.sleep(slot - now)
        self.next_slot[channel] = slot + interval

    # -- outcomes -------------------------------------------------------------
    def failed(self, item: OutboxItem, at: datetime, error: DeliveryError) -> None:
        text = str(error)
        if error.retryable:
            self.down[item.channel] = text
        if error.retryable and not self.over_budget(item, at):
            delay = backoff_delay(self.retry_of(item.channel), item.attempts, self.rand)
            self.store.mark_retry(item.id, at, text, at + timedelta(seconds=delay))
            self.report.retried += 1
            self.record(f"channel {item.channel}: outbox item {item.id}: {text} "
                        f"(attempt {item.attempts + 1}; next in {delay:.0f}s)")
            return
        why = "permanent failure" if not error.retryable else "retry budget spent"
        self.kill(item, at, f"{text} ({why})")

    def kill(self, item: OutboxItem, at: datetime, text: str) -> None:
        self.store.mark_dead(item.id, at, text)
        self.report.dead += 1
        self.dead.setdefault(item.channel, []).append((item, text))
        self.record(f"channel {item.channel}: outbox item {item.id} dead-lettered: {text}")

    def defer(self, item: OutboxItem, at: datetime) -> None:
        if self.over_budget(item, at):
            self.kill(item, at, f"not attempted, channel down: {self.down[item.channel]} "
                                "(retry budget spent)")
        else:
            self.report.deferred += 1

    def unknown_channel(self, item: OutboxItem, at: datetime) -> None:
        """A channel removed from the config: write its alerts to the log
        channel so they are not lost, then dead-letter the item."""
        target = self.log_channel_notifier()
        error = self.attempt(target, item, at)
        gone = f"channel {item.channel!r} is not configured (removed from alerts.channels?)"
        if error is None:
            self.store.mark_dead(item.id, at, f"{gone}; its alerts were written to {target.name}")
            self.report.dead += 1
            self.record(f"outbox item {item.id}: {gone}; alerts written to {target.name} instead")
        elif self.over_budget(item, at):
            self.kill(item, at, f"{gone}; the log channel failed too: {error}")
        else:
            delay = backoff_delay(self.settings.retry, item.attempts, self.rand)
            self.store.mark_retry(item.id, at, f"{gone}; log channel: {error}",
                                  at + timedelta(seconds=delay))
            self.report.retried += 1
            self.record(f"outbox item {item.id}: {gone}; the log channel failed: {error}")

    def log_channel_notifier(self) -> Notifier:
        for ch in self.settings.channels:
            found = self.notifiers.get(ch.name)
            if ch.type == "log" and found is not None:
                return found
        return self.fallback

    # -- delivery_failed --------------------------------------------------------
    def queue_delivery_failed(self) -> set[tuple[str, int]]:
        queued: set[tuple[str, int]] = set()
        at = self.now()
        for channel, dead in self.dead.items():
            transition = self.delivery_failed(channel, dead, at)
            meta_only = all(t.get("rule") == "delivery_failed"
                            for item, _ in dead for t in item.transitions)
            targets = self.failure_targets(channel, meta_only)
            if not targets:
                self.record(f"delivery_failed for channel {channel} has nowhere to go: "
                            "configure a second channel (e.g. type log)")
            for target in targets:
                queued.add((target, self.store.enqueue(target, [transition], at)))
        return queued

    def failure_targets(self, dead_channel: str, meta_only: bool) -> list[str]:
        """Every other configured channel. When the dead item only carried
        delivery_failed alarms, log channels only: a chain of alarms about
        alarms between two broken channels must end."""
        names = list(dict.fromkeys([*self.channels, *self.notifiers]))
        others = [n for n in names if n != dead_channel]
        if meta_only:
            others = [n for n in others if self.is_log_channel(n)]
        if not others and dead_channel != FALLBACK_CHANNEL:
            others = [FALLBACK_CHANNEL]
        return others

    def is_log_channel(self, name: str) -> bool:
        ch = self.channels.get(name)
        return (ch is not None and ch.type == "log") or isinstance(self.notifiers.get(name),
                                                                   LogNotifier)

    def delivery_failed(self, channel: str, dead: list[tuple[OutboxItem, str]],
                        at: datetime) -> dict[str, Any]:
        since = min(item.created_at for item, _ in dead)
        seqs = [t["seq"] for item, _ in dead for t in item.transitions
                if isinstance(t.get("seq"), int) and not isinstance(t.get("seq"), bool)]
        last_error = dead[-1][1]
        budget_h = self.retry_of(channel).budget / 3600
        summary = (f"Channel {channel} could not be reached within its retry budget "
                   f"({budget_h:g}h) or refused the message: {last_error}. Alerts since "
                   f"{rfc3339(since)} may be missing there; fix the channel and check "
                   "`auditor alerts list` for what it missed.")
        return {
            "seq": max(seqs) if seqs else None, "kind": "firing",
            "fingerprint": delivery_failed_fingerprint(self.exchange_id, channel),
            "rule": "delivery_failed", "subject": channel, "severity": "critical",
            "at": rfc3339(at), "since": rfc3339(at), "summary": summary,
            "value": None, "threshold": None,
            "details": {"channel": channel, "outbox_ids": [item.id for item, _ in dead],
                        "missing_since": rfc3339(since)},
        }
