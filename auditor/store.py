"""The store: SQLite (through sqlite-utils) with a hash-chained, append-only audit log.

All SQL of the project lives in `store*.py`. One `Store` per thread. Every
write is one `BEGIN IMMEDIATE` transaction, so concurrent writers (the
daemon's cycle, CLI acks) serialise in the database; a failure rolls the
whole write back. sqlite3 errors leave here as `StoreError` (no secrets:
messages name the store file and the operation, never config values).

Parts: `store_schema` (tables), `store_audit` (hash chain, verify),
`store_cycle` (one cycle's write), `store_outbox`, `store_alerts` (ack,
resolve, delivery_failed), `store_silences` (silences, test messages),
`store_reads`, `store_lock` (the cycle lock), `store_codec` (JSON,
times).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar

from . import store_reads as reads
from . import store_transfers as st
from .errors import StoreError
from .model import Alert, Transition
from .silences import Silence
from .store_alerts import ack_tx, delivery_failed_tx, resolve_tx
from .store_audit import ZERO_HASH, AuditChain, AuditRecord, VerifyResult, verify_chain
from .store_backtest import StoredCycle, connect_read_only, period_cycles, period_transitions
from .store_codec import transition_from_json, transition_to_json
from .store_cycle import BalanceCache, CycleRecord, CycleWriteResult, write_cycle_tx
from .store_lock import cycle_lock
from .store_outbox import (
    OutboxItem,
    enqueue_tx,
    mark_dead_tx,
    mark_delivered_many_tx,
    mark_delivered_tx,
    mark_retry_tx,
    outbox_channels,
    outbox_counts,
    outbox_next_due,
    outbox_page,
    pending_outbox,
)
from .store_records import (
    daily_record,
    daily_record_dates,
    daily_records,
    first_cycle_at,
    last_daily_record_date,
    write_daily_record_tx,
)
from .store_reports import (
    active_alert_fingerprints,
    cycle_rows,
    head_record,
    next_cycle_at,
    report_written,
)
from .store_schema import connect
from .store_silences import (
    get_silence,
    list_silences,
    silence_events,
    silence_tx,
    test_tx,
    unsilence_tx,
)

__all__ = [
    "ZERO_HASH",
    "AuditRecord",
    "CycleRecord",
    "CycleWriteResult",
    "OutboxItem",
    "Store",
    "VerifyResult",
    "cycle_lock",
    "transition_from_json",
    "transition_to_json",
]

P = ParamSpec("P")
R = TypeVar("R")


def _guarded(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn sqlite3 errors into StoreError naming the store and the operation."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as e:
                store = args[0]
                hint = ("another process held the write lock for more than 10 s; retry"
                        if "locked" in str(e) or "busy" in str(e)
                        else "check the file's permissions and free disk space")
                raise StoreError(f"store {store}: could not {what}: {e}; {hint}") from e
            except sqlite3.Error as e:
                raise StoreError(f"store {args[0]}: could not {what}: {e}") from e

        return inner

    return wrap


class Store:
    """One SQLite store. Not shared between threads: open one per thread (or see
    `open(any_thread=True)` for one user at a time on changing threads)."""

    def __init__(self, path: Path, db: Any):
        self.path = path
        self.db = db  # sqlite_utils.Database
        self._conn: sqlite3.Connection = db.conn
        self._balances = BalanceCache()

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, any_thread: bool = False) -> Store:
        """Open (creating the parent dir and schema if needed; idempotent) the store at `path`.

        `any_thread`: the object may be used from a thread other than the opener's, as
        long as calls never overlap (a scheduler job with max_instances=1 keeping one
        Store across cycles, so last-known balances stay in memory between cycles).
        """
        p = Path(path)
        try:
            return cls(p, connect(p, any_thread))
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"store {p}: could not open: {e}; check the path "
                             "(store.path) and that its directory is writable") from e

    @classmethod
    def open_read_only(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing store read-only (`auditor backtest`): every write fails."""
        p = Path(path)
        try:
            return cls(p, connect_read_only(p))
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"store {p}: could not open read-only: {e}; check the path "
                             "(store.path) and its permissions") from e

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE … COMMIT; ROLLBACK on any exception. Nested calls join it."""
        if self._conn.in_transaction:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    # -- audit log ----------------------------------------------------------

    @_guarded("append to the audit log")
    def append_audit(self, kind: str, payload: dict[str, Any], at: datetime) -> AuditRecord:
        """Append one record (inside an open transaction, or in its own)."""
        with self.transaction() as conn:
            return AuditChain(conn).append(kind, payload, at)

    @_guarded("read the audit-log head")
    def head(self) -> str:
        return reads.head(self._conn)

    @_guarded("verify the audit log")
    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        return verify_chain(self._conn, anchor)

    # -- cycles -------------------------------------------------------------

    @_guarded("write the cycle")
    def write_cycle(self, rec: CycleRecord) -> CycleWriteResult:
        """Write a whole cycle in one transaction; on any error the store is unchanged."""
        with self.transaction():
            result, changed = write_cycle_tx(self._conn, rec, self._balances)
        self._balances.apply(changed, result.cycle_id)  # only once committed
        return result

    @_guarded("read the last cycle")
    def last_cycle(self) -> dict[str, Any] | None:
        return reads.last_cycle(self._conn)

    @_guarded("read the last cycle")
    def last_cycle_at(self) -> datetime | None:
        return reads.cycle_time(self._conn, "taken_at")

    @_guarded("read the last ok cycle")
    def last_ok_cycle_at(self) -> datetime | None:
        return reads.cycle_time(self._conn, "taken_at", ok_only=True)

    @_guarded("read the last cycle")
    def last_started_at(self) -> datetime | None:
        return reads.cycle_time(self._conn, "started_at")

    @_guarded("read the watch history")
    def watch_history(self, since: datetime) -> list[tuple[datetime, dict[tuple[str, str], int]]]:
        return reads.watch_history(self._conn, since)

    @_guarded("read the latest watch totals")
    def last_watch(self) -> tuple[dict[tuple[str, str], int], dict[str, int]] | None:
        return reads.last_watch(self._conn)

    @_guarded("read used approvals")
    def used_approvals(self) -> set[str]:
        return reads.used_approvals(self._conn)

    @_guarded("read the last config")
    def last_config(self) -> tuple[str, dict[str, Any]] | None:
        return reads.last_config(self._conn)

    # -- transfers --------------------------------------------------------------

    @_guarded("read the transfer ingestion cursor")
    def ingest_cursor(self, chain: str) -> int | None:
        return st.ingest_cursor(self._conn, chain)

    @_guarded("read ingested block hashes")
    def ingest_hashes(self, chain: str, since: int) -> dict[int, str]:
        return st.ingest_hashes(self._conn, chain, since)

    @_guarded("read stored transfers")
    def stored_transfer_keys(self, chain: str, txs: Sequence[str]) -> set[tuple[str, int, str, int]]:
        return st.stored_keys(self._conn, chain, txs)

    @_guarded("read stored transfers")
    def transfers_from(self, chain: str, block: int) -> list[dict[str, Any]]:
        return st.transfers_from(self._conn, chain, block)

    @_guarded("list transfers")
    def list_transfers(self, *, wallet: str | None = None, since_ts: int | None = None,
                       limit: int = 1000, chain: str | None = None,
                       cls: str | None = None) -> list[dict[str, Any]]:
        return st.list_transfers(self._conn, wallet=wallet, since_ts=since_ts, limit=limit, chain=chain,
                                 cls=cls)

    @_guarded("read the Safes' last states")
    def safe_states(self) -> dict[str, str]:
        """Lowercase Safe address → its last stored state (JSON text)."""
        return {a: s for a, s in self._conn.execute("SELECT address, state FROM safe_states")}

    @_guarded("read recent outflows")
    def outflows_since(self, wallets: Sequence[str], since_ts: int) -> list[dict[str, Any]]:
        return st.outflows_since(self._conn, wallets, since_ts)

    @_guarded("read used withdrawal requests")
    def used_withdrawals(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT id FROM withdrawals_used")}

    @_guarded("read the address discovery state")
    def discovery(self, chain: str) -> dict[str, int]:
        return reads.discovery(self._conn, chain)

    @_guarded("read the chain heads")
    def last_heads(self) -> dict[str, tuple[int, str, datetime]]:
        return reads.last_heads(self._conn)

    # -- daily records --------------------------------------------------------

    @_guarded("write the daily record")
    def write_daily_record(self, business_date: str, record: dict[str, Any], at: datetime) -> int:
        """Write the immutable record of `business_date` (YYYY-MM-DD) with its `daily_record`
        audit record (same payload; `head` set to the log head before it), in one
        transaction (or the caller's). Returns the audit seq. A second write for the same
        date raises StoreError."""
        with self.transaction() as conn:
            return write_daily_record_tx(conn, business_date, record, at)

    @_guarded("read the daily record")
    def daily_record(self, date: str) -> dict[str, Any] | None:
        """The record's payload plus `seq`, or None."""
        return daily_record(self._conn, date)

    @_guarded("read the daily records")
    def daily_records(self, from_date: str | None = None,
                      to_date: str | None = None) -> list[dict[str, Any]]:
        """Records of the inclusive period (YYYY-MM-DD), oldest first, each with `seq`."""
        return daily_records(self._conn, from_date, to_date)

    @_guarded("read the daily records")
    def daily_record_dates(self, from_date: str) -> frozenset[str]:
        return daily_record_dates(self._conn, from_date)

    @_guarded("read the daily records")
    def last_daily_record_date(self) -> str | None:
        return last_daily_record_date(self._conn)

    @_guarded("read the first cycle")
    def first_cycle_at(self) -> datetime | None:
        return first_cycle_at(self._conn)

    # -- reports --------------------------------------------------------------

    @_guarded("read the cycles of the period")
    def report_cycles(self, start: datetime,
                      end: datetime) -> Iterator[tuple[int, str, str, str, str | None]]:
        """(id, taken_at, status, chains JSON, exposure JSON or None) of the cycles taken in
        [start, end), oldest first, streamed from one cursor (bounded memory)."""
        return cycle_rows(self._conn, start, end)

    @_guarded("read the next cycle")
    def next_cycle_at(self, at: datetime) -> datetime | None:
        return next_cycle_at(self._conn, at)

    @_guarded("read the alerts of the period")
    def active_alerts(self, start: datetime, end: datetime) -> list[str]:
        """Fingerprints of the alerts firing at any point in [start, end)."""
        return active_alert_fingerprints(self._conn, start, end)

    @_guarded("read the audit-log head")
    def head_record(self) -> tuple[int, str]:
        """(seq, hash) of the last audit record: an anchor for `verify --anchor SEQ:HEX`."""
        return head_record(self._conn)

    @_guarded("read the report records")
    def report_written(self, first: str, last: str, scheduled: bool = False) -> bool:
        """Whether a `report` record for the period exists (`scheduled`: by the daemon)."""
        return report_written(self._conn, first, last, scheduled)

    # -- backtest reads -------------------------------------------------------

    def backtest_cycles(self, start: datetime, end: datetime) -> Iterator[StoredCycle]:
        """Cycles taken in [start, end) with their exposure JSON and watch totals, in
        order, streamed (sqlite3 errors surface as StoreError while iterating)."""
        try:
            yield from period_cycles(self._conn, start, end)
        except sqlite3.Error as e:
            raise StoreError(f"store {self}: could not read the cycles: {e}") from e

    @_guarded("read the transitions of the period")
    def period_transitions(self, start: datetime, end: datetime,
                           rules: Sequence[str] | frozenset[str]) -> list[dict[str, Any]]:
        """Stored firing/escalated/resolved transitions of `rules` in [start, end)."""
        return period_transitions(self._conn, start, end, rules)

    # -- alerts -------------------------------------------------------------

    @_guarded("read alerts")
    def open_alerts(self) -> dict[str, Alert]:
        return {a.fingerprint: a for a in reads.list_alerts(self._conn)}

    @_guarded("read an alert")
    def get_alert(self, fingerprint: str) -> Alert | None:
        return reads.get_alert(self._conn, fingerprint)

    @_guarded("list alerts")
    def list_alerts(self, include_resolved: bool = False) -> list[Alert]:
        return reads.list_alerts(self._conn, include_resolved)

    @_guarded("read an alert's history")
    def alert_history(self, fingerprint: str) -> list[dict[str, Any]]:
        """Transitions, acks, resolves and the silences that covered it, in seq order."""
        rows = reads.alert_history(self._conn, fingerprint)
        alert = reads.get_alert(self._conn, fingerprint)
        if alert is not None:
            rows += silence_events(self._conn, fingerprint, alert.rule)
        return sorted(rows, key=lambda r: int(r.get("seq") or 0))

    @_guarded("acknowledge the alert")
    def ack_alert(self, fingerprint: str, by: str, note: str, at: datetime,
                  notice: dict[str, Any] | None = None, channels: Sequence[str] = ()) -> int:
        """Acknowledge (suppresses repeats only); an `ack` audit record. Returns its seq.
        `notice` is queued to `channels` with that seq (the announcement)."""
        with self.transaction() as conn:
            return ack_tx(conn, fingerprint, by, note, at, notice, channels)

    @_guarded("record delivery_failed")
    def record_delivery_failed(self, fingerprint: str, channel: str, at: datetime, summary: str,
                               details: dict[str, Any], channels: Sequence[str],
                               repeat_every: int = 3600) -> tuple[int | None, dict[str, int]]:
        """A dead-lettered channel's `delivery_failed` alert in one transaction: alert
        state, an `alert` record with a fresh seq, outbox rows for `channels`. Returns
        (seq, channel → outbox id); (None, {}) when it is already firing and neither
        `repeat_every` has passed nor is it unacknowledged (only its details change)."""
        with self.transaction() as conn:
            return delivery_failed_tx(conn, fingerprint, channel, at, summary, details,
                                      channels, repeat_every)

    # -- silences -------------------------------------------------------------

    @_guarded("silence")
    def add_silence(self, silence: Silence, notice: dict[str, Any],
                    channels: Sequence[str]) -> Silence:
        """Store a silence (its id and seq are assigned here) with its `silence` record."""
        with self.transaction() as conn:
            return silence_tx(conn, silence, notice, channels)

    @_guarded("end the silence")
    def end_silence(self, silence_id: int, by: str, reason: str, at: datetime,
                    notice: dict[str, Any], channels: Sequence[str]) -> Silence:
        with self.transaction() as conn:
            return unsilence_tx(conn, silence_id, by, reason, at, notice, channels)

    @_guarded("read silences")
    def silences(self, active_at: datetime | None = None) -> list[Silence]:
        """Every silence, newest first; with `active_at`, only those active then."""
        found = list_silences(self._conn, active_at)
        return [s for s in found if active_at is None or s.active(active_at)]

    @_guarded("read a silence")
    def get_silence(self, silence_id: int) -> Silence | None:
        return get_silence(self._conn, silence_id)

    @_guarded("record the test message")
    def record_test(self, at: datetime, by: str,
                    notices: dict[str, dict[str, Any]]) -> tuple[int, dict[str, int]]:
        """`auditor test-alert`: a `test` record and one outbox row per channel."""
        with self.transaction() as conn:
            return test_tx(conn, at, by, notices)

    @_guarded("resolve the alert")
    def resolve_alert(self, fingerprint: str, by: str, reason: str, at: datetime,
                      transition: Transition, alert: Alert | None = None,
                      channels: list[str] | tuple[str, ...] = ()) -> int:
        """Resolve by hand, in one transaction: the resolved state (`alert` when given,
        else the stored one with state resolved), the transition's `alert` record (its
        seq is returned) and one outbox row per channel."""
        with self.transaction() as conn:
            return resolve_tx(conn, fingerprint, by, reason, at, transition, alert, list(channels))

    # -- outbox -------------------------------------------------------------

    @_guarded("enqueue a notification")
    def enqueue(self, channel: str, transitions: list[dict[str, Any]], at: datetime,
                cycle: int | None = None) -> int:
        with self.transaction() as conn:
            return enqueue_tx(conn, channel, transitions, at, cycle)

    @_guarded("read the outbox")
    def pending_outbox(self, now: datetime, limit: int = 100,
                       channel: str | None = None) -> list[OutboxItem]:
        return pending_outbox(self._conn, now, limit, channel)

    @_guarded("mark a notification delivered")
    def mark_delivered(self, item_id: int, at: datetime) -> None:
        with self.transaction() as conn:
            mark_delivered_tx(conn, item_id, at)

    @_guarded("mark notifications delivered")
    def mark_delivered_many(self, marks: list[tuple[int, datetime]]) -> None:
        """[(id, delivered at), …] in one transaction: all or none."""
        with self.transaction() as conn:
            mark_delivered_many_tx(conn, marks)

    @_guarded("read the outbox")
    def outbox_page(self, channel: str, after_id: int, limit: int) -> list[OutboxItem]:
        return outbox_page(self._conn, channel, after_id, limit)

    @_guarded("read the outbox")
    def outbox_channels(self) -> dict[str, int]:
        return outbox_channels(self._conn)

    @_guarded("read the outbox")
    def outbox_next_due(self) -> datetime | None:
        return outbox_next_due(self._conn)

    @_guarded("schedule a notification retry")
    def mark_retry(self, item_id: int, at: datetime, error: str,
                   next_attempt_at: datetime) -> None:
        with self.transaction() as conn:
            mark_retry_tx(conn, item_id, at, error, next_attempt_at)

    @_guarded("dead-letter a notification")
    def mark_dead(self, item_id: int, at: datetime, error: str) -> None:
        with self.transaction() as conn:
            mark_dead_tx(conn, item_id, at, error)

    @_guarded("count the outbox")
    def outbox_counts(self) -> dict[str, int]:
        return outbox_counts(self._conn)
