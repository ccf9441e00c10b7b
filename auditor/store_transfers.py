"""Transfers in the store: ingestion progress, reorg rollback and the rows `auditor transfers` lists.

Per chain the store keeps the last ingested block (`ingest_cursor`) and the
hash of every ingested block of the recent past (`ingest_blocks`), so a later
cycle can tell that a block it ingested is no longer on the chain: then the
transfers of that block and every later one are deleted (and re-ingested by
the same cycle), and the cursor goes back. All of it is written inside the
cycle's transaction, with one `transfers` audit record listing what was added
and rolled back, so the hash-chained log says what the auditor saw when.

Mempool transfers (Bitcoin watch view) are stored with block 0; when their
transaction confirms, the same row (chain, tx, idx, kind) gets its block.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Transfer

__all__ = [
    "StoredTransfer",
    "TransferWrite",
    "KEEP_BLOCK_HASHES",
    "ingest_cursor",
    "ingest_hashes",
    "stored_keys",
    "transfers_from",
    "list_transfers",
    "outflows_since",
    "write_transfers_tx",
]

KEEP_BLOCK_HASHES = 256  # blocks per chain whose hashes are kept to detect reorgs


@dataclass(frozen=True)
class StoredTransfer:
    """A transfer with what the cycle decided about it."""

    transfer: Transfer
    cls: str  # internal | withdrawal | allowed | unknown | sanctioned
    match: str | None = None  # withdrawal request id or counterparty name
    lists: tuple[str, ...] = ()  # sanctions lists that matched


@dataclass
class TransferWrite:
    """One cycle's transfer changes for one chain."""

    chain: str
    rollback_from: int | None = None  # delete confirmed transfers and block hashes at ≥ this block
    drop_mempool: bool = False  # delete block-0 rows of transactions not in `rows` (the watch view replaces them)
    rows: list[StoredTransfer] = field(default_factory=list)
    block_hashes: dict[int, str] = field(default_factory=dict)
    cursor: int | None = None  # the last block now ingested
    used_withdrawals: list[str] = field(default_factory=list)


def ingest_cursor(conn: sqlite3.Connection, chain: str) -> int | None:
    row = conn.execute("SELECT block FROM ingest_cursor WHERE chain = ?", (chain,)).fetchone()
    return None if row is None else int(row[0])


def ingest_hashes(conn: sqlite3.Connection, chain: str, since: int) -> dict[int, str]:
    return {int(b): h for b, h in conn.execute(
        "SELECT block, hash FROM ingest_blocks WHERE chain = ? AND block >= ?", (chain, since))}


def stored_keys(conn: sqlite3.Connection, chain: str, txs: Iterable[str]) -> set[tuple[str, int, str, int]]:
    """(tx, idx, kind, block) of stored transfers of these transactions."""
    out: set[tuple[str, int, str, int]] = set()
    txs = list(set(txs))
    for i in range(0, len(txs), 500):
        part = txs[i:i + 500]
        marks = ",".join("?" * len(part))
        out.update((t, int(x), k, int(b)) for t, x, k, b in conn.execute(
            f"SELECT tx, idx, kind, block FROM transfers WHERE chain = ? AND tx IN ({marks})",
            (chain, *part)))
    return out


def transfers_from(conn: sqlite3.Connection, chain: str, block: int) -> list[dict[str, Any]]:
    """Stored confirmed transfers of `chain` at blocks ≥ `block` (what a rollback removes)."""
    return [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM transfers WHERE chain = ? AND block >= ? AND block > 0 "
        "ORDER BY block, tx, idx", (chain, block))]


def list_transfers(conn: sqlite3.Connection, *, wallet: str | None = None, since_ts: int | None = None,
                   limit: int = 1000, chain: str | None = None, cls: str | None = None) -> list[dict[str, Any]]:
    """Newest first. `wallet`: either side; `since_ts`: block time ≥ (mempool rows always);
    `chain`, `cls`: only that chain / class."""
    sql = f"SELECT {_COLUMNS} FROM transfers WHERE 1 = 1"
    args: list[Any] = []
    if chain is not None:
        sql += " AND chain = ?"
        args.append(chain)
    if cls is not None:
        sql += " AND class = ?"
        args.append(cls)
    if wallet is not None:
        sql += " AND (wallet_from = ? OR wallet_to = ?)"
        args += [wallet, wallet]
    if since_ts is not None:
        sql += " AND (timestamp >= ? OR block = 0)"
        args.append(since_ts)
    sql += " ORDER BY block = 0 DESC, timestamp DESC, block DESC, tx, idx LIMIT ?"
    args.append(limit)
    return [_row(r) for r in conn.execute(sql, args)]


def outflows_since(conn: sqlite3.Connection, wallets: Sequence[str], since_ts: int) -> list[dict[str, Any]]:
    """Every non-internal transfer out of `wallets` at block time ≥ `since_ts` (mempool
    rows too), oldest first, without a row limit: what `hot_drain` counts in its window."""
    if not wallets:
        return []
    marks = ",".join("?" * len(wallets))
    return [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM transfers WHERE wallet_from IN ({marks}) AND class IS NOT 'internal' "
        "AND (timestamp >= ? OR block = 0) ORDER BY block = 0, timestamp, block, tx, idx",
        (*wallets, since_ts))]


_COLUMNS = ("chain, block, block_hash, tx, idx, kind, asset, amount, sender, recipient, wallet_from, "
            "wallet_to, counterparties, timestamp, class, match, lists, cycle")


def _row(r: Sequence[Any]) -> dict[str, Any]:
    keys = [c.strip() for c in _COLUMNS.split(",")]
    d = dict(zip(keys, r, strict=True))
    d["amount"] = int(d["amount"])
    d["counterparties"] = json.loads(d["counterparties"])
    d["lists"] = json.loads(d["lists"]) if d["lists"] else []
    return d


def write_transfers_tx(conn: sqlite3.Connection, cycle: int, writes: Sequence[TransferWrite],
                       at: str) -> dict[str, Any] | None:
    """Apply the cycle's transfer changes; returns the payload of the `transfers`
    audit record (None when nothing changed)."""
    audit: dict[str, Any] = {"cycle": cycle, "chains": {}}
    for w in writes:
        entry: dict[str, Any] = {}
        if w.rollback_from is not None:
            removed = conn.execute("DELETE FROM transfers WHERE chain = ? AND block >= ? AND block > 0",
                                   (w.chain, w.rollback_from)).rowcount
            conn.execute("DELETE FROM ingest_blocks WHERE chain = ? AND block >= ?", (w.chain, w.rollback_from))
            entry["rolled_back_from"] = w.rollback_from
            entry["removed"] = removed
        if w.drop_mempool:  # mempool rows whose transaction is gone (replaced, dropped, reorged)
            keep = sorted({s.transfer.tx for s in w.rows})
            marks = ",".join("?" * len(keep))
            conn.execute(f"DELETE FROM transfers WHERE chain = ? AND block = 0 AND tx NOT IN ({marks})",
                         (w.chain, *keep))
        conn.executemany(
            "INSERT INTO transfers (chain, block, block_hash, tx, idx, kind, asset, amount, sender, recipient, "
            "wallet_from, wallet_to, counterparties, timestamp, class, match, lists, cycle) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (chain, tx, idx, kind) DO UPDATE SET block = excluded.block, "
            "block_hash = excluded.block_hash, timestamp = excluded.timestamp",
            [_values(s, cycle) for s in w.rows])
        conn.executemany("INSERT OR REPLACE INTO ingest_blocks (chain, block, hash) VALUES (?, ?, ?)",
                         [(w.chain, b, h) for b, h in w.block_hashes.items()])
        if w.cursor is not None:
            conn.execute("INSERT INTO ingest_cursor (chain, block) VALUES (?, ?) "
                         "ON CONFLICT (chain) DO UPDATE SET block = excluded.block", (w.chain, w.cursor))
            conn.execute("DELETE FROM ingest_blocks WHERE chain = ? AND block < ?",
                         (w.chain, w.cursor - KEEP_BLOCK_HASHES))
            entry["cursor"] = w.cursor
        conn.executemany("INSERT OR IGNORE INTO withdrawals_used (id, chain, cycle, at) VALUES (?, ?, ?, ?)",
                         [(i, w.chain, cycle, at) for i in w.used_withdrawals])
        if w.rows:
            entry["transfers"] = [_audit_json(s) for s in w.rows]
        if w.rollback_from is not None or w.rows:
            audit["chains"][w.chain] = entry
    return audit if audit["chains"] else None


def _values(s: StoredTransfer, cycle: int) -> tuple[Any, ...]:
    t = s.transfer
    return (t.chain, t.block, t.block_hash, t.tx, t.index, t.kind, t.asset, str(t.amount), t.sender,
            t.recipient, t.wallet_from, t.wallet_to, json.dumps(list(t.counterparties)), t.timestamp,
            s.cls, s.match, json.dumps(list(s.lists)) if s.lists else None, cycle)


def _audit_json(s: StoredTransfer) -> dict[str, Any]:
    t = s.transfer
    return {"block": t.block, "block_hash": t.block_hash, "tx": t.tx, "index": t.index, "kind": t.kind,
            "asset": t.asset, "amount": str(t.amount), "from": t.sender, "to": t.recipient,
            "wallet_from": t.wallet_from, "wallet_to": t.wallet_to, "class": s.cls, "match": s.match,
            "lists": list(s.lists)}
