"""How the outside world sees that the daemon is alive: HTTP probes and a heartbeat.

- `/livez`: 200 unless no cycle *started* within 2 × `poll_every` (a hung
  cycle or a dead scheduler), then 503.
- `/readyz`: 503 when there is no cycle with status ok yet, or the last one
  started more than `rules.stale_data.max_age` seconds ago; else 200.
- `/metrics`: Prometheus text from the daemon's private registry.

Bodies of the probes are small JSON objects `{"ok": bool, "reason": str}`.
The heartbeat (a dead-man's switch) POSTs `{"exchange", "cycle", "status",
"head", "at"}` after every cycle; the URL carries a token, so logs name it
only as `scheme://host:port`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .metrics import CONTENT_TYPE, DaemonMetrics
from .settings import Secret, redact_url
from .times import rfc3339

__all__ = [
    "Clock",
    "DaemonState",
    "Probe",
    "check_live",
    "check_ready",
    "HealthServer",
    "Heartbeat",
    "rfc3339",
]

log = logging.getLogger("auditor.daemon")
Clock = Callable[[], datetime]


@dataclass
class DaemonState:
    """What the probes need to know about the cycles; written by the cycle thread."""

    started_at: datetime  # when the daemon started: the livez grace before the first cycle
    last_cycle_started: datetime | None = None
    last_ok: datetime | None = None  # taken_at of the last cycle with status ok
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cycle_started(self, at: datetime) -> None:
        with self._lock:
            self.last_cycle_started = at

    def cycle_ok(self, taken_at: datetime) -> None:
        with self._lock:
            self.last_ok = taken_at

    def snapshot(self) -> tuple[datetime, datetime | None, datetime | None]:
        with self._lock:
            return self.started_at, self.last_cycle_started, self.last_ok


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str

    def body(self) -> bytes:
        return json.dumps({"ok": self.ok, "reason": self.reason}).encode()


def check_live(state: DaemonState, now: datetime, poll_every: int) -> Probe:
    started_at, last_started, _ = state.snapshot()
    limit = 2 * poll_every
    if last_started is None:
        age = (now - started_at).total_seconds()
        if age > limit:
            return Probe(False, f"no cycle started in the {age:.0f}s since the daemon started")
        return Probe(True, "daemon starting; first cycle pending")
    age = (now - last_started).total_seconds()
    if age > limit:
        return Probe(False, f"no cycle started for {age:.0f}s (limit {limit}s: 2 x poll_every)")
    return Probe(True, f"last cycle started {age:.0f}s ago")


def check_ready(state: DaemonState, now: datetime, max_age: int) -> Probe:
    _, _, last_ok = state.snapshot()
    if last_ok is None:
        return Probe(False, "no cycle with status ok yet")
    age = (now - last_ok).total_seconds()
    if age > max_age:
        return Probe(False, f"last ok cycle is {age:.0f}s old (limit {max_age}s: stale_data)")
    return Probe(True, f"last ok cycle {age:.0f}s ago")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper never holds up shutdown

    def __init__(self, host: str, port: int, app: HealthServer):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, app.metrics.generate(), CONTENT_TYPE)
        elif path in ("/livez", "/readyz"):
            probe = app.live() if path == "/livez" else app.ready()
            self._send(200 if probe.ok else 503, probe.body(), "application/json")
        else:
            body = Probe(False, "not found; try /metrics, /livez or /readyz").body()
            self._send(404, body, "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # stderr is for the daemon's JSON lines; scrapes every 15 s are noise


class HealthServer:
    """/metrics, /livez, /readyz on a background thread. Port 0 picks a free port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: DaemonMetrics,
        state: DaemonState,
        clock: Clock,
        poll_every: int,
        stale_max_age: int,
    ):
        self.metrics = metrics
        self.state = state
        self.clock = clock
        self.poll_every = poll_every
        self.stale_max_age = stale_max_age
        self._server = _Server(host, port, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="auditor-http", daemon=True,
        )

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0)."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def live(self) -> Probe:
        return check_live(self.state, self.clock(), self.poll_every)

    def ready(self) -> Probe:
        return check_ready(self.state, self.clock(), self.stale_max_age)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Heartbeat:
    """POSTs a small JSON body after every cycle. Never raises; failures are logged redacted."""

    def __init__(self, url: Secret, *, timeout: float, on_failure: Callable[[], None]):
        self._url = url
        self.label = redact_url(url.reveal())
        self._on_failure = on_failure
        # No redirects: a redirect target could be anything, and the token stays with us.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, body: dict[str, object]) -> bool:
        try:
            response = self._client.post(self._url.reveal(), json=body)
        except httpx.HTTPError as e:
            # str(e) may contain the full URL (and its token): name the type only.
            self._failed(f"{type(e).__name__}")
            return False
        if response.status_code >= 300:
            self._failed(f"HTTP {response.status_code}")
            return False
        return True

    def _failed(self, why: str) -> None:
        self._on_failure()
        log.warning(
            "heartbeat failed", extra={"fields": {"url": self.label, "error": why}}
        )

    def close(self) -> None:
        self._client.close()
