"""The outbox worker's lanes: one per channel, each paced by a token bucket.

A lane holds at most one page of its channel's pending rows (memory stays
bounded whatever the backlog), has at most one message in flight (a channel
gets its transitions in `seq` order) and never waits for another lane: the
worker starts a lane's next send as soon as its previous send returned and
its bucket holds a token, so a slow, down or rate-limited channel holds up
nobody else.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import DeliveryError
from .notify.base import Message, Notifier

__all__ = ["Lane", "LaneRunner", "TokenBucket", "PAGE", "RECHECK_S", "FLUSH_ROWS", "FLUSH_S"]

PAGE = 200  # rows read per channel at a time
RECHECK_S = 1.0  # while a run goes on, an idle channel looks for new or due rows this often
FLUSH_ROWS = 64  # delivered marks per transaction: at most this many re-sent after a kill -9
FLUSH_S = 0.25  # … and kept unwritten at most this long
_PARALLEL = 16  # channels sending at the same time

_EPSILON = 1e-9  # float slack: a wait of exactly (1 - tokens) / rate must yield a whole token


class TokenBucket:
    """`rate` tokens per second, at most `burst` kept; a message takes one.

    With the default burst of 1 a channel never gets two messages closer than
    1/rate seconds, which is what chat services' "1 per second" limits mean.
    Times are `time.monotonic()` seconds (timings, not amounts: floats are fine).
    """

    def __init__(self, rate: float, now: float, burst: float = 1.0):
        if rate <= 0:
            raise ValueError("a token bucket needs a rate above 0 messages per second")
        self.rate, self.burst = rate, max(1.0, burst)
        self.tokens, self.stamp = self.burst, now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0: one is available now)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0


@dataclass
class Lane:
    """One channel's place in a delivery run (see the module docstring).

    `cursor` is the highest outbox id fetched: pages continue after it, so a
    row is handled once per run even when its store update failed.
    `blocked_until`: the channel is down or its oldest row waits for its
    retry time; younger rows wait behind it.
    """

    channel: str
    bucket: TokenBucket | None = None
    cursor: int = 0
    page: deque[Any] = field(default_factory=deque)
    drained: bool = False  # the last fetch found nothing after the cursor
    checked: float = 0.0  # monotonic time of that fetch
    blocked_until: datetime | None = None
    inflight: Future[Any] | None = None
    sending: Any = None  # the outbox item in flight
    sent_at: datetime | None = None

    def rewind(self, to_id: int) -> None:
        """Forget the page; the next fetch starts at row `to_id`."""
        self.page.clear()
        self.cursor = to_id - 1
        self.drained = False


class LaneRunner:
    """The scheduling half of a delivery run (`outbox._Run` adds what an outcome means).

    `drain()` serves every lane until none has a due row left: lanes are
    found with `store.outbox_channels()`, paged with `store.outbox_page()`;
    each send runs on a pool thread while the store stays on the calling
    thread (SQLite connections belong to their thread); `sent` wakes the
    caller when a send returns. With a fixed `now` time stands still, so a
    row not due at the start is not due in the run; otherwise a channel whose
    retry falls due, or that gets new rows, while others keep the run busy is
    served in the same run.
    """

    def __init__(self, store: Any, now: datetime | None, clock: Callable[[], datetime],
                 sleep: Callable[[float], object], monotonic: Callable[[], float]):
        self.store, self.fixed_now, self.clock = store, now, clock
        self.sleep, self.monotonic = sleep, monotonic
        self.limit = PAGE
        self.stop: threading.Event | None = None
        self.lanes: dict[str, Lane] = {}
        self.found_at = 0.0  # monotonic time lanes were last looked for
        self.sent = threading.Event()  # set by every send that returns
        self.pool: ThreadPoolExecutor | None = None
        self.marks: list[tuple[str, int, datetime]] = []  # sent, not yet marked delivered
        self.marks_since = 0.0
        self.down: dict[str, str] = {}  # channel → error of its retryable failure, while down

    # -- what the outbox supplies -----------------------------------------------
    def rate_of(self, channel: str) -> float | None:
        raise NotImplementedError

    def notifier_for(self, channel: str) -> Notifier | None:
        raise NotImplementedError

    def unknown_channel(self, item: Any, at: datetime) -> None:
        raise NotImplementedError

    def message(self, item: Any, at: datetime) -> Message:
        raise NotImplementedError

    def send(self, notifier: Notifier, channel: str, message: Message) -> DeliveryError | None:
        raise NotImplementedError

    def outcome(self, lane: Lane, item: Any, at: datetime, error: DeliveryError | None) -> None:
        raise NotImplementedError

    def on_delivered(self, count: int) -> None:
        raise NotImplementedError

    def guarded(self, item: Any, action: Callable[[], object]) -> None:
        raise NotImplementedError

    def record(self, text: str) -> None:
        raise NotImplementedError

    def scrub(self, text: str) -> str:
        raise NotImplementedError

    # -- time -----------------------------------------------------------------
    def now(self) -> datetime:
        return self.fixed_now if self.fixed_now is not None else self.clock()

    @property
    def live(self) -> bool:
        """Time passes during the run (False with a fixed `now`: nothing falls due)."""
        return self.fixed_now is None

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    # -- the loop ---------------------------------------------------------------
    def close(self) -> None:
        """Wait for sends still in flight (a run ended by an error) and record them."""
        if self.pool is None:
            return
        self.pool.shutdown(wait=True)
        self.pool = None
        try:
            self.collect()
            self.flush()
        except Exception as exc:
            self.record(f"outbox run stopped: {type(exc).__name__}: {self.scrub(str(exc))}")

    def drain(self) -> None:
        """Serve every channel until none has a due row left (or `stop`)."""
        self.find_lanes()
        while True:
            busy, wait = self.step()
            if not busy:
                break
            if any(lane.inflight is not None for lane in self.lanes.values()):
                self.sent.wait(wait)
                self.sent.clear()  # collect() below looks at every lane's send
            elif wait is not None and wait > 0:
                self.sleep(wait)  # every busy channel waits for a token
            self.collect()
        self.flush()

    def find_lanes(self) -> None:
        self.found_at = self.monotonic()
        for channel, first_id in self.store.outbox_channels().items():
            lane = self.lanes.get(channel)
            if lane is None:
                self.lanes[channel] = Lane(channel, self.bucket_for(channel), cursor=first_id - 1)
            elif not lane.page and lane.blocked_until is None:
                lane.drained = False  # rows may have come since (delivery_failed alarms)

    def bucket_for(self, channel: str) -> TokenBucket | None:
        rate = self.rate_of(channel)
        return TokenBucket(rate, self.monotonic()) if rate else None

    def step(self) -> tuple[bool, float | None]:
        """Advance every lane; (some lane is busy, seconds until one may progress)."""
        if self.live and self.monotonic() - self.found_at >= RECHECK_S:
            self.find_lanes()
        busy, wait = False, None
        for lane in list(self.lanes.values()):
            try:
                lane_busy, lane_wait = self.advance(lane)
            except Exception as exc:  # e.g. the page could not be read: idle the lane
                lane.page.clear()
                lane.drained, lane.checked = True, self.monotonic()
                lane_busy, lane_wait = lane.inflight is not None, None
                self.record(f"channel {lane.channel}: {type(exc).__name__}: "
                            f"{self.scrub(str(exc))}")
            busy = busy or lane_busy
            if lane_wait is not None:
                wait = lane_wait if wait is None else min(wait, lane_wait)
        if self.marks and (len(self.marks) >= FLUSH_ROWS
                           or self.monotonic() - self.marks_since >= FLUSH_S):
            self.flush()
        return busy, wait

    def advance(self, lane: Lane) -> tuple[bool, float | None]:
        """Start the lane's next send if it may; (busy, seconds until it may progress)."""
        while lane.inflight is None and not self.stopping():
            now = self.now()
            if lane.blocked_until is not None:
                if now < lane.blocked_until:
                    return False, self.until(lane.blocked_until)
                lane.blocked_until = None
                self.down.pop(lane.channel, None)
            item = self.head(lane)
            if item is None:
                return False, self.recheck_in(lane)
            if item.next_attempt_at > now:  # it waits for its retry; younger rows wait behind it
                lane.rewind(item.id)
                lane.blocked_until = item.next_attempt_at
                continue
            notifier = self.notifier_for(lane.channel)
            if notifier is None:
                lane.page.popleft()
                self.guarded(item, lambda: self.unknown_channel(item, now))  # noqa: B023 (called at once)
                continue
            wait = lane.bucket.wait(self.monotonic()) if lane.bucket is not None else 0.0
            if wait > 0:
                return True, wait
            self.start(lane, notifier, item, now)
        return lane.inflight is not None, None

    def head(self, lane: Lane) -> Any | None:
        if not lane.page:
            if lane.drained and (not self.live or self.monotonic() - lane.checked < RECHECK_S):
                return None
            page = self.store.outbox_page(lane.channel, lane.cursor, self.limit)
            lane.page.extend(page)
            lane.drained, lane.checked = len(page) < self.limit, self.monotonic()
            if page:
                lane.cursor = page[-1].id
        return lane.page[0] if lane.page else None

    def until(self, at: datetime) -> float | None:
        return max(0.0, (at - self.now()).total_seconds()) if self.live else None

    def recheck_in(self, lane: Lane) -> float | None:
        return max(0.0, RECHECK_S - (self.monotonic() - lane.checked)) if self.live else None

    def start(self, lane: Lane, notifier: Notifier, item: Any, at: datetime) -> None:
        lane.page.popleft()
        if lane.bucket is not None:
            lane.bucket.take(self.monotonic())
        message = self.message(item, at)  # here: the store belongs to this thread
        if self.pool is None:
            self.pool = ThreadPoolExecutor(_PARALLEL, thread_name_prefix="auditor-send")
        lane.sending, lane.sent_at = item, at
        lane.inflight = self.pool.submit(self.send, notifier, item.channel, message)
        lane.inflight.add_done_callback(lambda _: self.sent.set())

    def collect(self) -> None:
        for lane in self.lanes.values():
            future, item, at = lane.inflight, lane.sending, lane.sent_at
            if future is None or not future.done() or item is None or at is None:
                continue
            lane.inflight = lane.sending = lane.sent_at = None
            error: DeliveryError | None = future.result()  # send() never raises
            self.guarded(item, lambda: self.outcome(lane, item, at, error))  # noqa: B023 (called at once)

    def flush(self) -> None:
        """Mark the sent rows delivered, a batch per transaction; on a store error
        row by row, so one bad row leaves only itself pending (sent again later)."""
        marks, self.marks = self.marks, []
        if not marks:
            return
        try:
            self.store.mark_delivered_many([(item_id, at) for _, item_id, at in marks])
            self.on_delivered(len(marks))
            return
        except Exception:  # noqa: BLE001 - find the bad row below
            pass
        for channel, item_id, at in marks:
            try:
                self.store.mark_delivered(item_id, at)
                self.on_delivered(1)
            except Exception as exc:
                self.record(f"channel {channel}: outbox item {item_id}: "
                            f"{type(exc).__name__}: {self.scrub(str(exc))}")
