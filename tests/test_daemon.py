"""The daemon end to end with a fake cycle: scheduler, HTTP probes, heartbeat, signals, lock."""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from auditor.daemon import Daemon, run_daemon
from auditor.errors import StoreLockedError
from auditor.settings import (
    AlertSettings,
    ApprovalsSettings,
    DaemonSettings,
    ExchangeSettings,
    HotDrainRule,
    PriceSettings,
    RuleSettings,
    ScheduleSettings,
    Secret,
    Settings,
    StaleDataRule,
    StoreSettings,
)

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TOKEN = "hb-token-5f3a9c"
HEAD = "cd" * 32


def make_settings(
    directory: Path,
    *,
    poll_every: int = 3600,
    port: int | None = 0,
    heartbeat_url: str | None = None,
    stale_max_age: int = 180,
) -> Settings:
    rules = RuleSettings(
        preset="none", scope_classes=None, hot_ratio=None, asset_hot_ratio=None,
        guarantee_coverage=None, reserve_coverage=None, commingling=None, hot_floor=None,
        hot_drain=HotDrainRule(min_value=Decimal(0), windows=()),
        stale_data=StaleDataRule(max_age=stale_max_age),
    )
    return Settings(
        source=directory / "auditor.yaml",
        exchange=ExchangeSettings(id="example-ex", name="Example"),
        store=StoreSettings(path=directory / "auditor.db"),
        daemon=DaemonSettings(
            listen_port=port,
            heartbeat_url=Secret(heartbeat_url) if heartbeat_url else None,
            heartbeat_timeout=5,
        ),
        schedule=ScheduleSettings(poll_every=poll_every),
        chains={}, assets={}, wallets=(),
        prices=PriceSettings(source="static", static={}),
        liabilities=None, approvals=ApprovalsSettings(), rules=rules, alerts=AlertSettings(),
    )


@dataclass
class Outcome:
    status: str = "ok"
    cycle_id: int | None = 1
    poll: dict[str, Any] = field(default_factory=dict)
    head: str = HEAD
    duration_s: float = 0.01
    chain_lag_s: dict[str, float] = field(default_factory=dict)


def poll_with(hot_ratio: str | None) -> dict[str, Any]:
    eth = {"hot": "12.5", "warm": "0", "deposit": "0", "cold": "387.5", "guarantee": "13",
           "proprietary": "0", "hot_ratio": hot_ratio}
    return {"exchange": "example-ex", "status": "ok", "chains": {"ethereum": {"ok": True}},
            "exposure": {"hot_ratio": hot_ratio, "assets": {"ETH": eth}}, "alerts": []}


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    # A safety bound so a broken daemon fails the test instead of hanging it.
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Running:
    """run_daemon on a thread; stop() sets the stop event and returns the exit code."""

    def __init__(self, settings: Settings, cycle_fn: Any, clock: Any = None):
        self.stop_event = threading.Event()
        self.started = threading.Event()
        self.daemon: Daemon | None = None
        self.rc: int | None = None
        self.error: BaseException | None = None

        def on_started(d: Daemon) -> None:
            self.daemon = d
            self.started.set()

        def target() -> None:
            try:
                self.rc = run_daemon(
                    settings, cycle_fn=cycle_fn, stop_event=self.stop_event,
                    install_signals=False, clock=clock, on_started=on_started,
                )
            except BaseException as e:  # noqa: BLE001 - reported to the test
                self.error = e
                self.started.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.started.wait(15), "daemon did not start"
        if self.error:
            raise self.error

    @property
    def base(self) -> str:
        assert self.daemon is not None and self.daemon.port
        return f"http://127.0.0.1:{self.daemon.port}"

    def stop(self) -> int | None:
        self.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "run_daemon did not return after stop"
        return self.rc


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: Any, **kwargs: Any) -> Running:
        r = Running(*args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop_event.set()
        r.thread.join(15)


class Receiver:
    """A heartbeat receiver on 127.0.0.1 that records each POST."""

    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_first_cycle_runs_at_start_with_the_deadline(tmp_path: Path, running: Any) -> None:
    calls: list[tuple[datetime, float]] = []

    def cycle(now: datetime, deadline_s: float) -> Outcome:
        calls.append((now, deadline_s))
        return Outcome()

    d = running(make_settings(tmp_path, poll_every=3600), cycle, clock=lambda: T0)
    wait_for(lambda: len(calls) == 1, "the first cycle")
    assert calls[0] == (T0, 0.8 * 3600)
    assert d.stop() == 0


def test_metrics_endpoint_exports_the_cycle_and_nan_for_a_null_ratio(
    tmp_path: Path, running: Any
) -> None:
    def cycle(now: datetime, deadline_s: float) -> Outcome:
        return Outcome(poll=poll_with(None), chain_lag_s={"ethereum": 3.0}, duration_s=0.5)

    d = running(make_settings(tmp_path), cycle, clock=lambda: T0)
    wait_for(lambda: b'status="ok"} 1.0' in get(d.base + "/metrics")[1], "a recorded cycle")
    text = get(d.base + "/metrics")[1].decode()
    metrics = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert math.isnan(float(metrics["auditor_hot_ratio"]))
    assert math.isnan(float(metrics['auditor_asset_hot_ratio{asset="ETH"}']))
    assert float(metrics['auditor_holdings{asset="ETH",role="customer",tier="cold"}']) == 387.5
    assert float(metrics['auditor_holdings{asset="ETH",role="guarantee",tier="cold"}']) == 13
    assert float(metrics['auditor_chain_lag_seconds{chain="ethereum"}']) == 3.0
    assert float(metrics["auditor_cycle_duration_seconds"]) == 0.5
    assert float(metrics["auditor_last_success_timestamp_seconds"]) == T0.timestamp()


def test_probes_turn_503_when_data_is_stale_or_no_cycle_starts(
    tmp_path: Path, running: Any
) -> None:
    now = [T0]
    settings = make_settings(tmp_path, poll_every=3600, stale_max_age=180)
    d = running(settings, lambda at, deadline: Outcome(), clock=lambda: now[0])
    wait_for(lambda: get(d.base + "/readyz")[0] == 200, "readyz after the first ok cycle")
    assert get(d.base + "/livez")[0] == 200
    now[0] = T0 + timedelta(seconds=181)  # past the stale limit, within 2 x poll_every
    code, body = get(d.base + "/readyz")
    assert code == 503 and json.loads(body)["ok"] is False
    assert get(d.base + "/livez")[0] == 200
    now[0] = T0 + timedelta(seconds=2 * 3600 + 1)
    assert get(d.base + "/livez")[0] == 503


def test_heartbeat_posts_cycle_json_and_never_logs_its_token(
    tmp_path: Path, running: Any, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, heartbeat_url=receiver.url)
    d = running(settings, lambda at, deadline: Outcome(cycle_id=42), clock=lambda: T0)
    wait_for(lambda: len(receiver.requests) == 1, "the heartbeat")
    path, body = receiver.requests[0]
    assert path == f"/ping/{TOKEN}"
    assert body == {"exchange": "example-ex", "cycle": 42, "status": "ok", "head": HEAD,
                    "at": "2026-11-24T10:00:00Z"}
    d.stop()
    assert "daemon started" in caplog.text
    assert TOKEN not in caplog.text


def test_failing_heartbeat_is_logged_redacted_and_the_daemon_goes_on(
    tmp_path: Path, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = Receiver()
    url = dead.url
    dead.close()  # nothing listens there any more: connection refused
    calls: list[int] = []

    def cycle(now: datetime, deadline_s: float) -> Outcome:
        calls.append(1)
        return Outcome()

    d = running(make_settings(tmp_path, poll_every=1, heartbeat_url=url), cycle)
    wait_for(lambda: len(calls) >= 2, "a cycle after the failed heartbeat")
    assert d.stop() == 0
    failures = [r for r in caplog.records if r.getMessage() == "heartbeat failed"]
    assert failures and failures[0].fields["url"].startswith("http://127.0.0.1:")  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text


def test_a_cycle_that_raises_does_not_kill_the_daemon(
    tmp_path: Path, running: Any, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def cycle(now: datetime, deadline_s: float) -> Outcome:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"provider down: https://rpc.example/v3/{TOKEN}")
        return Outcome(cycle_id=2)

    settings = make_settings(tmp_path, poll_every=1, heartbeat_url=receiver.url)
    d = running(settings, cycle)
    wait_for(lambda: len(receiver.requests) >= 2, "a cycle after the crash")
    assert [b["status"] for _, b in receiver.requests[:2]] == ["failed", "ok"]
    assert receiver.requests[0][1]["cycle"] is None
    text = get(d.base + "/metrics")[1].decode()
    assert 'auditor_cycles_total{status="failed"} 1.0' in text
    assert d.stop() == 0
    crash = [r for r in caplog.records if r.getMessage() == "cycle raised"]
    assert crash and "https://rpc.example:443" in crash[0].fields["error"]  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text


def test_stop_event_lets_the_running_cycle_finish_then_returns_0(
    tmp_path: Path, running: Any
) -> None:
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    def cycle(now: datetime, deadline_s: float) -> Outcome:
        entered.set()
        release.wait(15)
        events.append("cycle finished")
        return Outcome()

    d = running(make_settings(tmp_path, port=None), cycle)
    assert entered.wait(15)
    d.stop_event.set()
    # A daemon that does not wait returns well within this bound; a correct one never does.
    d.thread.join(1.0)
    assert d.thread.is_alive(), "run_daemon returned while a cycle was running"
    release.set()
    assert d.stop() == 0
    assert events == ["cycle finished"]


CHILD = """
import pathlib, sys, time
sys.path.insert(0, {tests!r})
from test_daemon import Outcome, make_settings
from auditor.daemon import run_daemon, setup_logging

work = pathlib.Path(sys.argv[1])
setup_logging()

def cycle(now, deadline_s):
    (work / "started").touch()
    while not (work / "release").exists():
        time.sleep(0.01)
    print("cycle finished", flush=True)
    return Outcome()

rc = run_daemon(make_settings(work, port=None), cycle_fn=cycle)
print(f"returned {{rc}}", flush=True)
sys.exit(rc)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    code = CHILD.format(tests=str(Path(__file__).parent))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: (tmp_path / "started").exists() or proc.poll() is not None, "child cycle")
    assert proc.poll() is None, proc.communicate()[1]
    yield proc
    (tmp_path / "release").touch()
    if proc.poll() is None:
        proc.kill()
        proc.wait(15)


def test_sigterm_finishes_the_running_cycle_and_exits_0(
    tmp_path: Path, child: subprocess.Popen[str]
) -> None:
    child.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(1.0)  # still in its cycle: a daemon that does not wait exits sooner
    (tmp_path / "release").touch()
    out, err = child.communicate(timeout=15)
    assert child.returncode == 0, err
    assert out.splitlines() == ["cycle finished", "returned 0"]
    logs = [json.loads(line) for line in err.splitlines()]  # stderr is not a TTY: JSON lines
    assert [entry["msg"] for entry in logs][-1] == "daemon stopped"


def test_second_daemon_on_the_same_store_gets_store_locked(
    tmp_path: Path, child: subprocess.Popen[str]
) -> None:
    calls: list[int] = []
    with pytest.raises(StoreLockedError):
        run_daemon(
            make_settings(tmp_path, port=None),
            cycle_fn=lambda now, deadline: calls.append(1) or Outcome(),
            stop_event=threading.Event(), install_signals=False,
        )
    assert calls == []


def test_default_cycle_runs_the_real_service_on_the_store(
    tmp_path: Path, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from auditor.daemon import build_cycle_fn

    settings = make_settings(tmp_path)
    d = running(settings, build_cycle_fn(settings))
    wait_for(lambda: b"auditor_cycles_total{status=" in get(d.base + "/metrics")[1]
             and any(r.getMessage() in ("cycle finished", "cycle raised") for r in caplog.records),
             "the first real cycle")
    assert d.stop() == 0
    crashes = [r.fields for r in caplog.records if r.getMessage() == "cycle raised"]  # type: ignore[attr-defined]
    assert not crashes, crashes
    assert settings.store.path.exists()


def test_service_cycle_keeps_one_store_on_the_worker_thread_and_closes_it_there(
    tmp_path: Path, running: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditor.outbox
    import auditor.service
    from auditor.daemon import build_cycle_fn
    from auditor.store import Store

    seen: list[tuple[int, Store]] = []  # (thread id, store) per cycle; kept alive: ids stay unique
    closed: list[int] = []  # threads that closed a cycle's Store (the delivery loop has its own)

    def fake_run_cycle(settings: Settings, store: Store, **kw: Any) -> Outcome:
        seen.append((threading.get_ident(), store))
        if len(seen) == 2:
            raise RuntimeError("store went away")
        return Outcome()

    real_close = Store.close

    def close(self: Store) -> None:
        if any(self is store for _, store in seen):
            closed.append(threading.get_ident())
        real_close(self)

    monkeypatch.setattr(auditor.service, "run_cycle", fake_run_cycle)
    monkeypatch.setattr(auditor.outbox, "deliver_pending",
                        lambda *a, **k: auditor.outbox.DeliveryReport())
    monkeypatch.setattr(Store, "close", close)
    settings = make_settings(tmp_path, poll_every=1)
    d = running(settings, build_cycle_fn(settings))
    wait_for(lambda: len(seen) >= 4, "four cycles")
    assert d.stop() == 0
    threads = {t for t, _ in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert seen[0][1] is seen[1][1], "the Store stays open between cycles"
    assert seen[2][1] is not seen[1][1], "a cycle that raised must drop its Store"
    assert seen[3][1] is seen[2][1]
    assert closed and set(closed) == threads  # closed after the crash and at stop, on that thread


def test_a_cycle_past_its_deadline_is_logged_as_overrun(
    tmp_path: Path, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def cycle(now: datetime, deadline_s: float) -> Outcome:
        return Outcome(status="failed", duration_s=deadline_s + 1)  # as the service reports it

    d = running(make_settings(tmp_path, poll_every=1, port=None), cycle)
    wait_for(lambda: any(r.getMessage().startswith("cycle overran") for r in caplog.records),
             "the overrun warning")
    assert d.stop() == 0
    overrun = next(r for r in caplog.records if r.getMessage().startswith("cycle overran"))
    assert overrun.levelno == logging.WARNING and overrun.fields["deadline_s"] == 0.8  # type: ignore[attr-defined]


def test_listen_port_in_use_is_a_config_error_naming_daemon_listen(tmp_path: Path) -> None:
    from auditor.errors import ConfigError

    busy = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        settings = make_settings(tmp_path, port=busy.server_address[1])
        with pytest.raises(ConfigError) as info:
            run_daemon(settings, cycle_fn=lambda now, dl: Outcome(),
                       stop_event=threading.Event(), install_signals=False)
        assert info.value.problems[0].path == "daemon.listen"
    finally:
        busy.server_close()
