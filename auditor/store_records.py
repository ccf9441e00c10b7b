"""Daily records: one immutable row per business date, and the reads of them.

A record is written in the caller's write transaction together with a
`daily_record` audit record carrying the same payload, so the table is an
index of what the hash-chained log already proves. Triggers refuse UPDATE
and DELETE (DESIGN.md, Store: a late or missing record is a finding, never
back-filled or rewritten).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Any

from .errors import StoreError
from .store_audit import AuditChain
from .store_codec import parse_time

__all__ = [
    "check_date",
    "daily_record",
    "daily_record_dates",
    "daily_records",
    "first_cycle_at",
    "last_daily_record_date",
    "write_daily_record_tx",
]


def check_date(text: str, what: str = "business date") -> str:
    """`text` if it is a YYYY-MM-DD date, else ValueError saying so."""
    try:
        if len(text) == 10 and date.fromisoformat(text).isoformat() == text:
            return text
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{what} {text!r} is not a date; give it as YYYY-MM-DD")


def write_daily_record_tx(conn: sqlite3.Connection, business_date: str, record: dict[str, Any],
                          at: datetime) -> int:
    """Insert the record of `business_date` inside the caller's write transaction.

    `record["head"]` is set here to the audit-log head before the record (only
    the store knows it exactly). Returns the `daily_record` audit seq.
    """
    check_date(business_date)
    if record.get("date", business_date) != business_date:
        raise ValueError(f"the record says date {record.get('date')!r}, not {business_date}")
    if conn.execute("SELECT 1 FROM daily_records WHERE business_date = ?",
                    (business_date,)).fetchone():
        raise StoreError(f"the daily record of {business_date} exists and is immutable")
    chain = AuditChain(conn)
    payload = {**record, "date": business_date, "head": chain.head}
    rec = chain.append("daily_record", payload, at)
    conn.execute(
        "INSERT INTO daily_records (business_date, cutoff_at, cycle, taken_at, late, seq, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, (SELECT payload FROM audit_log WHERE seq = ?))",
        (business_date, payload.get("cutoff"), payload.get("cycle"), payload.get("taken_at"),
         int(bool(payload.get("late"))), rec.seq, rec.seq))
    return rec.seq


def _row(seq: int, payload: str) -> dict[str, Any]:
    return {**json.loads(payload), "seq": seq}


def daily_record(conn: sqlite3.Connection, business_date: str) -> dict[str, Any] | None:
    """The record's payload plus `seq` (its audit record), or None."""
    row = conn.execute("SELECT seq, payload FROM daily_records WHERE business_date = ?",
                       (check_date(business_date),)).fetchone()
    return _row(*row) if row else None


def daily_records(conn: sqlite3.Connection, from_date: str | None = None,
                  to_date: str | None = None) -> list[dict[str, Any]]:
    """Records of the inclusive period, oldest first (each with `seq`)."""
    lo = check_date(from_date, "--from") if from_date else "0000-00-00"
    hi = check_date(to_date, "--to") if to_date else "9999-99-99"
    rows = conn.execute("SELECT seq, payload FROM daily_records WHERE business_date BETWEEN ? AND ? "
                        "ORDER BY business_date", (lo, hi)).fetchall()
    return [_row(s, p) for s, p in rows]


def daily_record_dates(conn: sqlite3.Connection, from_date: str) -> frozenset[str]:
    """Business dates on or after `from_date` that have a record (no payloads read)."""
    return frozenset(r[0] for r in conn.execute(
        "SELECT business_date FROM daily_records WHERE business_date >= ?", (from_date,)))


def last_daily_record_date(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT max(business_date) FROM daily_records").fetchone()
    return row[0] if row and row[0] else None


def first_cycle_at(conn: sqlite3.Connection) -> datetime | None:
    """When the store's first cycle was taken (any status)."""
    row = conn.execute("SELECT taken_at FROM cycles ORDER BY id LIMIT 1").fetchone()
    return parse_time(row[0]) if row else None
