"""The daemon's delivery loop: the outbox drained on its own thread, between polls.

A cycle only enqueues (in its own transaction) and then `poke()`s the loop;
the loop runs `outbox.deliver_pending` on a Store connection it opened on its
own thread, then sleeps until the next retry is due (`Store.outbox_next_due`),
a cycle pokes it, or `IDLE_S` passes (rows written by another process, e.g.
`auditor alerts resolve`). So a retry scheduled 10 s out goes 10 s later, not
one `poll_every` later, and a slow receiver never delays a cycle.

At least once: `deliver_pending` marks a row delivered only after its send
returned, so a daemon killed with `kill -9` re-sends at most the message in
flight and the few marks not yet written (receivers drop duplicates by
`seq`), and delivers everything still pending when it starts again. `stop()`
(SIGTERM) lets the sends in flight finish and records them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .notify.base import Notifier
from .settings import Settings

__all__ = ["DeliveryLoop", "IDLE_S", "RETRY_OPEN_S"]

log = logging.getLogger("auditor.daemon")

IDLE_S = 60.0  # look at the outbox at least this often
RETRY_OPEN_S = 5.0  # after a store error, wait this long before opening it again
_NO_PROGRESS_S = 1.0  # a due row that a run could not move (store trouble): do not spin


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryLoop:
    """One thread that delivers the outbox until `stop()`; see the module docstring."""

    def __init__(self, settings: Settings, notifiers: Mapping[str, Notifier], *,
                 deliver: Callable[..., Any] | None = None,
                 open_store: Callable[[Any], Any] | None = None,
                 clock: Callable[[], datetime] = _utcnow, idle_s: float = IDLE_S):
        if deliver is None or open_store is None:
            from .outbox import deliver_pending  # late: the store pulls in sqlite-utils
            from .store import Store

            deliver = deliver or deliver_pending
            open_store = open_store or Store.open
        self._settings, self._notifiers = settings, notifiers
        self._deliver, self._open = deliver, open_store
        self._clock, self._idle_s = clock, idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="auditor-delivery",
                                            daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Something was enqueued: look at the outbox now."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Start no new send, let those in flight finish, close the store. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------
    def _main(self) -> None:
        store: Any = None
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before the run: a poke during it starts another
                try:
                    if store is None:
                        store = self._open(self._settings.store.path)
                    pause = self._run_once(store)
                except Exception as e:  # noqa: BLE001 - the loop must outlive a bad store
                    log.error("alert delivery: the store failed; retrying",
                              extra={"fields": {"error": f"{type(e).__name__}: {e}",
                                                "retry_in_s": RETRY_OPEN_S}})
                    _close_quietly(store)
                    store = None
                    pause = RETRY_OPEN_S
                self._wake.wait(pause)
        finally:
            _close_quietly(store)

    def _run_once(self, store: Any) -> float:
        """One delivery run; seconds until the next one is due."""
        s = self._settings
        report = self._deliver(store, self._notifiers, s.alerts, s.exchange.id,
                               stop=self._stop, sleep=self._stop.wait)
        for error in report.errors:  # already free of secrets: the outbox scrubs them
            log.warning("alert delivery", extra={"fields": {"error": error}})
        moved = report.delivered + report.retried + report.dead
        if moved:
            log.info("alert delivery", extra={"fields": {
                "delivered": report.delivered, "retried": report.retried,
                "dead": report.dead, "deferred": report.deferred}})
        due = store.outbox_next_due()
        if due is None:
            return self._idle_s
        pause = min(self._idle_s, max(0.0, (due - self._clock()).total_seconds()))
        return pause if moved or pause > 0 else _NO_PROGRESS_S


def _close_quietly(store: Any) -> None:
    if store is not None:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closing after a failure; nothing left to do
            pass
    return None
