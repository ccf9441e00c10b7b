"""JSON-RPC to Bitcoin Core for `bitcoind.py`: transport, strict shapes, exact amounts.

One `Rpc` per node: httpx keep-alive, HTTP basic auth from the URL's
user:password or Core's `.cookie` (read on every request: Core writes a new one
each start), every request bounded by the read's deadline. Answers are parsed
with `parse_float=Decimal` (amounts are BTC decimals: never a float) and every
trouble raises `RpcFailure` with a reason that never contains the URL, user or
password; the backend adds its label. Also the BIP-380 descriptor checksum.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from ...settings import BackendSettings
from ...units import parse_amount
from .codec import descriptor_checksum

__all__ = ["RpcFailure", "Rpc", "descriptor_checksum", "with_checksum", "obj", "array", "integer",
           "hexstr", "sats", "script_hex", "MAX_MONEY"]

MAX_MONEY = 21_000_000 * 100_000_000
_HEX = frozenset("0123456789abcdef")

def with_checksum(descriptor: str) -> str:
    """`desc#checksum` (an existing checksum is recomputed, not trusted)."""
    body = descriptor.split("#", 1)[0]
    return f"{body}#{descriptor_checksum(body)}"


class RpcFailure(Exception):
    """A reason a read failed (safe to show); the backend adds its label."""


class Rpc:
    """JSON-RPC over HTTP to one node (keep-alive, basic auth, deadlines)."""

    def __init__(self, settings: BackendSettings) -> None:
        parts = urlsplit(settings.url.reveal())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a bitcoind URL is http(s)://[user:password@]host:port")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._url = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._cookie = settings.cookie_file
        self._timeout = float(settings.timeout)
        # TCP_NODELAY: a request is headers then body; Nagle would hold the body for the
        # node's delayed ACK (tens of ms per call).
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._client = httpx.Client(headers={"content-type": "application/json"}, transport=transport,
                                    follow_redirects=False, trust_env=False)
        self._ids = 0

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: Sequence[Any], deadline: float, *, slow: bool = False) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        answer = self._post(json.dumps(body).encode(), deadline, slow)
        if not isinstance(answer, dict):
            raise RpcFailure(f"{method}: the answer is not a JSON-RPC object")
        return _result(method, answer)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], deadline: float) -> list[Any]:
        """Every call in one request; results in call order; one error fails all."""
        if not calls:
            return []
        first = self._ids + 1
        self._ids += len(calls)
        body = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
                for i, (m, p) in enumerate(calls)]
        answer = self._post(json.dumps(body).encode(), deadline, False)
        if not isinstance(answer, list):
            raise RpcFailure(f"{calls[0][0]}: the answer to a batch is not a JSON array")
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        out = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first + i)
            if item is None:
                raise RpcFailure(f"{method}: the batch answer lacks this call's response")
            out.append(_result(method, item))
        return out

    def _auth(self) -> str:
        user, password = self._user, self._password
        if self._cookie is not None:
            user, password = _read_cookie(self._cookie)
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _post(self, body: bytes, deadline: float, slow: bool) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RpcFailure("the read's deadline passed")
        timeout = remaining if slow else min(self._timeout, remaining)
        try:
            with self._client.stream("POST", self._url, content=body, timeout=timeout,
                                     headers={"authorization": self._auth()}) as response:
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise RpcFailure("the read's deadline passed while the answer arrived")
                status = response.status_code
        except httpx.TimeoutException:
            raise RpcFailure(f"no answer within {timeout:.1f}s") from None
        except httpx.HTTPError as exc:  # its text may name the URL: only the type goes out
            raise RpcFailure(f"connection failed ({type(exc).__name__})") from None
        return _decode(status, b"".join(chunks))


def _read_cookie(path: Path) -> tuple[str, str]:
    """Core's `.cookie` ("__cookie__:<password>"), read on every request: Core writes
    a new one each time it starts."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RpcFailure(f"cannot read cookie_file ({type(exc).__name__}): check the path and that "
                   "the auditor may read Core's data directory") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise RpcFailure("cookie_file does not hold user:password (is it Core's .cookie?)")
    return user, password


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _decode(status: int, raw: bytes) -> Any:
    if status in (401, 403):
        raise RpcFailure(f"HTTP {status}: the node refused the credentials; check the user:password "
                   "in the URL or cookie_file")
    try:
        # Amounts are BTC decimals: never let them pass through a float.
        answer = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        if status != 200:
            raise RpcFailure(f"HTTP {status}") from None
        raise RpcFailure("the answer is not valid JSON") from None
    if status != 200:  # legacy JSON-RPC: an RPC error comes as HTTP 500 (404, 400) with a body
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise RpcFailure(_error_text(answer["error"]))
        raise RpcFailure(f"HTTP {status}")
    return answer


def _error_text(error: dict[str, Any]) -> str:
    message = str(error.get("message", ""))[:200]
    hint = ""
    if error.get("code") == -32601:
        hint = " (this method needs Bitcoin Core 24 or newer)"
    elif "Scan already in progress" in message:
        hint = " (another scantxoutset runs on this node; Core allows one at a time)"
    return f"JSON-RPC error {error.get('code')}: {message}{hint}"


def _result(method: str, item: dict[str, Any]) -> Any:
    error = item.get("error")
    if error is not None:
        text = _error_text(error) if isinstance(error, dict) else "malformed JSON-RPC error"
        raise RpcFailure(f"{method}: {text}")
    if "result" not in item:
        raise RpcFailure(f"{method}: the answer has neither result nor error")
    return item["result"]


# --- shapes ----------------------------------------------------------------------


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcFailure(f"{what} is not a JSON object")
    return value


def array(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RpcFailure(f"{what} is not a JSON array")
    return value


def integer(value: Any, what: str, low: int = 0) -> int:
    if type(value) is not int or value < low:
        raise RpcFailure(f"{what} is not an integer ≥ {low}: {str(value)[:40]!r}")
    return value


def hexstr(value: Any, what: str, size: int | None = 32) -> str:
    ok = (isinstance(value, str) and not set(value) - _HEX and len(value) % 2 == 0
          and (size is None or len(value) == 2 * size))
    if not ok:
        raise RpcFailure(f"{what} is not lowercase hex{' of 32 bytes' if size == 32 else ''}: {str(value)[:70]!r}")
    return str(value)


def sats(value: Any, what: str) -> int:
    """A BTC amount from Core's JSON (a Decimal here) in satoshis, exactly."""
    if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
        raise RpcFailure(f"{what} is not a number: {str(value)[:40]!r}")
    try:
        amount = parse_amount(value, 8)
    except ValueError:
        raise RpcFailure(f"{what} is not a whole number of satoshis: {value}") from None
    if not 0 <= amount <= MAX_MONEY:
        raise RpcFailure(f"{what} is outside 0 … 21,000,000 BTC: {value}")
    return amount


def script_hex(value: Any, what: str) -> str:
    return hexstr(obj(value, what).get("hex"), f"{what}.hex", None)
