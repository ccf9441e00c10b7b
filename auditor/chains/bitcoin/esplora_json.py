"""Esplora's JSON shapes, checked strictly, for `esplora.py`.

Every check raises `Bad` (the backend turns it into a `BackendError` with its
label). `tx_detail` reads one `GET /tx/:txid` answer: Esplora gives each input
its `prevout` (script and value of the output it spends) and the `status`
(height, block hash and block time), so one request per transaction is the
whole detail.
"""

from __future__ import annotations

import re
from typing import Any

from .details import make_detail
from .types import TxDetail

__all__ = ["Bad", "MAX_SATS", "sat", "nonneg", "hash64", "obj", "array", "tx_detail"]

MAX_SATS = 21_000_000 * 100_000_000
_HEX64 = re.compile(r"[0-9a-f]{64}\Z").match
_SCRIPT = re.compile(r"(?:[0-9a-f]{2})*\Z").match


class Bad(Exception):
    """The answer does not have the documented shape."""


def sat(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_SATS:
        raise Bad(f"value {v!r} is not an integer number of satoshis")
    return v


def nonneg(v: Any, what: str) -> int:
    if type(v) is not int or v < 0:
        raise Bad(f"{what} {v!r} is not a non-negative integer")
    return v


def hash64(v: Any, what: str) -> str:
    if not isinstance(v, str) or not _HEX64(v):
        raise Bad(f"{what} is not 64 lowercase hex digits")
    return v


def obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Bad(f"{what} is not a JSON object")
    return v


def array(v: Any, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise Bad(f"{what} is not a JSON array")
    return v


def _script(v: Any, what: str) -> str:
    if not isinstance(v, str) or not _SCRIPT(v):
        raise Bad(f"{what} is not lowercase hex")
    return v


def _status(raw: Any) -> tuple[int, str, int]:
    """(height, block hash, block time); (0, "", 0) for the mempool."""
    status = obj(raw, "status")
    confirmed = status.get("confirmed")
    if confirmed is False:
        return 0, "", 0
    if confirmed is not True:
        raise Bad("status.confirmed is not a boolean")
    height = nonneg(status.get("block_height"), "block_height")
    if height == 0:
        raise Bad("a confirmed transaction at height 0")
    return height, hash64(status.get("block_hash"), "block_hash"), nonneg(status.get("block_time"), "block_time")


def tx_detail(raw: Any, txid: str) -> TxDetail:
    """The `TxDetail` of one `/tx/:txid` answer, which must be for `txid`."""
    tx = obj(raw, "a transaction")
    if tx.get("txid") != txid:
        raise Bad(f"asked for transaction {txid}, got another")
    vin = array(tx.get("vin"), "vin")
    inputs = []
    for item in vin:
        item = obj(item, "an input")
        if item.get("is_coinbase") is True:
            if len(vin) != 1:
                raise Bad("a coinbase input next to other inputs")
            continue
        prevout = obj(item.get("prevout"), "prevout")
        inputs.append((hash64(item.get("txid"), "vin txid"), nonneg(item.get("vout"), "vin vout"),
                       _script(prevout.get("scriptpubkey"), "prevout scriptpubkey"), sat(prevout.get("value"))))
    outputs = [(_script(o.get("scriptpubkey"), "scriptpubkey"), sat(o.get("value")))
               for o in (obj(o, "an output") for o in array(tx.get("vout"), "vout"))]
    if not vin:
        raise Bad("a transaction without inputs")
    try:
        return make_detail(txid, *_status(tx.get("status")), inputs, outputs)
    except ValueError as exc:
        raise Bad(str(exc)) from None
