"""Outbox lifecycle, manual alert operations and the cycle lock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from auditor.errors import StoreError, StoreLockedError
from auditor.model import Alert, Transition
from auditor.store import CycleRecord, Store, cycle_lock, transition_from_json, transition_to_json

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
FP = "b" * 64


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "auditor.db")
    yield s
    s.close()


def _t(seq: int) -> dict:
    return {"seq": seq, "kind": "firing", "fingerprint": FP, "rule": "hot_ratio"}


def test_outbox_item_is_pending_until_delivered(store: Store):
    oid = store.enqueue("soc", [_t(1), _t(2)], T0, cycle=None)
    [item] = store.pending_outbox(T0)
    assert (item.id, item.channel, item.attempts, item.first_attempt_at) == (oid, "soc", 0, None)
    assert item.transitions == [_t(1), _t(2)] and item.created_at == T0
    store.mark_delivered(oid, T0 + timedelta(seconds=1))
    assert store.pending_outbox(T0 + timedelta(days=1)) == []
    assert store.outbox_counts() == {"pending": 0, "retrying": 0, "delivered": 1, "dead": 0}


def test_retry_hides_the_item_until_next_attempt_at(store: Store):
    oid = store.enqueue("soc", [_t(1)], T0)
    store.mark_retry(oid, T0, "HTTP 500", T0 + timedelta(seconds=10))
    assert store.pending_outbox(T0 + timedelta(seconds=9)) == []
    [item] = store.pending_outbox(T0 + timedelta(seconds=10))
    assert (item.attempts, item.first_attempt_at, item.last_error) == (1, T0, "HTTP 500")
    assert store.outbox_counts()["retrying"] == 1
    store.mark_retry(oid, T0 + timedelta(seconds=10), "HTTP 503", T0 + timedelta(seconds=30))
    store.mark_delivered(oid, T0 + timedelta(seconds=31))
    assert store.outbox_counts() == {"pending": 0, "retrying": 0, "delivered": 1, "dead": 0}
    row = store._conn.execute("SELECT attempts, first_attempt_at FROM outbox").fetchone()
    assert row[0] == 3 and row[1].startswith("2026-11-24T10:00:00")


def test_dead_items_are_never_pending_again_and_cannot_be_marked_twice(store: Store):
    oid = store.enqueue("pager", [_t(1)], T0)
    store.mark_dead(oid, T0 + timedelta(hours=6), "budget exhausted")
    assert store.pending_outbox(T0 + timedelta(days=1)) == []
    assert store.outbox_counts()["dead"] == 1
    with pytest.raises(StoreError, match="already delivered or dead"):
        store.mark_delivered(oid, T0)


def test_pending_outbox_filters_by_channel_orders_by_id_and_limits(store: Store):
    ids = [store.enqueue(ch, [_t(i)], T0) for i, ch in enumerate(["a", "b", "a", "a"])]
    assert [i.id for i in store.pending_outbox(T0, channel="a")] == [ids[0], ids[2], ids[3]]
    assert [i.id for i in store.pending_outbox(T0, limit=2)] == ids[:2]


def test_outbox_deliveries_are_not_written_to_the_audit_log(store: Store):
    oid = store.enqueue("soc", [_t(1)], T0)
    store.mark_retry(oid, T0, "x", T0)
    store.mark_delivered(oid, T0)
    assert store.verify().records == 0


def _firing(store: Store) -> None:
    alert = Alert(fingerprint=FP, rule="cold_outflow", subject="btc-cold/BTC", severity="critical",
                  state="firing", since=T0, last_change=T0, last_notified=T0,
                  notified_channels=("soc",))
    t = Transition(kind="firing", fingerprint=FP, rule="cold_outflow", subject="btc-cold/BTC",
                   severity="critical", at=T0, summary="cold spend", value=Decimal(50))
    store.write_cycle(CycleRecord(taken_at=T0, status="ok", alerts=[alert], transitions=[t]))


def _resolved(at: datetime) -> Transition:
    return Transition(kind="resolved", fingerprint=FP, rule="cold_outflow", subject="btc-cold/BTC",
                      severity="critical", at=at, summary="resolved by hand", since=T0)


def test_ack_records_who_and_appears_in_history(store: Store):
    _firing(store)
    seq = store.ack_alert(FP, "alice", "looking", T0 + timedelta(minutes=1))
    a = store.get_alert(FP)
    assert (a.acked_by, a.acked_at, a.state) == ("alice", T0 + timedelta(minutes=1), "firing")
    hist = store.alert_history(FP)
    assert [h["kind"] for h in hist] == ["firing", "ack"] and hist[1]["seq"] == seq
    assert json.loads(store._conn.execute(
        "SELECT payload FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0])["by"] == "alice"
    with pytest.raises(StoreError, match="no alert"):
        store.ack_alert("c" * 64, "alice", "", T0)


def test_manual_resolve_stores_state_audit_record_and_outbox_rows(store: Store):
    _firing(store)
    at = T0 + timedelta(minutes=5)
    new_state = replace(store.get_alert(FP), state="resolved", last_change=at)
    seq = store.resolve_alert(FP, "bob", "approved after the fact", at, _resolved(at), new_state,
                              ["soc", "pager"])
    assert store.get_alert(FP) == new_state and store.open_alerts() == {}
    assert seq > 1 and store.head() == store.verify().head and store.verify().ok
    items = store.pending_outbox(at)
    assert [i.channel for i in items] == ["soc", "pager"]
    assert items[0].transitions[0]["seq"] == seq and items[0].transitions[0]["by"] == "bob"
    assert store.alert_history(FP)[-1]["reason"] == "approved after the fact"
    with pytest.raises(StoreError, match="already resolved"):
        store.resolve_alert(FP, "bob", "again", at, _resolved(at))


def test_resolve_without_new_state_marks_the_stored_alert_resolved(store: Store):
    _firing(store)
    store.resolve_alert(FP, "bob", "ok", T0 + timedelta(minutes=1), _resolved(T0))
    assert store.get_alert(FP).state == "resolved"


def test_transition_json_round_trips():
    t = replace(_resolved(T0 + timedelta(microseconds=5)), value=Decimal("1E+3"),
                details={"k": ["v"]}, seq=9)
    d = transition_to_json(t)
    assert d["value"] == "1000" and d["at"] == "2026-11-24T10:00:00.000005Z"
    assert transition_from_json(d) == t


_HOLDER = textwrap.dedent("""
    import sys, time
    from auditor.store import cycle_lock
    with cycle_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_cycle_lock_is_exclusive_across_processes_and_freed_when_the_holder_dies(tmp_path: Path):
    db = tmp_path / "var" / "auditor.db"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="holds the cycle lock on") as err, \
                cycle_lock(db):
            pass
        assert err.value.exit_code == 4
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # the kernel released it with the dead process; and it is exclusive within a process too
    with cycle_lock(db), pytest.raises(StoreLockedError), cycle_lock(db):
        pass
