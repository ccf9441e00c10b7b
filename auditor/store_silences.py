"""Silences, announcements and test messages: each one audit record, written with its
outbox rows in the caller's transaction (DESIGN.md "Alerts": silences and acks are
written to the audit log and announced on the critical route)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import StoreError
from .silences import Silence
from .store_audit import AuditChain
from .store_codec import db_time, format_time, parse_time
from .store_outbox import enqueue_tx

__all__ = ["announce_tx", "list_silences", "get_silence", "silence_events", "silence_tx",
           "test_tx", "unsilence_tx"]

_COLUMNS = ("id, rule, fingerprint, subject, severity, created_at, ends_at, by, reason, seq, "
            "ended_at, ended_by, end_reason, end_seq")


def _silence(r: tuple[Any, ...]) -> Silence:
    return Silence(id=r[0], rule=r[1], fingerprint=r[2], subject=r[3], severity=r[4],
                   created_at=parse_time(r[5]), ends_at=parse_time(r[6]), by=r[7], reason=r[8],
                   seq=r[9], ended_at=parse_time(r[10]) if r[10] else None, ended_by=r[11],
                   end_reason=r[12], end_seq=r[13])


def announce_tx(conn: sqlite3.Connection, kind: str, payload: dict[str, Any], at: datetime,
                notice: dict[str, Any] | None, channels: Sequence[str]) -> tuple[int, dict[str, int]]:
    """Append one audit record; queue `notice` (its seq set to the record's) to each
    channel. Returns the seq and channel → outbox id."""
    record = AuditChain(conn).append(kind, payload, at)
    ids: dict[str, int] = {}
    if notice is not None:
        for channel in dict.fromkeys(channels):
            ids[channel] = enqueue_tx(conn, channel, [{**notice, "seq": record.seq}], at)
    return record.seq, ids


def silence_tx(conn: sqlite3.Connection, s: Silence, notice: dict[str, Any],
               channels: Sequence[str]) -> Silence:
    """Store a new silence (`s.id` and `s.seq` are ignored) and its `silence` record."""
    if not s.by or not s.reason.strip():
        raise ValueError("a silence needs who (by) and why (reason)")
    next_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM silences").fetchone()[0]
    payload = {"kind": "silence", "id": next_id, "rule": s.rule, "fingerprint": s.fingerprint,
               "subject": s.subject, "severity": s.severity,
               "created_at": format_time(s.created_at), "ends_at": format_time(s.ends_at),
               "by": s.by, "reason": s.reason}
    seq, _ = announce_tx(conn, "silence", payload, s.created_at,
                         {**notice, "silence_id": next_id}, channels)
    conn.execute(f"INSERT INTO silences ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                 (next_id, s.rule, s.fingerprint, s.subject, s.severity, db_time(s.created_at),
                  db_time(s.ends_at), s.by, s.reason, seq, None, None, None, None))
    return get_silence(conn, next_id)  # type: ignore[return-value]


def unsilence_tx(conn: sqlite3.Connection, silence_id: int, by: str, reason: str, at: datetime,
                 notice: dict[str, Any], channels: Sequence[str]) -> Silence:
    """End an active silence early, with an `unsilence` record."""
    s = get_silence(conn, silence_id)
    if s is None:
        raise StoreError(f"no silence with id {silence_id}; see `auditor alerts silences --all`")
    if not s.active(at):
        raise StoreError(f"silence {silence_id} is not active (it ended or expired); "
                         "nothing to end")
    if not by or not reason.strip():
        raise ValueError("ending a silence needs who (by) and why (reason)")
    payload = {"kind": "unsilence", "id": silence_id, "rule": s.rule,
               "fingerprint": s.fingerprint, "by": by, "reason": reason, "at": format_time(at)}
    seq, _ = announce_tx(conn, "unsilence", payload, at, {**notice, "silence_id": silence_id},
                         channels)
    conn.execute("UPDATE silences SET ended_at = ?, ended_by = ?, end_reason = ?, end_seq = ? "
                 "WHERE id = ?", (db_time(at), by, reason, seq, silence_id))
    return get_silence(conn, silence_id)  # type: ignore[return-value]


def get_silence(conn: sqlite3.Connection, silence_id: int) -> Silence | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,)).fetchone()
    return _silence(row) if row else None


def list_silences(conn: sqlite3.Connection, now: datetime | None = None) -> list[Silence]:
    """Every silence (or, with `now`, those that may be active then), newest first."""
    if now is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM silences ORDER BY id DESC").fetchall()
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE ended_at IS NULL AND "
                            "ends_at > ? AND created_at <= ? ORDER BY id DESC",
                            (db_time(now), db_time(now))).fetchall()
    return [_silence(r) for r in rows]


def silence_events(conn: sqlite3.Connection, fingerprint: str, rule: str) -> list[dict[str, Any]]:
    """History rows of the silences that covered an alert (its own, or its rule's)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM silences WHERE fingerprint = ? OR "
                        "(fingerprint IS NULL AND rule = ?)", (fingerprint, rule)).fetchall()
    out: list[dict[str, Any]] = []
    for s in map(_silence, rows):
        out.append({"seq": s.seq, "kind": "silence", "silence_id": s.id,
                    "at": format_time(s.created_at), "until": format_time(s.ends_at),
                    "by": s.by, "reason": s.reason})
        if s.ended_at is not None:
            out.append({"seq": s.end_seq, "kind": "unsilence", "silence_id": s.id,
                        "at": format_time(s.ended_at), "by": s.ended_by,
                        "reason": s.end_reason})
    return out


def test_tx(conn: sqlite3.Connection, at: datetime, by: str,
            notices: dict[str, dict[str, Any]]) -> tuple[int, dict[str, int]]:
    """`auditor test-alert`: one `test` record, one outbox row per channel."""
    payload: dict[str, object] = {"kind": "test", "by": by, "at": format_time(at), "channels": list(notices)}
    record = AuditChain(conn).append("test", payload, at)
    ids = {ch: enqueue_tx(conn, ch, [{**n, "seq": record.seq}], at) for ch, n in notices.items()}
    return record.seq, ids
