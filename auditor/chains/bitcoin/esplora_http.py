"""A minimal HTTP/1.1 keep-alive GET client on asyncio streams, for the Esplora backend.

Why not httpx: against a local Esplora-like server its AsyncClient managed
250–630 requests/s (CHAINS.md); this client keeps one connection per worker
and parses only what Esplora sends (Content-Length or chunked bodies), which
is what 10,000 addresses per poll need. The event loop runs in its own daemon
thread, so the synchronous `Backend` methods work from any caller, including
one that runs its own loop, and connections stay open between polls.

Every failure is `HttpError` with a short reason that never contains the URL.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

__all__ = ["HttpError", "HttpPool", "LoopThread"]

_T = TypeVar("_T")
_MAX_BODY = 64 * 1024 * 1024


class HttpError(Exception):
    """Transport-level trouble (connect, timeout, malformed HTTP); the message has no URL."""


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro, timeout)` from any thread."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(max(0.0, timeout))
        except TimeoutError:
            fut.cancel()
            raise HttpError("no answer before the deadline") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = True

    def close(self) -> None:
        self.reusable = False
        self.writer.close()

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
            raise HttpError("the answer is not HTTP/1.1")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"connection", b"").lower() == b"close" or status_line[0] == b"HTTP/1.0":
            self.reusable = False
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._chunked()
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            if not 0 <= length <= _MAX_BODY:
                raise HttpError("bad Content-Length")
            body = await self.reader.readexactly(length)
        else:
            self.reusable = False
            body = await self.reader.read(_MAX_BODY)
        return int(status_line[1]), body

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class HttpPool:
    """Keep-alive connections to one HTTP(S) origin, used from its LoopThread only."""

    def __init__(self, url: str, max_idle: int):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http(s)://host[:port][/path]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host_header = self.host if parts.port is None else f"{self.host}:{parts.port}"
        extra = ""
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            extra = f"Authorization: Basic {base64.b64encode(token).decode()}\r\n"
        self._suffix = f" HTTP/1.1\r\nHost: {host_header}\r\n{extra}Accept: */*\r\n\r\n".encode()
        self._idle: list[_Conn] = []
        self._max_idle = max_idle

    async def get(self, path: str, deadline: float, timeout: float) -> tuple[int, bytes]:
        """GET base+path: (status, body). Raises HttpError. A kept-alive connection
        the server closed meanwhile is replaced once (GET is idempotent)."""
        left = min(timeout, deadline - time.monotonic())
        if left <= 0:
            raise HttpError("no answer before the deadline")
        request = b"GET " + (self.base + path).encode() + self._suffix
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(left):
                if self._idle:
                    conn = self._idle.pop()
                    try:
                        status, body = await conn.get(request)
                    except (asyncio.IncompleteReadError, ConnectionError):
                        conn.close()
                        self.close()  # its siblings idled as long: start afresh
                        conn = await self._connect()
                        status, body = await conn.get(request)
                else:
                    conn = await self._connect()
                    status, body = await conn.get(request)
        except TimeoutError:
            self._drop(conn)
            raise HttpError(f"no answer within {left:.1f} s") from None
        except asyncio.CancelledError:
            self._drop(conn)
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._drop(conn)
            raise HttpError(f"connection failed ({type(exc).__name__})") from None
        except HttpError:
            self._drop(conn)
            raise
        if conn.reusable and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return status, body

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=1 << 20)
        return _Conn(reader, writer)

    def _drop(self, conn: _Conn | None) -> None:
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
