"""The notification outbox: one row per channel and batch of transitions.

Deliveries are recorded here, not in the audit log (DESIGN.md, Daemon). A
row is pending until delivered or dead; `next_attempt_at` holds back retries.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import StoreError
from .store_codec import db_time, dumps, parse_time

__all__ = [
    "OutboxItem",
    "enqueue_tx",
    "mark_dead_tx",
    "mark_delivered_many_tx",
    "mark_delivered_tx",
    "mark_retry_tx",
    "outbox_channels",
    "outbox_counts",
    "outbox_next_due",
    "outbox_page",
    "pending_outbox",
]

_PENDING = "delivered_at IS NULL AND dead_at IS NULL"
_COLUMNS = ("id, channel, created_at, attempts, next_attempt_at, first_attempt_at, payload, "
            "cycle, last_error")


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    first_attempt_at: datetime | None
    transitions: list[dict[str, Any]]  # transition objects, each with its "seq"
    cycle: int | None = None
    last_error: str | None = None


def enqueue_tx(conn: sqlite3.Connection, channel: str, transitions: list[dict[str, Any]],
               at: datetime, cycle: int | None = None) -> int:
    if not channel:
        raise ValueError("an outbox row needs a channel name")
    t = db_time(at)
    cur = conn.execute(
        "INSERT INTO outbox (created_at, channel, cycle, payload, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)", (t, channel, cycle, dumps(list(transitions), "outbox"), t))
    return int(cur.lastrowid or 0)


def pending_outbox(conn: sqlite3.Connection, now: datetime, limit: int = 100,
                   channel: str | None = None) -> list[OutboxItem]:
    """Rows not delivered, not dead, due at `now`, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM outbox WHERE {_PENDING} AND next_attempt_at <= ?"
    params: list[object] = [db_time(now)]
    if channel is not None:
        sql += " AND channel = ?"
        params.append(channel)
    params.append(int(limit))
    return _items(conn.execute(sql + " ORDER BY id LIMIT ?", params).fetchall())


def outbox_page(conn: sqlite3.Connection, channel: str, after_id: int,
                limit: int) -> list[OutboxItem]:
    """Up to `limit` pending rows of `channel` with id > `after_id`, oldest first, due
    or not: the worker pages through a backlog with it and keeps each channel in
    order (a row waits while an older one of its channel waits for its retry)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE id > ? AND channel = ? AND {_PENDING} "
        "ORDER BY id LIMIT ?", (int(after_id), channel, int(limit))).fetchall()
    return _items(rows)


def outbox_channels(conn: sqlite3.Connection) -> dict[str, int]:
    """{channel: its oldest pending row id} for every channel with pending rows."""
    rows = conn.execute(
        f"SELECT channel, min(id) FROM outbox WHERE {_PENDING} GROUP BY channel").fetchall()
    return {r[0]: r[1] for r in rows}


def outbox_next_due(conn: sqlite3.Connection) -> datetime | None:
    """When the worker has something to do next: the earliest `next_attempt_at` of
    each channel's oldest pending row (younger rows wait behind it); None: nothing pending."""
    row = conn.execute(
        "SELECT min(o.next_attempt_at) FROM outbox o JOIN "
        f"(SELECT min(id) AS id FROM outbox WHERE {_PENDING} GROUP BY channel) h "
        "ON o.id = h.id").fetchone()
    return parse_time(row[0]) if row and row[0] else None


def _items(rows: list[tuple[Any, ...]]) -> list[OutboxItem]:
    return [OutboxItem(
        id=r[0], channel=r[1], created_at=parse_time(r[2]), attempts=r[3],
        next_attempt_at=parse_time(r[4]), first_attempt_at=parse_time(r[5]) if r[5] else None,
        transitions=json.loads(r[6]), cycle=r[7], last_error=r[8]) for r in rows]


def _attempt(conn: sqlite3.Connection, item_id: int, at: datetime, sets: str,
             params: tuple[object, ...]) -> None:
    """Record one attempt's outcome on a row that is still pending."""
    cur = conn.execute(
        f"UPDATE outbox SET attempts = attempts + 1, first_attempt_at = "
        f"coalesce(first_attempt_at, ?), {sets} WHERE id = ? AND {_PENDING}",
        (db_time(at), *params, item_id))
    if cur.rowcount != 1:
        raise StoreError(f"outbox row {item_id} does not exist or is already delivered or dead")


def mark_delivered_tx(conn: sqlite3.Connection, item_id: int, at: datetime) -> None:
    _attempt(conn, item_id, at, "delivered_at = ?", (db_time(at),))


def mark_delivered_many_tx(conn: sqlite3.Connection,
                           marks: list[tuple[int, datetime]]) -> None:
    """Several rows delivered, each at its own time (one transaction: the caller's)."""
    for item_id, at in marks:
        _attempt(conn, item_id, at, "delivered_at = ?", (db_time(at),))


def mark_retry_tx(conn: sqlite3.Connection, item_id: int, at: datetime, error: str,
                  next_attempt_at: datetime) -> None:
    _attempt(conn, item_id, at, "last_error = ?, next_attempt_at = ?",
             (str(error)[:2000], db_time(next_attempt_at)))


def mark_dead_tx(conn: sqlite3.Connection, item_id: int, at: datetime, error: str) -> None:
    _attempt(conn, item_id, at, "last_error = ?, dead_at = ?", (str(error)[:2000], db_time(at)))


def outbox_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """{"pending", "retrying" (pending with failed attempts), "delivered", "dead"}."""
    row = conn.execute(
        "SELECT "
        "coalesce(sum(delivered_at IS NULL AND dead_at IS NULL), 0), "
        "coalesce(sum(delivered_at IS NULL AND dead_at IS NULL AND attempts > 0), 0), "
        "coalesce(sum(delivered_at IS NOT NULL), 0), coalesce(sum(dead_at IS NOT NULL), 0) "
        "FROM outbox").fetchone()
    return {"pending": row[0], "retrying": row[1], "delivered": row[2], "dead": row[3]}
