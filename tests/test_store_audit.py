"""The audit log's hash chain: appends, verify, tampering, triggers, anchors, concurrency."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from auditor.errors import StoreError
from auditor.store import ZERO_HASH, Store
from auditor.store_audit import record_body
from auditor.store_codec import canonical_json

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "auditor.db"


@pytest.fixture
def store(db_path: Path):
    s = Store.open(db_path)
    yield s
    s.close()


def _fill(store: Store, n: int) -> list[str]:
    return [store.append_audit("note", {"i": i, "text": f"n{i}", "amount": str(10**30 + i)},
                               T0 + timedelta(seconds=i)).hash for i in range(n)]


def _raw(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    return conn


def test_open_creates_parent_dir_and_schema_idempotently(db_path: Path):
    with Store.open(db_path) as s:
        _fill(s, 3)
        head = s.head()
    with Store.open(db_path) as s:  # reopen: nothing recreated or lost
        assert s.head() == head
        assert s.verify().records == 3
        assert s.db.journal_mode == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


def test_empty_log_has_zero_head_and_verifies(store: Store):
    assert store.head() == ZERO_HASH == "0" * 64
    assert store.verify() == store.verify().__class__(True, 0, ZERO_HASH)


def test_first_record_hash_is_sha256_of_zero_bytes_and_canonical_json(store: Store):
    rec = store.append_audit("note", {"b": "ü", "a": 1}, T0)
    body = canonical_json({"seq": 1, "at": "2026-11-24T10:00:00Z", "kind": "note",
                           "payload": {"a": 1, "b": "ü"}})
    assert body == '{"at":"2026-11-24T10:00:00Z","kind":"note","payload":{"a":1,"b":"ü"},"seq":1}'.encode()
    assert rec.seq == 1
    assert rec.hash == hashlib.sha256(bytes(32) + body).hexdigest()
    assert store.head() == rec.hash


def test_record_body_composition_equals_canonical_json_of_the_record():
    payload = {"z": [1, {"y": None, "x": True}], "é": "ß"}
    text = canonical_json(payload).decode()
    assert record_body(7, "2026-01-01T00:00:00Z", "kind", text) == canonical_json(
        {"seq": 7, "at": "2026-01-01T00:00:00Z", "kind": "kind", "payload": payload})


@pytest.mark.parametrize("bad", [1.5, Decimal("1.5"), {"x": [1, 2.0]}, {1: "int key"}])
def test_append_refuses_floats_decimals_and_non_text_keys(store: Store, bad: object):
    with pytest.raises(TypeError):
        store.append_audit("note", {"v": bad}, T0)
    assert store.verify().records == 0


def test_append_refuses_naive_datetimes(store: Store):
    with pytest.raises(ValueError, match="timezone-aware"):
        store.append_audit("note", {}, datetime(2026, 1, 1))


def test_verify_recomputes_an_intact_chain(store: Store):
    hashes = _fill(store, 50)
    res = store.verify()
    assert (res.ok, res.records, res.head, res.first_bad) == (True, 50, hashes[-1], None)


def test_update_and_delete_of_the_audit_log_are_blocked_by_triggers(store: Store):
    _fill(store, 2)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("UPDATE audit_log SET payload = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("DELETE FROM audit_log WHERE seq = 2")
    assert store.verify().ok


def test_verify_detects_an_edited_payload(store: Store, db_path: Path):
    _fill(store, 10)
    _raw(db_path).execute("""UPDATE audit_log SET payload = replace(payload, '"i":4', '"i":5')
                             WHERE seq = 5""")
    res = store.verify()
    assert (res.ok, res.first_bad, res.records) == (False, 5, 10)
    assert "hash does not match" in res.reason


def test_verify_detects_a_non_canonical_edit_of_a_payload(store: Store, db_path: Path):
    _fill(store, 3)
    _raw(db_path).execute("UPDATE audit_log SET payload = replace(payload, ',', ', ') WHERE seq = 2")
    res = store.verify()
    assert (res.ok, res.first_bad) == (False, 2)


def test_verify_detects_a_deleted_row_as_a_seq_gap(store: Store, db_path: Path):
    _fill(store, 10)
    _raw(db_path).execute("DELETE FROM audit_log WHERE seq = 4")
    res = store.verify()
    assert (res.ok, res.first_bad, res.records) == (False, 4, 9)
    assert "missing" in res.reason


def test_verify_detects_an_edited_hash(store: Store, db_path: Path):
    _fill(store, 10)
    _raw(db_path).execute("UPDATE audit_log SET hash = ? WHERE seq = 7", ("ab" * 32,))
    res = store.verify()
    assert (res.ok, res.first_bad) == (False, 7)


def test_verify_detects_reordered_rows(store: Store, db_path: Path):
    _fill(store, 10)
    raw = _raw(db_path)
    rows = {r[0]: r[1:] for r in raw.execute("SELECT seq, at, kind, payload, prev_hash, hash "
                                             "FROM audit_log WHERE seq IN (3, 4)")}
    raw.execute("DELETE FROM audit_log WHERE seq IN (3, 4)")
    raw.execute("INSERT INTO audit_log VALUES (3, ?, ?, ?, ?, ?)", rows[4])
    raw.execute("INSERT INTO audit_log VALUES (4, ?, ?, ?, ?, ?)", rows[3])
    res = store.verify()
    assert (res.ok, res.first_bad) == (False, 3)


def test_verify_detects_a_rewritten_chain_only_by_anchor(store: Store, db_path: Path):
    hashes = _fill(store, 5)
    raw = _raw(db_path)
    raw.execute("DELETE FROM audit_log WHERE seq >= 3")  # truncate and re-append: chain valid
    with Store.open(db_path) as s:
        s.append_audit("note", {"forged": True}, T0)
        res = s.verify(anchor=(3, hashes[2]))
    assert res.first_bad is None
    assert (res.ok, res.anchor_ok) == (False, False)


def test_anchor_match_mismatch_and_missing_seq(store: Store):
    hashes = _fill(store, 5)
    ok = store.verify(anchor=(3, hashes[2].upper()))
    assert (ok.ok, ok.anchor_ok) == (True, True)
    bad = store.verify(anchor=(3, hashes[3]))
    assert (bad.ok, bad.anchor_ok, bad.first_bad) == (False, False, None)
    assert "mismatch" in bad.reason
    missing = store.verify(anchor=(99, hashes[0]))
    assert (missing.ok, missing.anchor_ok) == (False, False)
    assert "not in the log" in missing.reason
    with pytest.raises(ValueError, match="64-hex"):
        store.verify(anchor=(1, "xyz"))


def test_append_inside_an_open_transaction_rolls_back_with_it(store: Store):
    _fill(store, 1)
    head = store.head()
    with pytest.raises(RuntimeError), store.transaction():
        store.append_audit("note", {"a": 1}, T0)
        store.append_audit("note", {"a": 2}, T0)
        raise RuntimeError("boom")
    assert store.head() == head
    with store.transaction():
        r1 = store.append_audit("note", {"a": 1}, T0)
        r2 = store.append_audit("note", {"a": 2}, T0)
    assert (r1.seq, r2.seq) == (2, 3)
    assert store.verify().ok


_APPENDER = textwrap.dedent("""
    import sys
    from datetime import datetime, timezone
    from auditor.store import Store
    s = Store.open(sys.argv[1])
    for i in range(int(sys.argv[3])):
        s.append_audit("cli", {"who": sys.argv[2], "i": i}, datetime.now(timezone.utc))
    s.close()
""")


def test_concurrent_appends_from_two_processes_keep_the_chain_valid(store: Store, db_path: Path):
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(db_path), who, "150"])
             for who in ("a", "b")]
    for _ in range(150):
        store.append_audit("daemon", {"i": 1}, T0)
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    res = store.verify()
    assert (res.ok, res.records) == (True, 450)
    kinds = [json.loads(p)["who"] for (p,) in store._conn.execute(
        "SELECT payload FROM audit_log WHERE kind = 'cli'")]
    assert sorted(set(kinds)) == ["a", "b"]


def test_store_errors_name_the_store_not_sqlite_internals(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="could not open"):
        Store.open(blocker / "auditor.db")


def test_verify_flags_a_payload_edited_to_hold_a_float(store: Store, db_path: Path):
    _fill(store, 3)
    _raw(db_path).execute("""UPDATE audit_log SET payload = replace(payload, '"i":1', '"i":1.0')
                             WHERE seq = 2""")
    res = store.verify()
    assert (res.ok, res.first_bad) == (False, 2)
    assert "float" in res.reason
