"""ETH moved by contracts inside transactions (internal transfers), from trace APIs.

`trace_block` (parity-style flat traces: erigon, nethermind, reth, anvil) is
tried first, then `debug_traceBlockByHash` with geth's `callTracer`. Both
answer a tree of call frames per transaction; every frame below the top one is
numbered by its depth-first position, the same way for both APIs, so a
transfer keeps its index whichever API a node offers. A frame moves value when
it is a CALL, a CREATE/CREATE2 or a SELFDESTRUCT with a value above zero and
neither it nor an enclosing frame reverted (DELEGATECALL and CALLCODE move
nothing to another account). The top frame is the transaction itself: its
value is read from the block, not from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .ethereum_blocks import BlockInfo, address_of, hash_of, is_unsupported
from .ethereum_rpc import RpcConnection, RpcFailure, hex_int

__all__ = ["TRACES_PER_POST", "InternalCall", "TraceTask", "trace_block_tasks", "call_tracer_tasks"]

TRACES_PER_POST = 10  # blocks per POST: a busy block's traces are megabytes
_CALL_TRACER = {"tracer": "callTracer"}


@dataclass(frozen=True, slots=True)
class InternalCall:
    block: int
    tx_index: int
    position: int  # depth-first position among the transaction's frames below the top one
    sender: str
    recipient: str
    value: int  # wei


# None: the node has no such trace API.
TraceTask = Callable[[], list[InternalCall] | None]


def trace_block_tasks(conn: RpcConnection, blocks: Sequence[BlockInfo], deadline: float | None) -> list[TraceTask]:
    """Parity `trace_block` (by number: not every node takes a hash); each frame names its
    block's hash, which must be the one already read."""
    chunks = [list(blocks[i:i + TRACES_PER_POST]) for i in range(0, len(blocks), TRACES_PER_POST)]
    return [partial(_unsupported_is_none, partial(_trace_blocks, conn, chunk, deadline)) for chunk in chunks]


def call_tracer_tasks(conn: RpcConnection, blocks: Sequence[BlockInfo], deadline: float | None) -> list[TraceTask]:
    """geth `debug_traceBlockByHash` + callTracer, pinned to the hashes already read."""
    chunks = [list(blocks[i:i + TRACES_PER_POST]) for i in range(0, len(blocks), TRACES_PER_POST)]
    return [partial(_unsupported_is_none, partial(_call_tracer, conn, chunk, deadline)) for chunk in chunks]


def _unsupported_is_none(read: Callable[[], list[InternalCall]]) -> list[InternalCall] | None:
    try:
        return read()
    except RpcFailure as exc:
        if is_unsupported(exc):
            return None
        raise


# --- parity trace_block --------------------------------------------------------------


def _trace_blocks(conn: RpcConnection, blocks: list[BlockInfo], deadline: float | None) -> list[InternalCall]:
    answers = conn.batch([("trace_block", [hex(b.number)]) for b in blocks], deadline)
    out: list[InternalCall] = []
    for block, frames in zip(blocks, answers):
        if not isinstance(frames, list):
            raise RpcFailure(f"trace_block {block.number}: not a list of traces")
        out += _parity_block(block, frames)
    return out


def _parity_block(block: BlockInfo, frames: list[Any]) -> list[InternalCall]:
    number = block.number
    out: list[InternalCall] = []
    reverted: dict[tuple[int, ...], bool] = {}
    positions: dict[int, int] = {}
    for frame in frames:
        if not isinstance(frame, dict):
            raise RpcFailure(f"trace_block {number}: malformed trace")
        if frame.get("type") == "reward" or frame.get("transactionPosition") is None:
            continue  # block and uncle rewards (proof of work): not a transaction
        if hash_of(frame.get("blockHash"), f"trace_block {number} blockHash") != block.hash:
            raise RpcFailure(f"trace_block {number}: traces of another block (reorg during the read?)")
        tx_index = _index(frame.get("transactionPosition"), f"trace_block {number} transactionPosition")
        if tx_index >= len(block.txs) or hash_of(frame.get("transactionHash"), f"trace_block {number} "
                                                 "transactionHash") != block.txs[tx_index].hash:
            raise RpcFailure(f"trace_block {number}: a trace names a transaction the block does not have there")
        path = frame.get("traceAddress")
        if not isinstance(path, list) or not all(isinstance(i, int) for i in path):
            raise RpcFailure(f"trace_block {number}: malformed traceAddress")
        key = (tx_index, *path)
        # A frame inside a reverted frame moved nothing either, even without an error of its own.
        failed = "error" in frame or (bool(path) and reverted.get(key[:-1], False))
        reverted[key] = failed
        if not path:
            continue
        position = positions.get(tx_index, 0)
        positions[tx_index] = position + 1
        moved = None if failed else _parity_value(frame, number)
        if moved is not None:
            out.append(InternalCall(number, tx_index, position, *moved))
    return out


def _parity_value(frame: dict[str, Any], number: int) -> tuple[str, str, int] | None:
    action = frame.get("action")
    if not isinstance(action, dict):
        raise RpcFailure(f"trace_block {number}: trace without action")
    kind, what = frame.get("type"), f"trace_block {number} {frame.get('type')}"
    if kind == "call":
        if action.get("callType") != "call":
            return None  # delegatecall/callcode keep value in the caller; staticcall has none
        sender, recipient, value = action.get("from"), action.get("to"), action.get("value")
    elif kind == "create":
        result = frame.get("result")
        if not isinstance(result, dict):
            raise RpcFailure(f"{what}: a successful creation without result")
        sender, recipient, value = action.get("from"), result.get("address"), action.get("value")
    elif kind in ("suicide", "selfdestruct"):
        sender, recipient, value = action.get("address"), action.get("refundAddress"), action.get("balance")
    else:
        raise RpcFailure(f"{what}: unknown trace type")
    amount = hex_int(value, f"{what} value")
    if amount == 0:
        return None
    return address_of(sender, f"{what} from"), address_of(recipient, f"{what} to"), amount


def _index(value: Any, what: str) -> int:
    """Parity traces give positions as JSON numbers (some nodes as hex quantities)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return hex_int(value, what)


# --- geth callTracer -----------------------------------------------------------------


def _call_tracer(conn: RpcConnection, blocks: list[BlockInfo], deadline: float | None) -> list[InternalCall]:
    answers = conn.batch([("debug_traceBlockByHash", [b.hash, _CALL_TRACER]) for b in blocks], deadline)
    out: list[InternalCall] = []
    for block, results in zip(blocks, answers):
        what = f"debug_traceBlockByHash {block.number}"
        if not isinstance(results, list) or len(results) != len(block.txs):
            raise RpcFailure(f"{what}: expected {len(block.txs)} transaction traces")
        for tx, item in zip(block.txs, results):
            if not isinstance(item, dict) or not isinstance(item.get("result"), dict):
                raise RpcFailure(f"{what}: transaction {tx.hash} was not traced ({str(item)[:80]})")
            if item.get("txHash") is not None and hash_of(item["txHash"], f"{what} txHash") != tx.hash:
                raise RpcFailure(f"{what}: traces are not in transaction order")
            out += _walk(item["result"], block.number, tx.index, what)
    return out


def _walk(top: dict[str, Any], number: int, tx_index: int, what: str) -> list[InternalCall]:
    out: list[InternalCall] = []
    # (frame, an enclosing frame reverted): depth-first, children in order
    stack: list[tuple[Any, bool]] = [(c, "error" in top) for c in reversed(_calls(top, what))]
    position = 0
    while stack:
        frame, parent_failed = stack.pop()
        if not isinstance(frame, dict):
            raise RpcFailure(f"{what}: malformed call frame")
        failed = parent_failed or "error" in frame
        kind = frame.get("type")
        if not failed and kind in ("CALL", "CREATE", "CREATE2", "SELFDESTRUCT"):
            amount = hex_int(frame.get("value", "0x0"), f"{what} {kind} value")
            if amount:
                out.append(InternalCall(number, tx_index, position, address_of(frame.get("from"), f"{what} from"),
                                        address_of(frame.get("to"), f"{what} to"), amount))
        position += 1
        stack += [(c, failed) for c in reversed(_calls(frame, what))]
    return out


def _calls(frame: dict[str, Any], what: str) -> list[Any]:
    calls = frame.get("calls", [])
    if not isinstance(calls, list):
        raise RpcFailure(f"{what}: malformed calls list")
    return calls
