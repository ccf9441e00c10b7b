"""Manual alert operations (ack, resolve), each recorded in the audit log."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from .errors import StoreError
from .model import Alert, Transition
from .store_audit import AuditChain
from .store_codec import (
    ALERT_COLUMNS,
    alert_to_row,
    db_time,
    dumps,
    format_time,
    transition_to_json,
)
from .store_outbox import enqueue_tx

__all__ = ["ack_tx", "resolve_tx", "upsert_alerts"]

_UPSERT = (
    f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({', '.join('?' * 15)}) "
    "ON CONFLICT (fingerprint) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in ALERT_COLUMNS.split(",")[1:])
)


def upsert_alerts(conn: sqlite3.Connection, alerts: list[Alert]) -> None:
    """Store each alert's current state, keyed by fingerprint."""
    conn.executemany(_UPSERT, [alert_to_row(a) for a in alerts])


def _state(conn: sqlite3.Connection, fingerprint: str) -> str:
    row = conn.execute("SELECT state FROM alerts WHERE fingerprint = ?", (fingerprint,)).fetchone()
    if row is None:
        raise StoreError(f"no alert with fingerprint {fingerprint}; "
                         "list them with `auditor alerts list --all`")
    return str(row[0])


def _event(conn: sqlite3.Connection, seq: int, fingerprint: str, kind: str, at: datetime,
           payload: dict[str, Any]) -> None:
    conn.execute("INSERT INTO alert_events (seq, fingerprint, cycle, kind, at, payload) "
                 "VALUES (?, ?, NULL, ?, ?, ?)", (seq, fingerprint, kind, db_time(at), dumps(payload)))


def ack_tx(conn: sqlite3.Connection, fingerprint: str, by: str, note: str, at: datetime) -> int:
    """Acknowledge a firing alert (suppresses repeats only). Returns the audit seq."""
    if _state(conn, fingerprint) != "firing":
        raise StoreError(f"alert {fingerprint} is resolved; there is nothing to acknowledge")
    if not by:
        raise ValueError("an acknowledgement needs who made it (by)")
    payload: dict[str, object] = {"kind": "ack", "fingerprint": fingerprint, "by": by, "note": note,
               "at": format_time(at)}
    record = AuditChain(conn).append("ack", payload, at)
    conn.execute("UPDATE alerts SET acked_by = ?, acked_at = ? WHERE fingerprint = ?",
                 (by, db_time(at), fingerprint))
    _event(conn, record.seq, fingerprint, "ack", at, {**payload, "seq": record.seq})
    return record.seq


def resolve_tx(conn: sqlite3.Connection, fingerprint: str, by: str, reason: str, at: datetime,
               transition: Transition, alert: Alert | None, channels: list[str]) -> int:
    """Resolve by hand: state, an `alert` record with the transition, outbox rows. Returns seq."""
    if transition.fingerprint != fingerprint or transition.kind != "resolved":
        raise ValueError("resolve_alert needs a `resolved` transition of the same fingerprint")
    if alert is not None and (alert.fingerprint != fingerprint or alert.state != "resolved"):
        raise ValueError("resolve_alert's alert must be the same alert in state resolved")
    if _state(conn, fingerprint) != "firing":
        raise StoreError(f"alert {fingerprint} is already resolved")
    if not by or not reason:
        raise ValueError("a manual resolve needs who (by) and why (reason)")
    chain = AuditChain(conn)
    payload = {**transition_to_json(transition, seq=chain.next_seq), "by": by, "reason": reason}
    record = chain.append("alert", payload, at)
    if alert is None:
        conn.execute("UPDATE alerts SET state = 'resolved', last_change = ? WHERE fingerprint = ?",
                     (db_time(at), fingerprint))
    else:
        upsert_alerts(conn, [alert])
    _event(conn, record.seq, fingerprint, "resolved", at, payload)
    for channel in channels:
        enqueue_tx(conn, channel, [payload], at)
    return record.seq
