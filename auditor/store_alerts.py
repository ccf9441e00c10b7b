"""Alert operations outside a cycle (ack, resolve by hand, delivery_failed), each an
audit record written with its outbox rows in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
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
from .store_reads import get_alert
from .store_silences import announce_tx

__all__ = ["ack_tx", "delivery_failed_tx", "resolve_tx", "upsert_alerts"]

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


def ack_tx(conn: sqlite3.Connection, fingerprint: str, by: str, note: str, at: datetime,
           notice: dict[str, Any] | None = None, channels: Sequence[str] = ()) -> int:
    """Acknowledge a firing alert (suppresses repeats only). Returns the audit seq.
    `notice` (an `acknowledged` transition-like object) goes to `channels` with that seq."""
    if _state(conn, fingerprint) != "firing":
        raise StoreError(f"alert {fingerprint} is resolved; there is nothing to acknowledge")
    if not by:
        raise ValueError("an acknowledgement needs who made it (by)")
    payload: dict[str, object] = {"kind": "ack", "fingerprint": fingerprint, "by": by, "note": note,
               "at": format_time(at)}
    seq, _ = announce_tx(conn, "ack", payload, at, notice, channels)
    conn.execute("UPDATE alerts SET acked_by = ?, acked_at = ? WHERE fingerprint = ?",
                 (by, db_time(at), fingerprint))
    _event(conn, seq, fingerprint, "ack", at, {**payload, "seq": seq})
    return seq


def delivery_failed_tx(conn: sqlite3.Connection, fingerprint: str, channel: str, at: datetime,
                       summary: str, details: dict[str, Any], channels: Sequence[str],
                       repeat_every: int) -> tuple[int | None, dict[str, int]]:
    """A dead-lettered notification as the `delivery_failed` alert of `channel`: a new
    `firing` (or a `repeat` once `repeat_every` has passed, unless acknowledged) with a
    fresh audit seq, queued to `channels`. Returns (seq or None, channel → outbox id)."""
    cur = get_alert(conn, fingerprint)
    firing = cur is not None and cur.state == "firing"
    if cur is not None and firing:
        ids = [*cur.details.get("outbox_ids", []), *details.get("outbox_ids", [])]  # type: ignore[misc]
        merged = {**details, "outbox_ids": ids,
                  "missing_since": cur.details.get("missing_since", details.get("missing_since"))}
        last = cur.last_notified or cur.since
        if cur.acked_by or (at - last).total_seconds() < repeat_every:
            upsert_alerts(conn, [replace(cur, summary=summary, details=merged)])
            return None, {}
        alert = replace(cur, summary=summary, details=merged, last_notified=at,
                        notified_channels=tuple(dict.fromkeys([*cur.notified_channels, *channels])))
    else:
        alert = Alert(fingerprint=fingerprint, rule="delivery_failed", subject=channel,
                      severity="critical", state="firing", since=at, last_change=at,
                      last_notified=at, summary=summary, details=dict(details),
                      notified_channels=tuple(channels))
    t = Transition(kind="repeat" if firing else "firing", fingerprint=fingerprint,
                   rule="delivery_failed", subject=channel, severity="critical", at=at,
                   summary=summary, since=alert.since, details=dict(alert.details))
    chain = AuditChain(conn)
    payload = transition_to_json(t, seq=chain.next_seq)
    record = chain.append("alert", payload, at)
    upsert_alerts(conn, [alert])
    _event(conn, record.seq, fingerprint, t.kind, at, payload)
    return record.seq, {ch: enqueue_tx(conn, ch, [payload], at) for ch in dict.fromkeys(channels)}


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
