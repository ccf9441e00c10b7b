"""The outbox delivery worker: pending items → notifiers, retries, dead letters.

Transitions reach the outbox in the cycle's transaction (store.py); this
worker delivers them at least once: an item is marked delivered only after
its notifier returned. A retryable failure is retried with exponential
backoff and full jitter until the channel's retry budget is spent; then, or
at once for a permanent failure, the item is dead-lettered and a
`delivery_failed` alert (critical) is stored with a seq of its own and queued
to the other channels of the routes that include the dead channel (the `log`
channel if there is none), so a silent channel is noticed.

Channels are served concurrently, one lane each (`outbox_lanes`): one
message in flight per channel, in outbox order, paced by the channel's
`rate` (a token bucket), read a page at a time, so neither a slow, down or
rate-limited channel nor a 10,000-row backlog holds up the others or fills
memory. After a retryable failure the channel is down until its retry is
due: its younger rows wait behind the failed one (order is kept, and a down
channel costs one timeout per retry, not one per row). Delivered marks are
written a batch per transaction after the sends returned; a process killed
in between sends those few again (receivers drop duplicates by `seq`).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .errors import DeliveryError
from .notify.base import Message, Notifier, rfc3339, wire_alert
from .notify.http import collect_secrets, scrub
from .notify.log import LogNotifier
from .outbox_lanes import PAGE, Lane, LaneRunner
from .settings import AlertSettings, RetrySettings

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
_ALARM_ROUNDS = 3  # delivery_failed alarms delivered in the same run, alarms about alarms included


class OutboxItem(Protocol):
    """Read-only, so the store's frozen dataclass fits."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def attempts(self) -> int: ...
    @property
    def next_attempt_at(self) -> datetime: ...
    @property
    def first_attempt_at(self) -> datetime | None: ...
    @property
    def transitions(self) -> list[dict[str, Any]]: ...


class OutboxStore(Protocol):
    """The part of `store.Store` the worker uses (positional arguments only)."""

    def pending_outbox(self, now: datetime, limit: int = 100,
                       channel: str | None = None) -> Sequence[OutboxItem]: ...
    def outbox_page(self, channel: str, after_id: int, limit: int, /) -> Sequence[OutboxItem]: ...
    def outbox_channels(self) -> Mapping[str, int]: ...
    def mark_delivered(self, item_id: int, at: datetime, /) -> None: ...
    def mark_delivered_many(self, marks: list[tuple[int, datetime]], /) -> None: ...
    def mark_retry(self, item_id: int, at: datetime, error: str,
                   next_attempt_at: datetime, /) -> None: ...
    def mark_dead(self, item_id: int, at: datetime, error: str, /) -> None: ...
    def enqueue(self, channel: str, transitions: list[dict[str, Any]], at: datetime,
                cycle: int | None = None, /) -> int: ...
    def head(self) -> str: ...
    def record_delivery_failed(self, fingerprint: str, channel: str, at: datetime,
                               summary: str, details: dict[str, Any], channels: Sequence[str],
                               repeat_every: int = 3600, /) -> tuple[int | None,
                                                                    dict[str, int]]: ...


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
                    now: datetime | None = None, *, limit: int = PAGE,
                    clock: Callable[[], datetime] = _utcnow,
                    sleep: Callable[[float], object] = time.sleep,
                    monotonic: Callable[[], float] = time.monotonic,
                    rand: Callable[[], float] = random.random,
                    stop: threading.Event | None = None) -> DeliveryReport:
    """Deliver every due outbox item once. Never raises; see `DeliveryReport`.

    Returns when no channel has a due row left. `limit`: rows read per
    channel at a time. `now` fixes the time of the whole run (tests, `poll
    --once`); without it each send is stamped with `clock()`, and a channel
    whose retry falls due while other channels still keep the run busy is
    retried in it. `sleep`/`monotonic` pace channels with a `rate`; `rand` is
    the jitter source. `stop` (the daemon's SIGTERM): no new send starts;
    those in flight finish and are recorded.
    """
    run = _Run(store, notifiers, alert_settings, exchange_id, now, clock, sleep, monotonic, rand)
    run.limit, run.stop = max(1, int(limit)), stop
    try:
        run.run()
    except Exception as exc:  # the worker must never take the daemon down
        run.record(f"outbox run stopped: {type(exc).__name__}: {run.scrub(str(exc))}")
    finally:
        run.close()
    return run.report


class _Run(LaneRunner):
    def __init__(self, store: OutboxStore, notifiers: Mapping[str, Notifier],
                 settings: AlertSettings, exchange_id: str, now: datetime | None,
                 clock: Callable[[], datetime], sleep: Callable[[float], object],
                 monotonic: Callable[[], float], rand: Callable[[], float]):
        super().__init__(store, now, clock, sleep, monotonic)
        self.store: OutboxStore = store
        self.notifiers, self.settings = notifiers, settings
        self.exchange_id, self.rand = exchange_id, rand
        self.report = DeliveryReport()
        self.channels = {c.name: c for c in settings.channels}
        self.secrets = collect_secrets(settings.channels)
        self.dead: dict[str, list[tuple[OutboxItem, str]]] = {}
        self.fallback = LogNotifier(FALLBACK_CHANNEL)

    # -- helpers ------------------------------------------------------------
    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def record(self, text: str) -> None:
        self.report.errors.append(text)
        log.warning("%s", text)

    def rate_of(self, channel: str) -> float | None:
        ch = self.channels.get(channel)
        if ch is None or ch.rate is None or ch.rate <= 0:
            return None
        return float(ch.rate)  # messages per second: a timing, not an amount

    def on_delivered(self, count: int) -> None:
        self.report.delivered += count

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

    def guarded(self, item: OutboxItem, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # a store error on one item must not stop the others
            self.record(f"channel {item.channel}: outbox item {item.id}: "
                        f"{type(exc).__name__}: {self.scrub(str(exc))}")

    # -- the run --------------------------------------------------------------
    def run(self) -> None:
        self.drain()
        for round_ in range(_ALARM_ROUNDS):
            if not self.dead:
                return
            queued = self.queue_delivery_failed()
            self.dead = {}
            if not queued or self.stopping() or round_ == _ALARM_ROUNDS - 1:
                return
            self.drain()  # deliver the alarms in this run too: `poll --once` has no next run

    def message(self, item: OutboxItem, at: datetime) -> Message:
        alerts = [wire_alert(t) for t in item.transitions]
        test = any(t.get("test") is True for t in item.transitions)
        return Message(self.exchange_id, at, self.store.head(), alerts, test=test)

    def attempt(self, notifier: Notifier, item: OutboxItem, at: datetime) -> DeliveryError | None:
        return self.send(notifier, item.channel, self.message(item, at))

    def send(self, notifier: Notifier, channel: str, message: Message) -> DeliveryError | None:
        """One send (on a pool thread: no store here); the error, None when accepted."""
        try:
            notifier.send(message)
        except DeliveryError as exc:
            return DeliveryError(self.scrub(str(exc)), retryable=exc.retryable)
        except Exception as exc:  # a notifier bug; its text may hold a URL, so withhold it
            return DeliveryError(f"{type(exc).__name__} in the {channel} notifier "
                                 "(details withheld: they may contain secrets)", retryable=True)
        return None

    # -- outcomes -------------------------------------------------------------
    def outcome(self, lane: Lane, item: OutboxItem, at: datetime,
                error: DeliveryError | None) -> None:
        if error is None:
            if not self.marks:
                self.marks_since = self.monotonic()
            self.marks.append((item.channel, item.id, at))
            return
        retry_at: datetime | None = None
        try:
            retry_at = self.failed(item, at, error)
        finally:
            if error.retryable:
                self.hold(lane, item, at, retry_at)

    def hold(self, lane: Lane, item: OutboxItem, at: datetime, retry_at: datetime | None) -> None:
        """The channel is down: the rest of its page waits (or is dead-lettered when
        past its budget) until `retry_at`, then the lane starts again at the oldest row."""
        for rest in list(lane.page):
            self.guarded(rest, lambda: self.defer(rest, at))  # noqa: B023 - called at once
        lane.rewind(item.id if retry_at is not None else item.id + 1)
        first = timedelta(seconds=self.retry_of(lane.channel).first)
        lane.blocked_until = retry_at if retry_at is not None else at + first

    def failed(self, item: OutboxItem, at: datetime, error: DeliveryError) -> datetime | None:
        """Record a failed attempt; when the next one is due (None: dead-lettered)."""
        text = str(error)
        if error.retryable:
            self.down[item.channel] = text
        if error.retryable and not self.over_budget(item, at):
            delay = backoff_delay(self.retry_of(item.channel), item.attempts, self.rand)
            retry_at = at + timedelta(seconds=delay)
            self.store.mark_retry(item.id, at, text, retry_at)
            self.report.retried += 1
            self.record(f"channel {item.channel}: outbox item {item.id}: {text} "
                        f"(attempt {item.attempts + 1}; next in {delay:.0f}s)")
            return retry_at
        why = "permanent failure" if not error.retryable else "retry budget spent"
        self.kill(item, at, f"{text} ({why})")
        return None

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
            # Stored as an alert with a seq of its own (receivers dedupe by seq: reusing
            # the dead item's would drop the alarm), with its outbox rows, in one write.
            _seq, rows = self.store.record_delivery_failed(
                transition["fingerprint"], channel, at, transition["summary"],
                transition["details"], targets, self.settings.repeat_every)
            queued |= set(rows.items())
        return queued

    def failure_targets(self, dead_channel: str, meta_only: bool) -> list[str]:
        """The other channels of the routes that include the dead one (DESIGN.md:
        "to the other channels of its route"), else the log channels. When the
        dead item only carried delivery_failed alarms, log channels only: a chain
        of alarms about alarms between two broken channels must end."""
        routed = [c for r in self.settings.routes if dead_channel in r.channels
                  for c in r.channels]
        names = list(dict.fromkeys([*self.channels, *self.notifiers]))
        others = [n for n in dict.fromkeys(routed) if n != dead_channel]
        if meta_only or not others:
            others = [n for n in names if n != dead_channel and self.is_log_channel(n)]
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
        last_error = dead[-1][1]
        budget_h = self.retry_of(channel).budget / 3600
        summary = (f"Channel {channel} could not be reached within its retry budget "
                   f"({budget_h:g}h) or refused the message: {last_error}. Alerts since "
                   f"{rfc3339(since)} may be missing there; fix the channel and check "
                   "`auditor alerts list` for what it missed.")
        return {
            "seq": None, "kind": "firing",  # the store gives it a seq of its own
            "fingerprint": delivery_failed_fingerprint(self.exchange_id, channel),
            "rule": "delivery_failed", "subject": channel, "severity": "critical",
            "at": rfc3339(at), "since": rfc3339(at), "summary": summary,
            "value": None, "threshold": None,
            "details": {"channel": channel, "outbox_ids": [item.id for item, _ in dead],
                        "missing_since": rfc3339(since)},
        }
