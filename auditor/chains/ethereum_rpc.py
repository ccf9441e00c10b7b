"""JSON-RPC over HTTP for the Ethereum poll path: batches, deadlines, strict answers.

One `RpcConnection` per endpoint (httpx keep-alive). Every request has a
timeout no longer than the endpoint's and never past the read's deadline.
Anything unexpected (HTTP error, timeout, JSON-RPC error, a missing id, a
non-hex result) raises `RpcFailure` with a short reason that never contains
the endpoint's URL (it may carry an API key).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..settings import RpcEndpoint

__all__ = ["RpcFailure", "RpcConnection", "RawParams", "BlockParam", "hex_int", "hex_bytes",
           "block_param"]

BlockParam = str | dict[str, Any]


class RawParams(str):
    """Params already encoded as a JSON array (hex strings need no escaping: the
    poll path builds megabytes of calldata, and json.dumps would scan it all again)."""


# int() forgives "_", spaces and signs: check the shape strictly first.
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}\Z").match
_MAX_MESSAGE = 160
_HTTP_HINTS = {401: ": check the API key in the RPC URL", 403: ": check the API key in the RPC URL",
               404: ": check the RPC URL's path", 413: ": request too large for this node",
               429: ": rate limited by the provider"}  # node error texts are cut: a reason is a line, not a dump


class RpcFailure(Exception):
    """One provider's read failed. The message is safe to show (no URL)."""

    def __init__(self, reason: str, *, rpc_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rpc_code = rpc_code


def hex_int(value: Any, what: str) -> int:
    """A JSON-RPC quantity ("0x1a") as int; anything else is a failure, never 0."""
    if isinstance(value, str) and _QUANTITY(value):
        return int(value, 16)
    raise RpcFailure(f"{what}: not a hex quantity: {str(value)[:40]!r}")


def hex_bytes(value: Any, what: str) -> bytes:
    """JSON-RPC data ("0x…", even length, nothing else) as bytes."""
    if isinstance(value, str) and value.startswith("0x"):
        try:
            data = bytes.fromhex(value[2:])
        except ValueError:
            data = None
        if data is not None and 2 * len(data) == len(value) - 2:  # fromhex skips spaces
            return data
    raise RpcFailure(f"{what}: not hex data: {str(value)[:40]!r}")


def block_param(number: int, block_hash: str | None) -> BlockParam:
    """Pin a read to a block: by hash (EIP-1898) when known, else by number."""
    if block_hash is None:
        return hex(number)
    return {"blockHash": block_hash, "requireCanonical": True}


class RpcConnection:
    """JSON-RPC calls to one endpoint, named only by its label."""

    def __init__(self, endpoint: RpcEndpoint, label: str | None = None) -> None:
        self.label = label or endpoint.label
        self._url = endpoint.url.reveal()
        self._timeout = float(endpoint.timeout)
        self._client = httpx.Client(
            headers={"content-type": "application/json"},
            limits=httpx.Limits(max_keepalive_connections=8, max_connections=8),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: Sequence[Any], deadline: float | None) -> Any:
        return self.batch([(method, params)], deadline)[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], deadline: float | None) -> list[Any]:
        """All calls in one POST; results in call order. Any error fails the whole batch."""
        if not calls:
            return []
        body = ("[" + ",".join(
            f'{{"jsonrpc":"2.0","id":{i},"method":"{m}","params":{_params_json(p)}}}'
            for i, (m, p) in enumerate(calls)) + "]").encode()
        answer = self._post(body, deadline)
        if not isinstance(answer, list):
            raise RpcFailure(_describe_non_batch(answer))
        return _results_in_order(answer, calls)

    def _post(self, body: bytes, deadline: float | None) -> Any:
        timeout = self._timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise RpcFailure("the read's deadline passed")
        try:
            response = self._client.post(self._url, content=body, timeout=timeout)
        except httpx.TimeoutException:
            raise RpcFailure(f"no answer within {timeout:.1f}s") from None
        except httpx.HTTPError as exc:
            # httpx messages may name the URL: only the exception type goes out.
            raise RpcFailure(f"connection failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            hint = _HTTP_HINTS.get(response.status_code, "")
            raise RpcFailure(f"HTTP {response.status_code}{hint}")
        try:
            return json.loads(response.content)
        except ValueError:
            raise RpcFailure("answer is not valid JSON") from None


def _params_json(params: Sequence[Any]) -> str:
    if isinstance(params, RawParams):
        return params
    return json.dumps(list(params), separators=(",", ":"))


def _describe_non_batch(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return _error_text(answer["error"])
    return "answer to a batch is not a JSON array"


def _error_text(error: dict[str, Any]) -> str:
    message = str(error.get("message", ""))[:_MAX_MESSAGE]
    return f"JSON-RPC error {error.get('code')}: {message}"


def _results_in_order(answer: list[Any], calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
    by_id: dict[int, Any] = {}
    for item in answer:
        if isinstance(item, dict) and isinstance(item.get("id"), int):
            by_id[item["id"]] = item
    results = []
    for i, (method, _) in enumerate(calls):
        item = by_id.get(i)
        if item is None:
            raise RpcFailure(f"batch answer lacks the response to {method} (id {i})")
        error = item.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = _error_text(error) if isinstance(error, dict) else "malformed JSON-RPC error"
            raise RpcFailure(f"{method}: {text}", rpc_code=code if isinstance(code, int) else None)
        if "result" not in item:
            raise RpcFailure(f"{method}: answer has neither result nor error")
        results.append(item["result"])
    return results
