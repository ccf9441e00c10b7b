"""Newline-delimited JSON-RPC 2.0 over one TCP or TLS connection, as Electrum
servers speak it: batched calls, several batches in flight, answers matched by
id, notifications skipped, every wait bounded by the deadline and the timeout.

The socket is non-blocking and driven by a selector that writes and reads at
the same time: a client that only wrote while the server could only write
back (both send buffers full) would deadlock on a big batch.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["RpcConnection", "RpcError"]

IN_FLIGHT = 8  # batches sent before the first answer is awaited
MAX_PENDING = 64 * 1024 * 1024  # bytes of one unfinished answer line; more is not an Electrum answer


class RpcError(Exception):
    """The call did not get a complete, well-formed answer (message names the label only)."""


class _Closed(Exception):
    pass


class RpcConnection:
    """Calls on one connection, opened on first use and again after any failure.
    `on_connect(self, deadline)` runs first on every new connection."""

    def __init__(self, *, label: str, host: str, port: int, tls: bool, ca_file: Path | None,
                 timeout: float, batch_size: int,
                 on_connect: Callable[[RpcConnection, float], None] | None = None) -> None:
        self.label, self.host, self.port, self.tls, self.ca_file = label, host, port, tls, ca_file
        self.timeout, self.batch_size, self.on_connect = timeout, batch_size, on_connect
        self._sock: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self._out = bytearray()
        self._in = bytearray()
        self._next_id = 0

    def close(self) -> None:
        if self._sel is not None:
            self._sel.close()
        if self._sock is not None:
            self._sock.close()
        self._sock, self._sel = None, None
        self._out.clear()
        self._in.clear()

    def call_many(self, calls: list[tuple[str, list[Any]]], deadline: float) -> list[Any]:
        """Results in the order of `calls`; RpcError for anything short of all of them."""
        if not calls:
            return []
        try:
            if self._sock is None or not self._alive():
                self._connect(deadline)
            return self._exchange(calls, deadline)
        except RpcError:
            self.close()
            raise
        except _Closed:
            self.close()
            raise RpcError(f"{self.label}: the server closed the connection") from None
        except orjson.JSONDecodeError:
            self.close()
            raise RpcError(f"{self.label}: the server sent something that is not JSON") from None
        except ssl.SSLError as exc:
            self.close()
            why = getattr(exc, "verify_message", None) or exc.reason or exc.__class__.__name__
            raise RpcError(f"{self.label}: TLS failed ({why}); a server with a self-signed certificate "
                           "needs that certificate in ca_file") from None
        except OSError as exc:
            self.close()
            raise RpcError(f"{self.label}: connection failed ({exc.strerror or exc.__class__.__name__})") from None

    # --- connection ------------------------------------------------------------------------

    def _connect(self, deadline: float) -> None:
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=self._wait(deadline))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock.settimeout(self._wait(deadline))
                sock = self._tls_context().wrap_socket(sock, server_hostname=self.host)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ)
        if self.on_connect is not None:
            try:
                self.on_connect(self, deadline)
            except BaseException:
                self.close()  # never reuse a connection that did not pass its first calls
                raise

    def _tls_context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            return ssl.create_default_context()
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError):
            raise RpcError(f"{self.label}: ca_file cannot be read as a PEM certificate") from None
        # The operator pinned this certificate: trust it as it is (a self-signed server
        # certificate is often no CA, or not the root of its chain).
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        return ctx

    def _alive(self) -> bool:
        """False when the server closed the kept connection while it was idle."""
        assert self._sel is not None
        if not self._sel.select(0):
            return True
        try:
            self._read()
        except (_Closed, OSError):
            return False
        return True

    def _wait(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RpcError(f"{self.label}: no answer before the deadline")
        return min(left, self.timeout)

    # --- calls -----------------------------------------------------------------------------

    def _exchange(self, calls: list[tuple[str, list[Any]]], deadline: float) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        where: dict[int, tuple[int, int]] = {}  # request id -> (call index, batch number)
        left_in_batch: dict[int, int] = {}
        batches: deque[bytes] = deque()
        for start in range(0, len(calls), self.batch_size):
            number = len(left_in_batch)
            requests = []
            for i in range(start, min(start + self.batch_size, len(calls))):
                self._next_id += 1
                where[self._next_id] = (i, number)
                requests.append({"jsonrpc": "2.0", "id": self._next_id, "method": calls[i][0], "params": calls[i][1]})
            left_in_batch[number] = len(requests)
            batches.append(orjson.dumps(requests if len(requests) > 1 else requests[0]) + b"\n")
        in_flight = 0
        while where:
            while batches and in_flight < IN_FLIGHT:
                self._out += batches.popleft()
                in_flight += 1
            for answer in self._answers(deadline):
                i, number = self._take(answer, where, calls)
                results[i] = answer["result"]
                left_in_batch[number] -= 1
                if left_in_batch[number] == 0:
                    in_flight -= 1
        return results

    def _take(self, answer: Any, where: dict[int, tuple[int, int]],
              calls: list[tuple[str, list[Any]]]) -> tuple[int, int]:
        """The (call index, batch) an answer belongs to; RpcError for an error answer."""
        if not isinstance(answer, dict):
            raise RpcError(f"{self.label}: the server answered with data that is not a JSON-RPC response")
        ident = answer.get("id")
        slot = where.pop(ident, None) if isinstance(ident, int) and not isinstance(ident, bool) else None
        method = calls[slot[0]][0] if slot is not None else "a batch"
        if answer.get("error") is not None:
            raise RpcError(f"{self.label}: {method} failed: {_error_text(answer['error'])}")
        if slot is None or "result" not in answer:
            raise RpcError(f"{self.label}: the server sent an answer to no pending call")
        return slot

    def _answers(self, deadline: float) -> list[Any]:
        """The next answers (batch arrays flattened), at least one; notifications skipped."""
        while True:
            answers: list[Any] = []
            for line in self._lines(deadline):
                message = orjson.loads(line)
                for item in message if isinstance(message, list) else [message]:
                    if not (isinstance(item, dict) and "method" in item and "id" not in item):
                        answers.append(item)
            if answers:
                return answers

    def _lines(self, deadline: float) -> list[bytes]:
        while True:
            end = self._in.rfind(b"\n")
            if end >= 0:
                lines = bytes(self._in[:end]).split(b"\n")
                del self._in[:end + 1]
                return [line for line in lines if line.strip()]
            if len(self._in) > MAX_PENDING:
                raise RpcError(f"{self.label}: an answer longer than {MAX_PENDING >> 20} MiB; "
                               "is this an Electrum server?")
            self._io(deadline)

    # --- socket ----------------------------------------------------------------------------

    def _io(self, deadline: float) -> None:
        assert self._sock is not None and self._sel is not None
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            self._read()  # decrypted bytes wait inside the TLS layer, invisible to select
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
        self._sel.modify(self._sock, events)
        ready = self._sel.select(self._wait(deadline))
        if not ready:
            if deadline - time.monotonic() <= 0:
                raise RpcError(f"{self.label}: no answer before the deadline")
            raise RpcError(f"{self.label}: no answer within the {self.timeout:g} s timeout")
        mask = ready[0][1]
        if mask & selectors.EVENT_WRITE:
            self._write()
        if mask & selectors.EVENT_READ:
            self._read()

    def _write(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._out[:1 << 18])
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        del self._out[:sent]

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 18)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if not data:
                raise _Closed()
            self._in += data
            if len(data) < 1 << 18 and not (isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()):
                return


def _error_text(error: Any) -> str:
    """The server's error message, short and printable (it ends up in logs and alerts)."""
    text = error.get("message", error) if isinstance(error, dict) else error
    return "".join(c if c.isprintable() else "?" for c in str(text))[:200]
