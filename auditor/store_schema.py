"""The store's schema and connection settings (SQLite through sqlite-utils).

Amounts are TEXT decimal integers (wei overflows INTEGER); times are RFC 3339
UTC text, fixed-width where SQL compares them. History tables are only ever
appended to; `*_latest`, `alerts`, `chain_heads` hold current state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .errors import StoreError

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: a record cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: a record cannot be deleted'); END;

CREATE TABLE IF NOT EXISTS cycles (
  id INTEGER PRIMARY KEY, taken_at TEXT NOT NULL, started_at TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'failed')), reason TEXT,
  chains TEXT NOT NULL, poll TEXT NOT NULL, has_watch INTEGER NOT NULL,
  config_digest TEXT, audit_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS cycles_taken_at ON cycles (taken_at);
CREATE INDEX IF NOT EXISTS cycles_status ON cycles (status, id);

CREATE TABLE IF NOT EXISTS wallet_totals (
  cycle INTEGER NOT NULL, view TEXT NOT NULL, wallet TEXT NOT NULL, asset TEXT NOT NULL,
  amount TEXT NOT NULL, PRIMARY KEY (cycle, view, wallet, asset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wallet_nonces (
  cycle INTEGER NOT NULL, view TEXT NOT NULL, wallet TEXT NOT NULL, nonce TEXT NOT NULL,
  PRIMARY KEY (cycle, view, wallet)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watch_latest (
  wallet TEXT PRIMARY KEY, cycle INTEGER NOT NULL, totals TEXT NOT NULL, nonce TEXT);

CREATE TABLE IF NOT EXISTS address_balances (
  cycle INTEGER NOT NULL, chain TEXT NOT NULL, view TEXT NOT NULL, address TEXT NOT NULL,
  asset TEXT NOT NULL, amount TEXT NOT NULL,
  PRIMARY KEY (cycle, chain, view, address, asset)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS address_balances_by_address
  ON address_balances (chain, address, asset, view, cycle);
CREATE TABLE IF NOT EXISTS address_latest (
  chain TEXT NOT NULL, view TEXT NOT NULL, address TEXT NOT NULL, asset TEXT NOT NULL,
  amount TEXT NOT NULL, cycle INTEGER NOT NULL,
  PRIMARY KEY (chain, view, address, asset)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS exposures (cycle INTEGER PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
  cycle INTEGER NOT NULL, idx INTEGER NOT NULL, rule TEXT, subject TEXT, payload TEXT NOT NULL,
  PRIMARY KEY (cycle, idx));

CREATE TABLE IF NOT EXISTS alerts (
  fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, subject TEXT NOT NULL,
  severity TEXT NOT NULL, state TEXT NOT NULL, since TEXT NOT NULL, last_change TEXT NOT NULL,
  last_notified TEXT, value TEXT, threshold TEXT, summary TEXT NOT NULL, details TEXT NOT NULL,
  acked_by TEXT, acked_at TEXT, notified_channels TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state);
CREATE TABLE IF NOT EXISTS alert_events (
  seq INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, cycle INTEGER, kind TEXT NOT NULL,
  at TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_events_fp ON alert_events (fingerprint, seq);

CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, channel TEXT NOT NULL, cycle INTEGER,
  payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,
  first_attempt_at TEXT, last_error TEXT, delivered_at TEXT, dead_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (next_attempt_at)
  WHERE delivered_at IS NULL AND dead_at IS NULL;

CREATE TABLE IF NOT EXISTS silences (
  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, fingerprint TEXT, subject TEXT,
  severity TEXT NOT NULL, created_at TEXT NOT NULL, ends_at TEXT NOT NULL, by TEXT NOT NULL,
  reason TEXT NOT NULL, seq INTEGER NOT NULL, ended_at TEXT, ended_by TEXT, end_reason TEXT,
  end_seq INTEGER);
CREATE INDEX IF NOT EXISTS silences_ends_at ON silences (ends_at);

CREATE TABLE IF NOT EXISTS approvals_used (
  id TEXT PRIMARY KEY, cycle INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
  seq INTEGER PRIMARY KEY, digest TEXT NOT NULL, material TEXT NOT NULL,
  cycle INTEGER, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS daily_records (
  business_date TEXT PRIMARY KEY, cutoff_at TEXT, cycle INTEGER, taken_at TEXT, late INTEGER,
  seq INTEGER, payload TEXT);
CREATE TRIGGER IF NOT EXISTS daily_records_no_update BEFORE UPDATE ON daily_records
BEGIN SELECT RAISE(ABORT, 'daily_records are immutable: a record cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS daily_records_no_delete BEFORE DELETE ON daily_records
BEGIN SELECT RAISE(ABORT, 'daily_records are immutable: a record cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS transfers (
  chain TEXT NOT NULL, block INTEGER NOT NULL, block_hash TEXT NOT NULL, tx TEXT NOT NULL,
  idx INTEGER NOT NULL, kind TEXT NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL,
  sender TEXT NOT NULL, recipient TEXT NOT NULL, wallet_from TEXT, wallet_to TEXT,
  counterparties TEXT NOT NULL, timestamp INTEGER NOT NULL, class TEXT, match TEXT, lists TEXT,
  cycle INTEGER NOT NULL, PRIMARY KEY (chain, tx, idx, kind));
CREATE INDEX IF NOT EXISTS transfers_block ON transfers (chain, block);
CREATE INDEX IF NOT EXISTS transfers_time ON transfers (timestamp);
CREATE TABLE IF NOT EXISTS ingest_blocks (
  chain TEXT NOT NULL, block INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (chain, block));
CREATE TABLE IF NOT EXISTS ingest_cursor (chain TEXT PRIMARY KEY, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS withdrawals_used (
  id TEXT PRIMARY KEY, chain TEXT NOT NULL, cycle INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS safe_states (
  address TEXT PRIMARY KEY, wallet TEXT NOT NULL, state TEXT NOT NULL, cycle INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS discovery (
  chain TEXT NOT NULL, branch TEXT NOT NULL, last_used INTEGER NOT NULL, cycle INTEGER NOT NULL,
  PRIMARY KEY (chain, branch));
CREATE TABLE IF NOT EXISTS chain_heads (
  chain TEXT PRIMARY KEY, block INTEGER NOT NULL, hash TEXT NOT NULL,
  first_seen_at TEXT NOT NULL, cycle INTEGER NOT NULL);
"""


def _create_schema(db: sqlite_utils.Database, path: Path) -> None:
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")  # two processes opening a new store at once serialise here
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path} has schema version {version}, newer than this auditor "
                f"understands ({SCHEMA_VERSION}); upgrade the auditor"
            )
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def connect(path: Path, any_thread: bool = False) -> sqlite_utils.Database:
    """Open (creating if needed) the store at `path`: WAL, synchronous=FULL, busy timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=not any_thread)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    # Manual transactions only: every write is an explicit BEGIN IMMEDIATE … COMMIT.
    db.conn.isolation_level = None
    db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if db.journal_mode != "wal":
        db.enable_wal()
    db.conn.execute("PRAGMA synchronous = FULL")
    _create_schema(db, path)
    return db
