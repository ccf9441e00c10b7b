"""Reads of the store's state and history (no writes here)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from .model import Alert
from .store_audit import ZERO_HASH
from .store_codec import ALERT_COLUMNS, alert_from_row, db_time, parse_time

__all__ = [
    "alert_history",
    "cycle_time",
    "discovery",
    "get_alert",
    "head",
    "last_config",
    "last_cycle",
    "last_heads",
    "last_watch",
    "list_alerts",
    "used_approvals",
    "watch_history",
]

WatchTotals = dict[tuple[str, str], int]


def head(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return str(row[0]) if row else ZERO_HASH


def last_cycle(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT poll FROM cycles ORDER BY id DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row else None


def cycle_time(conn: sqlite3.Connection, column: str, ok_only: bool = False) -> datetime | None:
    """Latest `taken_at` or `started_at` of any cycle (or of `ok` cycles only)."""
    if column not in ("taken_at", "started_at"):
        raise ValueError(f"unknown cycle time column {column!r}")
    where = "WHERE status = 'ok'" if ok_only else ""
    row = conn.execute(f"SELECT {column} FROM cycles {where} ORDER BY id DESC LIMIT 1").fetchone()
    return parse_time(row[0]) if row else None


def get_alert(conn: sqlite3.Connection, fingerprint: str) -> Alert | None:
    row = conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?",
                       (fingerprint,)).fetchone()
    return alert_from_row(row) if row else None


def list_alerts(conn: sqlite3.Connection, include_resolved: bool = False) -> list[Alert]:
    """Firing alerts (and resolved ones if asked), most severe first, then oldest first."""
    where = "" if include_resolved else "WHERE state = 'firing'"
    rows = conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts {where} ORDER BY state = 'resolved', "
        "CASE severity WHEN 'critical' THEN 0 ELSE 1 END, since, fingerprint").fetchall()
    return [alert_from_row(r) for r in rows]


def alert_history(conn: sqlite3.Connection, fingerprint: str) -> list[dict[str, Any]]:
    """Transitions, acks and manual resolves of one alert, in audit-log order (with "seq")."""
    rows = conn.execute("SELECT seq, payload FROM alert_events WHERE fingerprint = ? ORDER BY seq",
                        (fingerprint,)).fetchall()
    return [{**json.loads(p), "seq": s} for s, p in rows]


def watch_history(conn: sqlite3.Connection,
                  since: datetime) -> list[tuple[datetime, WatchTotals]]:
    """Watch-view totals per cycle since `since`, oldest first, plus the last cycle before it."""
    t = db_time(since)
    before = conn.execute(
        "SELECT max(id) FROM cycles WHERE has_watch = 1 AND taken_at < ?", (t,)).fetchone()[0]
    first = before if before is not None else conn.execute(
        "SELECT min(id) FROM cycles WHERE has_watch = 1 AND taken_at >= ?", (t,)).fetchone()[0]
    if first is None:
        return []
    times = dict(conn.execute(
        "SELECT id, taken_at FROM cycles WHERE id >= ? AND has_watch = 1 "
        "AND (taken_at >= ? OR id = ?)", (first, t, first)).fetchall())
    out: dict[int, WatchTotals] = {cid: {} for cid in sorted(times)}
    for cid, wallet, asset, amount in conn.execute(
            "SELECT cycle, wallet, asset, amount FROM wallet_totals "
            "WHERE cycle >= ? AND view = 'watch' ORDER BY cycle", (first,)):
        if cid in out:
            out[cid][(wallet, asset)] = int(amount)
    return [(parse_time(times[cid]), totals) for cid, totals in out.items()]


def last_watch(conn: sqlite3.Connection) -> tuple[WatchTotals, dict[str, int]] | None:
    """Each wallet's most recent watch totals and nonce (a wallet of a chain unreadable in
    the latest cycle keeps the values of the last cycle that read it)."""
    rows = conn.execute("SELECT wallet, totals, nonce FROM watch_latest").fetchall()
    if not rows:
        return None
    totals: WatchTotals = {}
    nonces: dict[str, int] = {}
    for wallet, amounts, nonce in rows:
        for asset, amount in json.loads(amounts).items():
            totals[(wallet, asset)] = int(amount)
        if nonce is not None:
            nonces[wallet] = int(nonce)
    return totals, nonces


def used_approvals(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id FROM approvals_used")}


def last_config(conn: sqlite3.Connection) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute("SELECT digest, material FROM configs ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], json.loads(row[1])) if row else None


def discovery(conn: sqlite3.Connection, chain: str) -> dict[str, int]:
    """Per "wallet|branch descriptor" of `chain`: the highest used index seen so far."""
    return {b: int(i) for b, i in conn.execute(
        "SELECT branch, last_used FROM discovery WHERE chain = ?", (chain,))}


def last_heads(conn: sqlite3.Connection) -> dict[str, tuple[int, str, datetime]]:
    """Per chain: the latest watch head (block, hash) and when a cycle first saw it."""
    return {c: (int(b), h, parse_time(t)) for c, b, h, t in conn.execute(
        "SELECT chain, block, hash, first_seen_at FROM chain_heads")}
