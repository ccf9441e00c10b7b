"""Reads for audit reports: cycles of a window streamed row by row, the alerts
active in it, the log head with its seq, and the `report` records written."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime

from .store_audit import ZERO_HASH
from .store_codec import db_time, parse_time

__all__ = ["active_alert_fingerprints", "cycle_rows", "head_record", "next_cycle_at",
           "report_written"]

# Transition kinds after which an alert is firing (acks and silences change nothing).
_FIRING_KINDS = ("firing", "escalated", "repeat", "outflow_reorged")

CycleRow = tuple[int, str, str, str, str | None]  # id, taken_at, status, chains, exposure


def cycle_rows(conn: sqlite3.Connection, start: datetime, end: datetime) -> Iterator[CycleRow]:
    """Every cycle taken in [start, end), oldest first, with its exposure payload (or None).
    A cursor, not a list: a month of one-minute cycles is never held in memory at once."""
    cur = conn.execute(
        "SELECT c.id, c.taken_at, c.status, c.chains, e.payload FROM cycles c "
        "LEFT JOIN exposures e ON e.cycle = c.id WHERE c.taken_at >= ? AND c.taken_at < ? "
        "ORDER BY c.taken_at, c.id", (db_time(start), db_time(end)))
    cur.arraysize = 256
    return cur


def next_cycle_at(conn: sqlite3.Connection, at: datetime) -> datetime | None:
    """When the first cycle at or after `at` was taken (None: none yet)."""
    row = conn.execute("SELECT min(taken_at) FROM cycles WHERE taken_at >= ?",
                       (db_time(at),)).fetchone()
    return parse_time(row[0]) if row and row[0] else None


def active_alert_fingerprints(conn: sqlite3.Connection, start: datetime,
                              end: datetime) -> list[str]:
    """Alerts firing at any point in [start, end): a transition inside it, or firing at
    `start` (their last lifecycle event before it was not `resolved`)."""
    s, e = db_time(start), db_time(end)
    inside = {r[0] for r in conn.execute(
        "SELECT DISTINCT fingerprint FROM alert_events WHERE at >= ? AND at < ? AND kind != 'ack'",
        (s, e))}
    marks = ",".join("?" * len(_FIRING_KINDS))
    before = {r[0] for r in conn.execute(
        "SELECT ev.fingerprint FROM alert_events ev JOIN (SELECT fingerprint, max(seq) AS m "
        "FROM alert_events WHERE at < ? AND kind != 'ack' GROUP BY fingerprint) last "
        f"ON ev.seq = last.m WHERE ev.kind IN ({marks})", (s, *_FIRING_KINDS))}
    return sorted(inside | before)


def head_record(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last audit record; (0, zero hash) for an empty log."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, ZERO_HASH)


def report_written(conn: sqlite3.Connection, first: str, last: str, scheduled: bool) -> bool:
    """Whether a `report` record for this period exists (the daemon's was it written)."""
    row = conn.execute(
        "SELECT 1 FROM audit_log WHERE kind = 'report' AND json_extract(payload, '$.from') = ? "
        "AND json_extract(payload, '$.to') = ? AND (? = 0 OR json_extract(payload, "
        "'$.scheduled') = 1) LIMIT 1", (first, last, int(scheduled))).fetchone()
    return row is not None
