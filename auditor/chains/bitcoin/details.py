"""Checks every backend's `transactions` applies before it returns a `TxDetail`.

The backends read transactions in different shapes (Esplora JSON, raw bytes
from Electrum, Core's verbose JSON) but must hand back the same thing; what
makes a detail whole is checked here once: a block position that is either
mempool or complete, satoshi values in range, and outputs that the inputs pay
for (a server that lowers an input value would otherwise invent a fee or hide
an outflow).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .types import TxDetail

__all__ = ["wanted_txids", "make_detail", "is_coinbase_input", "MAX_MONEY"]

MAX_MONEY = 21_000_000 * 100_000_000
_TXID = re.compile(r"[0-9a-f]{64}")
_SCRIPT = re.compile(r"(?:[0-9a-f]{2})*")
_NULL = "0" * 64


def wanted_txids(txids: Sequence[str]) -> list[str]:
    """`txids` without repeats, in order; ValueError for one that is not a txid
    (a caller bug, not a server's trouble)."""
    out = list(dict.fromkeys(txids))
    for txid in out:
        if not isinstance(txid, str) or not _TXID.fullmatch(txid):
            raise ValueError(f"{str(txid)[:70]!r} is not a txid (64 lowercase hex digits)")
    return out


def is_coinbase_input(prev_txid: str, vout: int) -> bool:
    """The one input of a coinbase transaction spends no output (null outpoint)."""
    return prev_txid == _NULL and vout == 0xFFFFFFFF


def make_detail(txid: str, height: int, block_hash: str, timestamp: int,
                inputs: Sequence[tuple[str, int, str, int]],
                outputs: Sequence[tuple[str, int]]) -> TxDetail:
    """A checked `TxDetail`; ValueError saying what does not fit. `inputs` empty
    means a coinbase transaction (it spends nothing)."""
    if height < 0 or (height == 0) != (block_hash == "") or (height == 0 and timestamp != 0):
        raise ValueError(f"transaction {txid}: block position height={height} hash={block_hash[:16]!r} "
                         "is neither mempool nor a block")
    if height and (not _TXID.fullmatch(block_hash) or timestamp <= 0):
        raise ValueError(f"transaction {txid}: block hash or time malformed")
    if not outputs:
        raise ValueError(f"transaction {txid} has no outputs")
    for prev, vout, script, value in inputs:
        if not _TXID.fullmatch(prev) or not 0 <= vout < 2**32 or not _SCRIPT.fullmatch(script):
            raise ValueError(f"transaction {txid}: an input is malformed")
        _check_value(txid, value)
    for script, value in outputs:
        if not _SCRIPT.fullmatch(script):
            raise ValueError(f"transaction {txid}: an output script is not lowercase hex")
        _check_value(txid, value)
    if len({(p, v) for p, v, _, _ in inputs}) != len(inputs):
        raise ValueError(f"transaction {txid} spends one output twice")
    paid_in, paid_out = sum(i[3] for i in inputs), sum(o[1] for o in outputs)
    if inputs and paid_out > paid_in:
        raise ValueError(f"transaction {txid}: outputs ({paid_out} sat) exceed its inputs ({paid_in} sat)")
    return TxDetail(txid, height, block_hash, timestamp, tuple(inputs), tuple(outputs))


def _check_value(txid: str, value: int) -> None:
    if type(value) is not int or not 0 <= value <= MAX_MONEY:
        raise ValueError(f"transaction {txid}: value {value!r} is not a satoshi amount")
