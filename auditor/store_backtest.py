"""Reads for `auditor backtest`: a read-only connection, the stored cycles of a period
streamed with their exposure and watch totals, and the transitions that did happen.

Nothing here writes: the connection is opened with SQLite's `mode=ro`, so even
a bug cannot change the store a backtest reads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from .errors import StoreError
from .store_codec import db_time, parse_time
from .store_schema import BUSY_TIMEOUT_MS

__all__ = ["StoredCycle", "connect_read_only", "period_cycles", "period_transitions"]


class StoredCycle(NamedTuple):
    """One stored cycle as the backtest reads it (a row: cheap to build by the 40,000)."""

    id: int
    taken_at: datetime
    status: str
    exposure: str | None  # the stored exposure JSON text (None: a failed cycle)
    watch: dict[tuple[str, str], int] | None  # watch-view totals; None: no chain read


def connect_read_only(path: Path) -> sqlite_utils.Database:
    """Open an existing store read-only (SQLite refuses every write on it)."""
    if not path.is_file():
        raise StoreError(f"store {path}: no such file; check store.path, or run `auditor poll "
                         "--once` or `auditor run` to create it")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.isolation_level = None
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return sqlite_utils.Database(conn, execute_plugins=False)


_CYCLES_SQL = (
    "SELECT c.id, c.taken_at, c.status, c.has_watch, e.payload, "
    "(SELECT group_concat(w.wallet, char(30)) || char(29) || group_concat(w.asset, char(30)) "
    "|| char(29) || group_concat(w.amount, char(30)) FROM wallet_totals w "
    "WHERE w.cycle = c.id AND w.view = 'watch') FROM cycles c "
    "LEFT JOIN exposures e ON e.cycle = c.id WHERE c.id BETWEEN ? AND ? ORDER BY c.id")
_BATCH = 512


def period_cycles(conn: sqlite3.Connection, start: datetime,
                  end: datetime) -> Iterator[StoredCycle]:
    """Cycles taken in [start, end), in order, one row each: the watch totals come as
    their keys and amounts concatenated in primary-key order (bounded memory)."""
    lo, hi = db_time(start), db_time(end)
    ids = conn.execute("SELECT min(id), max(id) FROM cycles WHERE taken_at >= ? AND taken_at < ?",
                       (lo, hi)).fetchone()
    if ids[0] is None:
        return
    reader = _WatchReader(conn)
    for batch in _batches(conn, ids):
        for cid, taken_at, status, has_watch, payload, totals in batch:
            if not lo <= taken_at < hi:
                continue  # an out-of-order clock put a cycle of another period between the ids
            watch: dict[tuple[str, str], int] | None = None
            if has_watch:
                watch = {} if totals is None else reader.watch(cid, totals)
            yield StoredCycle(cid, parse_time(taken_at), status, payload, watch)


def _batches(conn: sqlite3.Connection, ids: tuple[int, int]) -> Iterator[list[tuple[Any, ...]]]:
    cur = conn.execute(_CYCLES_SQL, ids)
    while batch := cur.fetchmany(_BATCH):
        yield batch


class _WatchReader:
    """A cycle's watch totals from "wallets \\x1d assets \\x1d amounts" (lists joined by
    \\x1e). The key list is parsed once per distinct text (wallets and assets rarely
    change), and an amount whose text is the previous cycle's at the same place keeps
    its int (most wallets do not move every cycle). Names holding a separator are read
    row by row instead."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.keys: dict[str, list[tuple[str, str]] | None] = {}
        self.names = ""  # the previous cycle's key text, its keys, amount texts and ints
        self.last: tuple[list[tuple[str, str]] | None, list[str], list[int]] = (None, [], [])

    def watch(self, cid: int, totals: str) -> dict[tuple[str, str], int]:
        names, _, amounts = totals.rpartition("\x1d")  # amounts are digits: the last one
        ks = self.last[0] if names == self.names else self._keys(names)
        values = amounts.split("\x1e")
        if ks is None or len(values) != len(ks):
            return {(w, a): int(v) for w, a, v in self.conn.execute(
                "SELECT wallet, asset, amount FROM wallet_totals WHERE cycle = ? "
                "AND view = 'watch'", (cid,))}
        last_ks, last_values, last_ints = self.last
        if ks is last_ks:
            ints = [n if v == w else int(v) for v, w, n in zip(values, last_values, last_ints)]
        else:
            ints = list(map(int, values))
        self.names, self.last = names, (ks, values, ints)
        return dict(zip(ks, ints))

    def _keys(self, names: str) -> list[tuple[str, str]] | None:
        if names in self.keys:
            return self.keys[names]
        if len(self.keys) > 64:
            self.keys.clear()
        wallets, _, assets = names.partition("\x1d")
        ws, syms = wallets.split("\x1e"), assets.split("\x1e")
        pairs = list(zip(ws, syms))
        ok = "\x1d" not in assets and len(ws) == len(syms) and len(set(pairs)) == len(pairs)
        ks = self.keys[names] = pairs if ok else None
        return ks


def period_transitions(conn: sqlite3.Connection, start: datetime, end: datetime,
                       rules: Collection[str]) -> list[dict[str, Any]]:
    """The firing, escalated and resolved transitions stored for `rules` in [start, end)
    (manual resolves included), in seq order, as stored."""
    rows = conn.execute(
        "SELECT seq, payload FROM alert_events WHERE at >= ? AND at < ? "
        "AND kind IN ('firing', 'escalated', 'resolved') ORDER BY seq",
        (db_time(start), db_time(end))).fetchall()
    out = []
    for seq, payload in rows:
        t = json.loads(payload)
        if t.get("rule") in rules:
            out.append({**t, "seq": seq})
    return out
