"""Reads for `auditor backtest`: a read-only connection, the stored cycles of a period
streamed with their exposure and watch totals, and the transitions that did happen.

Nothing here writes: the connection is opened with SQLite's `mode=ro`, so even
a bug cannot change the store a backtest reads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import StoreError
from .store_codec import db_time, parse_time
from .store_schema import BUSY_TIMEOUT_MS

__all__ = ["StoredCycle", "connect_read_only", "period_cycles", "period_transitions"]


@dataclass(frozen=True)
class StoredCycle:
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


def period_cycles(conn: sqlite3.Connection, start: datetime,
                  end: datetime) -> Iterator[StoredCycle]:
    """Cycles taken in [start, end), in order, from two cursors read side by side
    (bounded memory: one cycle's rows at a time)."""
    lo, hi = db_time(start), db_time(end)
    ids = conn.execute("SELECT min(id), max(id) FROM cycles WHERE taken_at >= ? AND taken_at < ?",
                       (lo, hi)).fetchone()
    if ids[0] is None:
        return
    cycles = conn.execute(
        "SELECT c.id, c.taken_at, c.status, c.has_watch, e.payload FROM cycles c "
        "LEFT JOIN exposures e ON e.cycle = c.id WHERE c.id BETWEEN ? AND ? ORDER BY c.id", ids)
    totals = conn.execute(
        "SELECT cycle, wallet, asset, amount FROM wallet_totals "
        "WHERE cycle BETWEEN ? AND ? AND view = 'watch' ORDER BY cycle", ids)
    cycles.arraysize = totals.arraysize = 1024
    pending = next(totals, None)
    for cid, taken_at, status, has_watch, payload in cycles:
        watch: dict[tuple[str, str], int] | None = {} if has_watch else None
        while pending is not None and pending[0] <= cid:
            if pending[0] == cid and watch is not None:
                watch[(pending[1], pending[2])] = int(pending[3])
            pending = next(totals, None)
        t = parse_time(taken_at)
        if not lo <= taken_at < hi:
            continue  # an out-of-order clock put a cycle of another period between the ids
        yield StoredCycle(cid, t, status, payload, watch)


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
