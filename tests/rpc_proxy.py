"""A JSON-RPC proxy on 127.0.0.1 in front of anvil that can refuse methods, answer
errors, rewrite results (a provider that lies or hides logs) and delay answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Edit = Callable[[str, list[Any], Any], Any]  # (method, params, result) → result to send


class Proxy:
    """JSON-RPC on 127.0.0.1 forwarding to anvil. `refuse`: methods answered "method not
    found"; `error(method, params)`: an error object to answer instead; `edit`: rewrites
    results; `delay`: seconds before each answer."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refuse: set[str] = set()
        self.error: Callable[[str, list[Any]], dict[str, Any] | None] = lambda method, params: None
        self.edit: Edit = lambda method, params, result: result
        self.delay = 0.0
        self.calls: list[tuple[str, list[Any]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                raw = json.dumps(proxy.answer(body if isinstance(body, list) else [body])).encode()
                time.sleep(proxy.delay)
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up (deadline tests)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls += [(c["method"], c["params"]) for c in calls]
        out: dict[int, dict[str, Any]] = {}
        passing = []
        for c in calls:
            error = ({"code": -32601, "message": "Method not found"} if c["method"] in self.refuse
                     else self.error(c["method"], c["params"]))
            if error is not None:
                out[c["id"]] = {"jsonrpc": "2.0", "id": c["id"], "error": error}
            else:
                passing.append(c)
        if passing:
            for a in httpx.post(self.upstream, json=passing, timeout=30).json():
                call = next(c for c in passing if c["id"] == a["id"])
                if "result" in a:
                    a["result"] = self.edit(call["method"], call["params"], a["result"])
                out[a["id"]] = a
        return [out[c["id"]] for c in calls]

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
