"""Daily records in the store: immutable rows, their audit records, the reads."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.errors import StoreError
from auditor.store import Store

AT = datetime(2026, 11, 24, 15, 0, 30, tzinfo=UTC)


def _payload(date: str, cycle: int = 1) -> dict:
    return {"date": date, "cutoff": "2026-11-24T15:00:00Z", "cycle": cycle,
            "taken_at": "2026-11-24T15:00:30Z", "late": False, "basis": "liabilities",
            "hot_ratio": "0.03125",
            "assets": {"ETH": {"liabilities": "400", "cold": "387.5", "online_holdings": "12.5",
                               "online": "12.5", "guarantee": "13", "price": "450000",
                               "price_source": "static", "price_as_of": "2026-11-24T15:00:30Z"}},
            "chains": {"ethereum": {"block": 1234, "block_hash": "0x" + "ab" * 32}}}


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "a.db")
    yield s
    s.close()


def test_daily_record_is_audit_logged_with_the_head_before_it(store: Store) -> None:
    before = store.head()
    seq = store.write_daily_record("2026-11-24", _payload("2026-11-24"), AT)
    rec = store.daily_record("2026-11-24")
    assert rec is not None and rec["seq"] == seq and rec["head"] == before
    assert rec["assets"]["ETH"]["online_holdings"] == "12.5"
    row = store._conn.execute("SELECT kind, payload FROM audit_log WHERE seq = ?", (seq,)).fetchone()
    assert row[0] == "daily_record" and '"head":"' + before + '"' in row[1]
    assert store.verify().ok


def test_a_second_daily_record_for_a_date_is_refused_and_changes_nothing(store: Store) -> None:
    store.write_daily_record("2026-11-24", _payload("2026-11-24"), AT)
    head = store.head()
    with pytest.raises(StoreError, match="the daily record of 2026-11-24 exists and is immutable"):
        store.write_daily_record("2026-11-24", _payload("2026-11-24", cycle=2), AT)
    assert store.head() == head
    assert store.daily_record("2026-11-24")["cycle"] == 1  # type: ignore[index]


@pytest.mark.parametrize("sql", ["UPDATE daily_records SET late = 1",
                                 "DELETE FROM daily_records"])
def test_daily_records_cannot_be_updated_or_deleted_in_sql(store: Store, sql: str) -> None:
    store.write_daily_record("2026-11-24", _payload("2026-11-24"), AT)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        store._conn.execute(sql)
    assert store.daily_record("2026-11-24") is not None


def test_daily_records_reads_an_inclusive_period_in_date_order(store: Store) -> None:
    for d in ("2026-11-26", "2026-11-24", "2026-11-25", "2026-11-27"):
        store.write_daily_record(d, _payload(d), AT)
    assert [r["date"] for r in store.daily_records("2026-11-25", "2026-11-26")] == [
        "2026-11-25", "2026-11-26"]
    assert [r["date"] for r in store.daily_records()] == [
        "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert store.daily_record_dates("2026-11-26") == {"2026-11-26", "2026-11-27"}
    assert store.last_daily_record_date() == "2026-11-27"
    assert store.daily_record("2026-11-23") is None


def test_a_record_whose_date_is_not_a_date_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        store.write_daily_record("24/11/2026", _payload("24/11/2026"), AT)
    with pytest.raises(ValueError, match="not 2026-11-25"):
        store.write_daily_record("2026-11-25", _payload("2026-11-24"), AT)


def test_a_failed_record_write_inside_a_cycle_transaction_rolls_back_both(store: Store) -> None:
    store.write_daily_record("2026-11-24", _payload("2026-11-24"), AT)
    head = store.head()
    with pytest.raises(StoreError):
        with store.transaction():
            store.append_audit("note", {"x": 1}, AT)
            store.write_daily_record("2026-11-24", _payload("2026-11-24"), AT)
    assert store.head() == head
