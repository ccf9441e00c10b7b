"""`auditor run`: the daemon. Scheduling, signals, deadlines, health and metrics.

One process per store. The daemon takes the store's cycle lock for its whole
run (another daemon, or `poll --once`, gets `StoreLockedError`, exit 4), then
runs one cycle at start and one every `schedule.poll_every` seconds on an
APScheduler 3 `BackgroundScheduler` (UTC; `max_instances=1`, `coalesce=True`,
a misfire grace of half the interval: a late cycle runs once, never twice,
never two at a time). Each cycle gets a deadline of 0.8 × `poll_every`; the
service marks a cycle that overran as failed, the daemon also logs it. No
exception from a cycle ever stops the daemon: it is logged (secrets and URL
paths removed) and counted as a failed cycle. Alerts go out on a delivery
thread of their own (`daemon_delivery`), woken by each cycle and by due
retries. SIGTERM/SIGINT let the running cycle and the sends in flight finish,
stop the scheduler and the HTTP server, and return 0; a second signal exits
at once (the store's transactions keep it consistent).

How to watch it
---------------
- Prometheus: scrape `http://<daemon.listen>/metrics` (default
  `127.0.0.1:9464`; bind another address only behind a firewall). Useful
  alerts: `auditor_up == 0` or `absent(auditor_up)`;
  `time() - auditor_last_success_timestamp_seconds > 3 * <poll_every>`;
  `auditor_hot_ratio > 0.05`; `auditor_alerts_firing{severity="critical"} > 0`;
  `increase(auditor_cycles_total{status="failed"}[15m]) > 0`;
  `auditor_chain_lag_seconds > 300`. Metric names: see `auditor.metrics`.
- Kubernetes/systemd probes: `/livez` (503 when no cycle started within
  2 × `poll_every`: hung or dead scheduler → restart), `/readyz` (503 when the
  last ok cycle is older than `rules.stale_data.max_age`: data is stale).
- Dead-man's switch: set `daemon.heartbeat.url` to a healthchecks.io-style
  ping URL with a period of `poll_every` and a grace of a few periods. After
  every cycle (ok or not) the daemon POSTs `{"exchange", "cycle", "status",
  "head", "at"}`; a silent auditor is then noticed off-host. Keep the posted
  `head` values: they anchor the audit log (`auditor verify --anchor`).

Logs: JSON lines on stderr when it is not a terminal (`{"ts", "level",
"logger", "msg", "fields"}`), readable text on a terminal; see `setup_logging`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeAlias

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .daemon_logging import quiet_noisy_loggers, scrub, secrets_of, setup_logging
from .errors import ConfigError, ConfigProblem
from .health import Clock, DaemonState, HealthServer, Heartbeat, rfc3339
from .metrics import CycleOutcomeLike, DaemonMetrics
from .settings import Settings

__all__ = [
    "CycleFn",
    "Daemon",
    "run_daemon",
    "build_cycle_fn",
    "ServiceCycle",
    "setup_logging",
    "scrub",
    "DEADLINE_FRACTION",
]

log = logging.getLogger("auditor.daemon")
# cycle_fn(now, deadline_s) -> an object shaped like service.CycleOutcome
CycleFn: TypeAlias = Callable[[datetime, float], CycleOutcomeLike]
DEADLINE_FRACTION = 0.8


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- the store's cycle lock ------------------------------------------------------------


def _acquire_lock(db_path: Path) -> AbstractContextManager[object]:
    """The store's cycle lock: an OS file lock, so it is released if the process dies."""
    from .store import cycle_lock  # imported late: the store pulls in sqlite-utils

    return cycle_lock(db_path)


# --- the daemon --------------------------------------------------------------------------


class Daemon:
    """The running parts: scheduler, HTTP server, heartbeat. `run_daemon` drives it."""

    def __init__(
        self,
        settings: Settings,
        cycle_fn: CycleFn,
        *,
        clock: Clock | None = None,
        stop_event: threading.Event | None = None,
    ):
        self.settings = settings
        self.cycle_fn = cycle_fn
        self.clock: Clock = clock or _utcnow
        self.poll_every = max(1, settings.schedule.poll_every)
        self.deadline_s = DEADLINE_FRACTION * self.poll_every
        self.metrics = DaemonMetrics()
        self.state = DaemonState(started_at=self.clock())
        self.http: HealthServer | None = None
        self.heartbeat: Heartbeat | None = None
        self._secrets = frozenset(secrets_of(settings))
        # Shared with run_daemon: once a stop is asked for, no new cycle starts.
        self._stopping = stop_event if stop_event is not None else threading.Event()
        self._last_head: str | None = None
        # Every cycle (and the cycle's close()) runs on this one thread: a SQLite
        # connection must stay in the thread that opened it.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="auditor-cycle")
        self._worker_closed = False
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
        )

    @property
    def port(self) -> int | None:
        """The HTTP server's bound port (None: no server)."""
        return self.http.port if self.http else None

    def start(self) -> None:
        d = self.settings.daemon
        if d.listen_port is not None:
            self.http = self._bind(d.listen_host, d.listen_port)
            self.http.start()
        if d.heartbeat_url is not None:
            self.heartbeat = Heartbeat(
                d.heartbeat_url, timeout=d.heartbeat_timeout,
                on_failure=self.metrics.heartbeat_failed,
            )
        self._scheduler.add_job(
            self.run_one_cycle,
            trigger=IntervalTrigger(seconds=self.poll_every, timezone=UTC),
            id="cycle",
            name="auditor cycle",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, self.poll_every // 2),
            next_run_time=_utcnow(),  # the first cycle runs at start
        )
        self._scheduler.start()

    def _bind(self, host: str, port: int) -> HealthServer:
        try:
            return HealthServer(
                host, port, metrics=self.metrics, state=self.state, clock=self.clock,
                poll_every=self.poll_every,
                stale_max_age=self.settings.rules.stale_data.max_age,
            )
        except OSError as e:
            problem = ConfigProblem(
                file=str(self.settings.source), path="daemon.listen",
                message=f"cannot listen on {host}:{port} ({e.strerror or e}); "
                "choose a free address and port, or stop the process using it",
            )
            raise ConfigError([problem]) from None

    def stop(self) -> None:
        """Let the running cycle finish, then stop everything. Safe to call twice."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._close_cycle_fn()
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.heartbeat is not None:
            self.heartbeat.close()
            self.heartbeat = None

    def _close_cycle_fn(self) -> None:
        if self._worker_closed:
            return
        self._worker_closed = True
        close = getattr(self.cycle_fn, "close", None)
        try:
            if callable(close):
                self._worker.submit(close).result()
        except Exception as e:  # noqa: BLE001 - shutting down; report and go on
            log.error("closing the cycle failed", extra={"fields": self._error_fields(e)})
        self._worker.shutdown(wait=True)

    def run_one_cycle(self) -> None:
        """The scheduled job. Never raises: one bad cycle must not end the daemon."""
        if self._stopping.is_set():
            return
        try:
            self._cycle()
        except Exception as e:  # noqa: BLE001 - bookkeeping failed; still never die
            log.error("cycle bookkeeping failed", extra={"fields": self._error_fields(e)})

    def _cycle(self) -> None:
        taken_at = self.clock()
        self.state.cycle_started(taken_at)
        t0 = time.monotonic()
        try:
            outcome = self._worker.submit(self.cycle_fn, taken_at, self.deadline_s).result()
        except Exception as e:  # noqa: BLE001 - any failure is a failed cycle, not a crash
            duration = time.monotonic() - t0
            self.metrics.observe_crash(duration)
            fields = {"status": "failed", "duration_s": round(duration, 3)}
            log.error("cycle raised", extra={"fields": {**fields, **self._error_fields(e)}})
            self._send_heartbeat(None, "failed", self._last_head)
            return
        self._record(outcome, taken_at, time.monotonic() - t0)

    def _record(self, outcome: CycleOutcomeLike, taken_at: datetime, elapsed: float) -> None:
        self.metrics.observe(outcome, taken_at=taken_at)
        if outcome.status == "ok":
            self.state.cycle_ok(taken_at)
        self._last_head = outcome.head or self._last_head
        duration = float(outcome.duration_s or elapsed)
        fields = {
            "cycle": outcome.cycle_id, "status": outcome.status,
            "duration_s": round(duration, 3), "head": outcome.head,
        }
        level = logging.INFO if outcome.status == "ok" else logging.WARNING
        log.log(level, "cycle finished", extra={"fields": fields})
        if max(duration, elapsed) > self.deadline_s:
            log.warning(
                "cycle overran its deadline (0.8 x poll_every); raise schedule.poll_every "
                "or check slow providers",
                extra={"fields": {**fields, "deadline_s": self.deadline_s}},
            )
        self._send_heartbeat(outcome.cycle_id, outcome.status, outcome.head)

    def _send_heartbeat(self, cycle: int | None, status: str, head: str | None) -> None:
        if self.heartbeat is None:
            return
        self.heartbeat.send({
            "exchange": self.settings.exchange.id,
            "cycle": cycle,
            "status": status,
            "head": head,
            "at": rfc3339(self.clock()),
        })

    def _error_fields(self, e: BaseException) -> dict[str, Any]:
        tb = "".join(traceback.format_exception(e))
        return {
            "error": scrub(f"{type(e).__name__}: {e}", self._secrets),
            "traceback": scrub(tb, self._secrets),
        }


# --- entry points --------------------------------------------------------------------------


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # Second signal: the operator does not want to wait; the store stays consistent.
            os._exit(128 + signum)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_daemon(
    settings: Settings,
    *,
    cycle_fn: CycleFn | None = None,
    stop_event: threading.Event | None = None,
    install_signals: bool = True,
    clock: Clock | None = None,
    on_started: Callable[[Daemon], None] | None = None,
) -> int:
    """Run until `stop_event` is set (or SIGTERM/SIGINT); return the exit code (0).

    Raises `StoreLockedError` (exit 4) when another process holds the store's
    cycle lock, `ConfigError` (exit 2) when `daemon.listen` cannot be bound.
    `install_signals` must be False outside the main thread. `on_started`
    receives the running `Daemon` (e.g. its bound `.port`).
    """
    stop = stop_event if stop_event is not None else threading.Event()
    quiet_noisy_loggers()
    with ExitStack() as stack:
        if install_signals:
            stack.enter_context(_stop_on_signals(stop))
        stack.enter_context(_acquire_lock(settings.store.path))
        fn = cycle_fn or build_cycle_fn(settings)
        daemon = Daemon(settings, fn, clock=clock, stop_event=stop)
        stack.callback(daemon.stop)
        daemon.start()
        log.info("daemon started", extra={"fields": _start_fields(settings, daemon)})
        if on_started is not None:
            on_started(daemon)
        # A timeout keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
        log.info("stopping: letting the running cycle finish")
    log.info("daemon stopped")
    return 0


def _start_fields(settings: Settings, daemon: Daemon) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "exchange": settings.exchange.id,
        "poll_every": daemon.poll_every,
        "store": str(settings.store.path),
    }
    if daemon.http is not None:
        fields["listen"] = f"{daemon.http.host}:{daemon.http.port}"
    if daemon.heartbeat is not None:
        fields["heartbeat"] = daemon.heartbeat.label
    return fields


class ServiceCycle:
    """The production cycle: `service.run_cycle` on a long-lived Store; alerts go
    out on the delivery loop's own thread (`daemon_delivery.DeliveryLoop`).

    Each cycle enqueues its transitions in its own transaction, then pokes
    the loop, which delivers them (and retries when they fall due) without
    waiting for the next poll. The loop starts with the first cycle, so what
    a previous run left pending goes out at once. The Store stays open
    between cycles (its balance cache saves re-reading every address each
    poll); the daemon calls it, and `close()`, on one thread. A cycle that
    raises drops the Store: the next one opens a fresh one.
    """

    def __init__(self, settings: Settings):
        # Imported here, not at module top: the daemon module loads without them.
        from .daemon_delivery import DeliveryLoop
        from .notify import make_notifier
        from .outbox import deliver_pending
        from .reports.schedule import ReportScheduler
        from .service import run_cycle
        from .store import Store

        self._settings = settings
        self._run_cycle, self._open = run_cycle, Store.open
        self._notifiers = {c.name: make_notifier(c) for c in settings.alerts.channels}
        self._store: Any = None
        self.delivery = DeliveryLoop(settings, self._notifiers, deliver=deliver_pending,
                                     open_store=Store.open)
        self._reports = ReportScheduler(settings)
        from .daemon_sanctions import SanctionsRefresher

        self.sanctions = SanctionsRefresher(settings)

    def __call__(self, now: datetime, deadline_s: float) -> CycleOutcomeLike:
        s = self._settings
        self.delivery.start()
        if self._store is None:
            self._store = self._open(s.store.path)
        try:
            outcome = self._run_cycle(s, self._store, now=now, deadline_s=deadline_s)
        except BaseException:
            self._drop_store()
            raise
        finally:
            self.delivery.poke()  # a failed cycle still enqueues its stale_data
        self._write_due_report(now)
        self.sanctions.due(now)  # URL lists: refreshed daily in a thread of their own
        return outcome

    def _write_due_report(self, now: datetime) -> None:
        """The report of a period that just closed (`reports:`); never fails the cycle."""
        try:
            self._reports.due(self._store, now)
        except Exception as e:  # noqa: BLE001 - a report problem must not stop monitoring
            log.error("writing the scheduled report failed; `auditor report` can write it",
                      extra={"fields": {"error": f"{type(e).__name__}: {e}"}})

    def _drop_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def close(self) -> None:
        """Stop the delivery loop (its sends in flight finish), close the Store."""
        self.delivery.stop()
        self._drop_store()


def build_cycle_fn(settings: Settings) -> ServiceCycle:
    """The cycle `auditor run` uses: see `ServiceCycle`."""
    return ServiceCycle(settings)
