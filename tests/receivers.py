"""Reusable local HTTP receivers for notification tests (127.0.0.1 only).

`WebhookReceiver` is a threaded HTTP server on an OS-chosen port that records
every request (path, headers, raw body) and checks the webhook signature with
its own HMAC code (independent of auditor.notify.webhook, so a test of the
signer against it means something). Switch its answer with `respond(...)`:
200, 429, 500, 400 or "hang" (hold the request longer than a client timeout),
optionally after a `delay` (a slow receiver). Each request records its
arrival time (`time.monotonic()`), for rate-limit tests.
`stop()` / `start()` take the channel down and up again on the same port.

    with WebhookReceiver(secret=b"s3cret") as rx:
        post to rx.url("/hooks/abc") ...
        assert rx.requests[0].signature_ok
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    status: int | None  # what the receiver answered; None: it hung
    signature_ok: bool | None  # None: the receiver has no secret
    at: float = 0.0  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, secret: bytes | None = None, hang_seconds: float = 5.0):
        self.secret = secret
        self.hang_seconds = hang_seconds
        self.port = 0
        self._mode: int | str = 200
        self._delay = 0.0
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()  # wakes hanging handlers on stop
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------
    def start(self) -> WebhookReceiver:
        """Listen (again) on 127.0.0.1; the same port as before after a stop."""
        self._release.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def respond(self, mode: int | str, delay: float = 0.0) -> None:
        """Answer every next request with HTTP `mode`, or hang when mode == "hang";
        with `delay`, only after that many seconds."""
        with self._lock:
            self._mode, self._delay = mode, delay

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def seqs(self) -> list[int]:
        """Every `seq` received, in order, duplicates included."""
        return [a["seq"] for r in self.requests for a in r.json().get("alerts", [])]

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server side -----------------------------------------------------
    def _check_signature(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        ts = headers.get("x-auditor-timestamp", "")
        got = headers.get("x-auditor-signature", "")
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        return bool(ts) and hmac.compare_digest(want, got)

    def _record(self, handler: BaseHTTPRequestHandler) -> tuple[int | str, float]:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            mode, delay = self._mode, self._delay
            status = mode if isinstance(mode, int) else None
            self._requests.append(Received(handler.path, headers, body, status,
                                           self._check_signature(headers, body),
                                           time.monotonic()))
        return mode, delay

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                mode, delay = receiver._record(self)
                if delay:
                    receiver._release.wait(delay)
                if mode == "hang":
                    receiver._release.wait(receiver.hang_seconds)
                    return
                status = int(mode)
                payload = b'{"ok":true}' if status < 300 else b'{"error":"test"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
