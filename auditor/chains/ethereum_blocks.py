"""Blocks, their transactions and receipts, read for transfer ingestion.

Full blocks (`eth_getBlockByNumber` with transactions) give the native ETH
each transaction carries, the block's hash, parent and timestamp, and the
beacon-chain withdrawals it credits. Receipts (`eth_getBlockReceipts` pinned to
the block's hash, else `eth_getTransactionReceipt` per transaction) say whether
a transaction succeeded and what its sender paid. Everything is parsed
strictly: a field of the wrong shape raises `RpcFailure`, never a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .ethereum_rpc import RpcConnection, RpcFailure, hex_int

__all__ = [
    "BLOCKS_PER_POST",
    "HEADERS_PER_POST",
    "RECEIPTS_PER_POST",
    "TxInfo",
    "BlockInfo",
    "Receipt",
    "block_tasks",
    "check_chain",
    "header_tasks",
    "receipts_of",
    "is_unsupported",
    "address_of",
    "hash_of",
]

BLOCKS_PER_POST = 20  # full blocks per POST: a busy mainnet block is ~0.5 MB of JSON
HEADERS_PER_POST = 500  # blocks without transactions (~1.5 kB each) per POST
RECEIPTS_PER_POST = 200  # eth_getTransactionReceipt calls per POST (fallback)
_GWEI = 10**9
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z").match
_HASH = re.compile(r"0x[0-9a-fA-F]{64}\Z").match
# Error texts of nodes and providers that lack a method; a missing block ("header not
# found") must not look like one, hence the anchor on "method".
_UNSUPPORTED = re.compile(r"method\b.*\b(?:not found|not supported|not available|does not exist|disabled|"
                          r"unavailable|not enabled|not allowed|not whitelisted)|unsupported method|"
                          r"unknown method|no such method", re.IGNORECASE)

Task = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class TxInfo:
    hash: str
    index: int
    sender: str  # lowercase 0x
    to: str | None  # None: contract creation
    value: int  # wei
    gas_price: int | None  # the tx object's price: used when a receipt has no effectiveGasPrice


@dataclass(frozen=True, slots=True)
class BlockInfo:
    number: int
    hash: str
    parent: str
    timestamp: int
    txs: tuple[TxInfo, ...]
    withdrawals: tuple[tuple[int, str, int], ...]  # (withdrawal index, lowercase address, wei)


@dataclass(frozen=True, slots=True)
class Receipt:
    ok: bool  # status 1
    fee: int  # wei the sender paid: gas, blob gas and an L2's L1 data fee
    created: str | None  # contractAddress of a creation


def address_of(value: Any, what: str) -> str:
    if isinstance(value, str) and _ADDRESS(value):
        return value.lower()
    raise RpcFailure(f"{what}: not an address: {str(value)[:50]!r}")


def hash_of(value: Any, what: str) -> str:
    if isinstance(value, str) and _HASH(value):
        return value.lower()
    raise RpcFailure(f"{what}: not a 32-byte hash: {str(value)[:70]!r}")


def is_unsupported(exc: RpcFailure) -> bool:
    """The node does not offer the method (rather than failing to answer it)."""
    return exc.rpc_code in (-32601, -32004) or (exc.rpc_code is not None
                                                 and bool(_UNSUPPORTED.search(exc.reason)))


# --- blocks ---------------------------------------------------------------------


def block_tasks(conn: RpcConnection, first: int, last: int, full: bool,
                deadline: float | None) -> list[Callable[[], list[BlockInfo]]]:
    """Tasks reading blocks first..last (with transactions when `full`), a batch per POST."""
    per_post = BLOCKS_PER_POST if full else HEADERS_PER_POST
    return [partial(_read_numbers, conn, range(start, min(last, start + per_post - 1) + 1), full, deadline)
            for start in range(first, last + 1, per_post)]


def header_tasks(conn: RpcConnection, numbers: Sequence[int],
                 deadline: float | None) -> list[Callable[[], list[BlockInfo]]]:
    """Tasks reading the given blocks without transactions (hashes only)."""
    chunks = [list(numbers[i:i + HEADERS_PER_POST]) for i in range(0, len(numbers), HEADERS_PER_POST)]
    return [partial(_read_numbers, conn, chunk, False, deadline) for chunk in chunks]


def _read_numbers(conn: RpcConnection, numbers: Sequence[int], full: bool,
                  deadline: float | None) -> list[BlockInfo]:
    answers = conn.batch([("eth_getBlockByNumber", [hex(n), full]) for n in numbers], deadline)
    return [_parse_block(raw, n, full) for n, raw in zip(numbers, answers)]


def _parse_block(raw: Any, number: int, full: bool) -> BlockInfo:
    what = f"block {number}"
    if raw is None:
        raise RpcFailure(f"{what} not found (beyond the node's head, pruned, or not synced?)")
    if not isinstance(raw, dict):
        raise RpcFailure(f"{what}: malformed block object")
    if hex_int(raw.get("number"), f"{what} number") != number:
        raise RpcFailure(f"{what}: the node returned another block")
    block_hash = hash_of(raw.get("hash"), f"{what} hash")
    txs: tuple[TxInfo, ...] = ()
    if full:
        listed = raw.get("transactions")
        if not isinstance(listed, list):
            raise RpcFailure(f"{what}: transactions missing")
        txs = tuple(_parse_tx(tx, i, block_hash, what) for i, tx in enumerate(listed))
    return BlockInfo(number, block_hash, hash_of(raw.get("parentHash"), f"{what} parentHash"),
                     hex_int(raw.get("timestamp"), f"{what} timestamp"), txs,
                     _parse_withdrawals(raw.get("withdrawals"), what) if full else ())


def _parse_tx(tx: Any, position: int, block_hash: str, what: str) -> TxInfo:
    if not isinstance(tx, dict):
        raise RpcFailure(f"{what}: transaction {position} is not an object (asked for full transactions)")
    tx_hash = hash_of(tx.get("hash"), f"{what} transaction {position} hash")
    where = f"{what} transaction {tx_hash}"
    if hex_int(tx.get("transactionIndex"), f"{where} index") != position:
        raise RpcFailure(f"{where}: listed at {position} with another transactionIndex")
    if hash_of(tx.get("blockHash"), f"{where} blockHash") != block_hash:
        raise RpcFailure(f"{where}: belongs to another block (reorg during the read?)")
    to = tx.get("to")
    price = tx.get("gasPrice")
    return TxInfo(tx_hash, position, address_of(tx.get("from"), f"{where} from"),
                  None if to is None else address_of(to, f"{where} to"),
                  hex_int(tx.get("value"), f"{where} value"),
                  None if price is None else hex_int(price, f"{where} gasPrice"))


def _parse_withdrawals(raw: Any, what: str) -> tuple[tuple[int, str, int], ...]:
    if raw is None:  # before Shanghai, or a chain without a beacon chain
        return ()
    if not isinstance(raw, list):
        raise RpcFailure(f"{what}: malformed withdrawals")
    out = []
    for w in raw:
        if not isinstance(w, dict):
            raise RpcFailure(f"{what}: malformed withdrawal")
        out.append((hex_int(w.get("index"), f"{what} withdrawal index"),
                    address_of(w.get("address"), f"{what} withdrawal address"),
                    hex_int(w.get("amount"), f"{what} withdrawal amount") * _GWEI))
    return tuple(out)


def check_chain(blocks: Sequence[BlockInfo]) -> None:
    """Consecutive blocks must link by parentHash: else the node switched forks mid-read."""
    for prev, block in zip(blocks, blocks[1:]):
        if block.number != prev.number + 1 or block.parent != prev.hash:
            raise RpcFailure(f"block {block.number} does not follow block {prev.number} "
                             "(reorg during the read?); the next cycle retries")


# --- receipts --------------------------------------------------------------------


def receipts_of(conn: RpcConnection, needed: Mapping[BlockInfo, Sequence[TxInfo]], deadline: float | None,
                run: Callable[[list[Task]], list[Any]]) -> dict[str, Receipt]:
    """Receipts of the needed transactions: whole blocks' receipts when the node has
    `eth_getBlockReceipts`, else one `eth_getTransactionReceipt` per transaction."""
    blocks = [b for b, txs in needed.items() if txs]
    if not blocks:
        return {}
    try:
        per_block = run([partial(_block_receipts, conn, b, deadline) for b in blocks])
    except RpcFailure as exc:
        # -32602: a node whose eth_getBlockReceipts takes a number only, not a hash
        if not (is_unsupported(exc) or exc.rpc_code == -32602):
            raise
        txs = [(b, tx) for b in blocks for tx in needed[b]]
        chunks = [txs[i:i + RECEIPTS_PER_POST] for i in range(0, len(txs), RECEIPTS_PER_POST)]
        per_block = run([partial(_tx_receipts, conn, chunk, deadline) for chunk in chunks])
    out: dict[str, Receipt] = {}
    for part in per_block:
        out.update(part)
    return out


def _block_receipts(conn: RpcConnection, block: BlockInfo, deadline: float | None) -> dict[str, Receipt]:
    raw = conn.call("eth_getBlockReceipts", [block.hash], deadline)
    what = f"receipts of block {block.number}"
    if not isinstance(raw, list) or len(raw) != len(block.txs):
        raise RpcFailure(f"{what}: expected {len(block.txs)} receipts"
                         f"{'' if isinstance(raw, list) else ', got no list'}")
    return {tx.hash: _parse_receipt(r, tx, block) for tx, r in zip(block.txs, raw)}


def _tx_receipts(conn: RpcConnection, chunk: Sequence[tuple[BlockInfo, TxInfo]],
                 deadline: float | None) -> dict[str, Receipt]:
    answers = conn.batch([("eth_getTransactionReceipt", [tx.hash]) for _, tx in chunk], deadline)
    return {tx.hash: _parse_receipt(r, tx, b) for (b, tx), r in zip(chunk, answers)}


def _parse_receipt(raw: Any, tx: TxInfo, block: BlockInfo) -> Receipt:
    what = f"receipt of {tx.hash}"
    if not isinstance(raw, dict):
        raise RpcFailure(f"{what} missing (the node may not have indexed it)")
    if hash_of(raw.get("transactionHash"), f"{what} hash") != tx.hash:
        raise RpcFailure(f"{what}: the node answered another transaction's receipt")
    if hash_of(raw.get("blockHash"), f"{what} blockHash") != block.hash:
        raise RpcFailure(f"{what}: from another block than {block.number} (reorg during the read?)")
    status = hex_int(raw.get("status"), f"{what} status")  # pre-Byzantium receipts have none: not read
    price_raw = raw.get("effectiveGasPrice")
    if price_raw is None and tx.gas_price is None:
        raise RpcFailure(f"{what}: no effectiveGasPrice and no gasPrice: the fee is unknown")
    price = tx.gas_price if price_raw is None else hex_int(price_raw, f"{what} effectiveGasPrice")
    fee = hex_int(raw.get("gasUsed"), f"{what} gasUsed") * (price or 0)
    if raw.get("blobGasUsed") is not None:  # EIP-4844 blob transactions pay for blob gas too
        fee += (hex_int(raw["blobGasUsed"], f"{what} blobGasUsed")
                * hex_int(raw.get("blobGasPrice"), f"{what} blobGasPrice"))
    if raw.get("l1Fee") is not None:  # OP-stack L2s charge the L1 data fee on top
        fee += hex_int(raw["l1Fee"], f"{what} l1Fee")
    created = raw.get("contractAddress")
    return Receipt(status == 1, fee, None if created is None else address_of(created, f"{what} contractAddress"))
