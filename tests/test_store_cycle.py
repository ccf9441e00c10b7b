"""Cycle writes: one transaction, balances only on change, transition seqs, and the reads."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from auditor.errors import StoreError
from auditor.model import Alert, Transition
from auditor.store import CycleRecord, Store

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
FP = "a" * 64
WEI = 2**64 * 1000 + 12345  # does not fit SQLite INTEGER


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "auditor.db")
    yield s
    s.close()


def _chain(block: int, ok: bool = True) -> dict:
    return {"ok": ok, "error": None if ok else "timeout",
            "settled": {"block": block - 11, "block_hash": f"0x{block - 11:x}", "timestamp": 1},
            "watch": {"block": block, "block_hash": f"0x{block:x}", "timestamp": 2}, "problems": []}


def _transition(kind: str = "firing", at: datetime = T0, **kw: object) -> Transition:
    return Transition(kind=kind, fingerprint=FP, rule="hot_drain", subject="eth-hot-1/ETH",  # type: ignore[arg-type]
                      severity="critical", at=at, summary="hot wallet drained", since=T0,
                      value=Decimal("0.42"), threshold=Decimal("0.2"),
                      details={"drop": "42", "window": "10m"}, **kw)  # type: ignore[arg-type]


def _alert(state: str = "firing") -> Alert:
    return Alert(fingerprint=FP, rule="hot_drain", subject="eth-hot-1/ETH", severity="critical",
                 state=state, since=T0, last_change=T0, last_notified=T0,  # type: ignore[arg-type]
                 value=Decimal("0.42"), threshold=Decimal("0.2"), summary="drained",
                 details={"n": 1}, notified_channels=("soc",))


def _balances(n: int, bump: int = 0, every: int = 0) -> list[tuple[str, str, str, str, int]]:
    """n addresses × 3 assets; with `every`, each every-th row is changed by `bump`."""
    rows = []
    for i in range(n):
        for j, asset in enumerate(("ETH", "USDC", "DAI")):
            k = i * 3 + j
            amount = WEI + k + (bump if every and k % every == 0 else 0)
            rows.append(("ethereum", "watch", f"0x{i:040x}", asset, amount))
    return rows


def _record(at: datetime = T0, **kw: object) -> CycleRecord:
    base = CycleRecord(
        taken_at=at, status="ok", chains={"ethereum": _chain(100)},
        totals=[("settled", "eth-hot-1", "ETH", WEI), ("watch", "eth-hot-1", "ETH", WEI + 1)],
        nonces=[("watch", "eth-hot-1", 7)], address_balances=_balances(10),
        exposure={"hot_ratio": "0.03125"}, findings=[{"rule": "hot_drain", "value": "0.42"}],
        poll={"status": "ok", "exposure": {"hot_ratio": "0.03125"}},
        wallet_chains={"eth-hot-1": "ethereum"})
    return replace(base, **kw)  # type: ignore[arg-type]


def _counts(store: Store) -> dict[str, int]:
    tables = [r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: store._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _kinds(store: Store) -> list[str]:
    return [k for (k,) in store._conn.execute("SELECT kind FROM audit_log ORDER BY seq")]


def test_cycle_writes_its_records_in_the_documented_order(store: Store):
    res = store.write_cycle(_record(transitions=[_transition(), _transition("escalated")],
                                    alerts=[_alert()], config={"wallets": []}, config_digest="d1",
                                    consumed_approvals=["2026-12-01-a"]))
    assert _kinds(store) == ["snapshot", "exposure", "alert", "alert", "config", "cycle"]
    assert res.cycle_id == 1 and res.seqs == [3, 4]
    assert res.head == store.head() and store.verify().ok
    snap = json.loads(store._conn.execute("SELECT payload FROM audit_log WHERE seq = 1").fetchone()[0])
    assert snap["chain"] == "ethereum" and snap["watch"]["block"] == 100
    assert snap["totals"]["watch"]["eth-hot-1"]["ETH"] == str(WEI + 1)
    assert len(snap["balances_changed"]) == 30
    assert store.used_approvals() == {"2026-12-01-a"}
    assert store.last_config() == ("d1", {"wallets": []})


def test_a_float_in_a_transition_rolls_back_the_whole_cycle(store: Store):
    store.write_cycle(_record())
    head, counts = store.head(), _counts(store)
    bad = _transition(at=T0)
    bad = replace(bad, details={"ratio": 0.42})  # a float: refused after half the inserts
    with pytest.raises(TypeError, match="float"):
        store.write_cycle(_record(T0 + timedelta(minutes=1), transitions=[_transition(), bad],
                                  address_balances=_balances(10, bump=5, every=2),
                                  alerts=[_alert()], deliveries=[("soc", [0, 1])]))
    assert store.head() == head
    assert _counts(store) == counts
    # the in-memory last-known balances were not advanced by the rolled-back cycle
    res = store.write_cycle(_record(T0 + timedelta(minutes=2),
                                    address_balances=_balances(10, bump=5, every=2)))
    assert res.balances_written == 15 and res.cycle_id == 2


def test_identical_cycle_writes_no_address_rows_and_one_percent_change_writes_one_percent(
        store: Store):
    first = store.write_cycle(_record(address_balances=_balances(1000)))
    assert first.balances_written == 3000
    same = store.write_cycle(_record(T0 + timedelta(minutes=1), address_balances=_balances(1000)))
    assert same.balances_written == 0
    changed = store.write_cycle(_record(T0 + timedelta(minutes=2),
                                        address_balances=_balances(1000, bump=1, every=100)))
    assert changed.balances_written == 30
    rows = store._conn.execute("SELECT cycle, count(*) FROM address_balances GROUP BY cycle")
    assert dict(rows.fetchall()) == {1: 3000, 3: 30}


def test_last_known_balances_survive_a_reopen(tmp_path: Path):
    with Store.open(tmp_path / "a.db") as s:
        s.write_cycle(_record(address_balances=_balances(50)))
    with Store.open(tmp_path / "a.db") as s:
        res = s.write_cycle(_record(T0 + timedelta(minutes=1),
                                    address_balances=_balances(50, bump=-1, every=30)))
    assert res.balances_written == 5


def test_wei_above_2_to_the_64_round_trips_exactly(store: Store):
    big = 2**255 + 7
    store.write_cycle(_record(totals=[("watch", "eth-hot-1", "ETH", big)],
                              address_balances=[("ethereum", "watch", "0xab", "ETH", big)]))
    assert store.last_watch() == ({("eth-hot-1", "ETH"): big}, {"eth-hot-1": 7})
    stored = store._conn.execute("SELECT amount, typeof(amount) FROM address_balances").fetchone()
    assert stored == (str(big), "text")
    assert store.watch_history(T0)[0][1] == {("eth-hot-1", "ETH"): big}


def test_transition_seqs_are_global_and_increasing_across_cycles(store: Store):
    seqs: list[int] = []
    for i in range(3):
        res = store.write_cycle(_record(T0 + timedelta(minutes=i),
                                        transitions=[_transition(), _transition("repeat")]))
        seqs += res.seqs
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    history = store.alert_history(FP)
    assert [h["seq"] for h in history] == seqs
    alert_payloads = store._conn.execute("SELECT seq, payload FROM audit_log WHERE kind = 'alert'")
    assert [(s, json.loads(p)["seq"]) for s, p in alert_payloads] == [(s, s) for s in seqs]


def test_deliveries_put_the_transitions_with_their_seqs_in_the_outbox(store: Store):
    res = store.write_cycle(_record(transitions=[_transition(), _transition("escalated")],
                                    deliveries=[("soc", [0, 1]), ("slack", [1])]))
    items = {i.channel: i for i in store.pending_outbox(T0)}
    assert [t["seq"] for t in items["soc"].transitions] == res.seqs
    assert [t["kind"] for t in items["slack"].transitions] == ["escalated"]
    assert items["soc"].cycle == res.cycle_id
    t = items["soc"].transitions[0]
    assert (t["fingerprint"], t["value"], t["threshold"]) == (FP, "0.42", "0.2")


def test_failed_cycle_stores_only_its_cycle_record_transitions_and_outbox(store: Store):
    store.write_cycle(_record())
    before = _counts(store)
    res = store.write_cycle(CycleRecord(
        taken_at=T0 + timedelta(minutes=1), status="failed", reason="ethereum: timeout",
        chains={"ethereum": _chain(0, ok=False)}, transitions=[_transition()],
        deliveries=[("log", [0])], poll={"status": "failed", "exposure": None}))
    assert _kinds(store)[-2:] == ["alert", "cycle"] and "snapshot" not in _kinds(store)[5:]
    after = _counts(store)
    for table in ("address_balances", "wallet_totals", "exposures"):
        assert after[table] == before[table]
    assert store.last_cycle() == {"status": "failed", "exposure": None, "cycle": res.cycle_id}
    assert store.last_ok_cycle_at() == T0
    assert store.last_cycle_at() == T0 + timedelta(minutes=1)
    with pytest.raises(ValueError, match="failed cycle"):
        store.write_cycle(CycleRecord(taken_at=T0, status="failed", exposure={"x": "1"}))


def test_config_record_only_when_the_digest_changes(store: Store):
    for i, digest in enumerate(["d1", "d1", "d2"]):
        store.write_cycle(_record(T0 + timedelta(minutes=i), config={"v": digest},
                                  config_digest=digest))
    assert _kinds(store).count("config") == 2
    assert store.last_config() == ("d2", {"v": "d2"})


def test_alert_state_upserts_by_fingerprint_and_reads_back_exactly(store: Store):
    store.write_cycle(_record(alerts=[_alert()]))
    assert store.open_alerts()[FP] == _alert()
    store.write_cycle(_record(T0 + timedelta(minutes=1), alerts=[_alert("resolved")]))
    assert store.open_alerts() == {}
    assert store.get_alert(FP) == _alert("resolved")
    assert store.list_alerts() == [] and store.list_alerts(include_resolved=True) == [_alert("resolved")]


def test_watch_history_includes_the_last_cycle_before_since(store: Store):
    for i in range(5):
        store.write_cycle(_record(T0 + timedelta(minutes=i),
                                  totals=[("watch", "eth-hot-1", "ETH", 100 - i)]))
    hist = store.watch_history(T0 + timedelta(minutes=2, seconds=30))
    assert [(t, v[("eth-hot-1", "ETH")]) for t, v in hist] == [
        (T0 + timedelta(minutes=m), 100 - m) for m in (2, 3, 4)]
    assert store.watch_history(T0 + timedelta(hours=1))[0][0] == T0 + timedelta(minutes=4)


def test_last_watch_keeps_each_wallets_most_recent_values(store: Store):
    store.write_cycle(_record(totals=[("watch", "eth-hot-1", "ETH", 5), ("watch", "btc-hot", "BTC", 9)],
                              nonces=[("watch", "eth-hot-1", 3)]))
    store.write_cycle(_record(T0 + timedelta(minutes=1), status="partial",
                              totals=[("watch", "eth-hot-1", "ETH", 4)], nonces=[]))
    assert store.last_watch() == ({("eth-hot-1", "ETH"): 4, ("btc-hot", "BTC"): 9}, {})


def test_last_heads_keep_first_seen_while_the_head_does_not_advance(store: Store):
    for i, block in enumerate([100, 100, 100, 101]):
        store.write_cycle(_record(T0 + timedelta(minutes=i), chains={"ethereum": _chain(block)}))
        if i == 2:
            assert store.last_heads() == {"ethereum": (100, "0x64", T0)}
    assert store.last_heads() == {"ethereum": (101, "0x65", T0 + timedelta(minutes=3))}


def test_last_cycle_carries_the_cycle_id_and_started_at(store: Store):
    assert store.last_cycle() is None and store.last_started_at() is None
    store.write_cycle(_record(started_at=T0 - timedelta(seconds=5)))
    assert store.last_cycle() == {"status": "ok", "exposure": {"hot_ratio": "0.03125"}, "cycle": 1}
    assert store.last_started_at() == T0 - timedelta(seconds=5)


def test_totals_of_wallets_without_a_chain_go_into_the_cycle_record(store: Store):
    store.write_cycle(_record(wallet_chains={}))
    payload = json.loads(store._conn.execute(
        "SELECT payload FROM audit_log WHERE kind = 'cycle'").fetchone()[0])
    assert payload["totals"]["watch"]["eth-hot-1"]["ETH"] == str(WEI + 1)
    assert store.verify().ok


def test_balance_cache_reloads_when_another_store_object_wrote_a_cycle(tmp_path: Path):
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "a.db") as b:
        a.write_cycle(_record(address_balances=_balances(10)))
        b.write_cycle(_record(T0 + timedelta(minutes=1),
                              address_balances=_balances(10, bump=1, every=3)))
        # back to cycle 1's values: a must compare with b's cycle, not its own memory
        res = a.write_cycle(_record(T0 + timedelta(minutes=2), address_balances=_balances(10)))
    assert res.balances_written == 10


def test_sqlite_errors_leave_as_store_errors(tmp_path: Path):
    s = Store.open(tmp_path / "a.db")
    s.close()
    with pytest.raises(StoreError, match=r"a\.db: could not read the audit-log head"):
        s.head()


def test_a_store_opened_for_any_thread_keeps_its_balances_across_threads(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    s = Store.open(tmp_path / "a.db", any_thread=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(s.write_cycle, _record(address_balances=_balances(10))).result()
    res = s.write_cycle(_record(T0 + timedelta(minutes=1), address_balances=_balances(10)))
    assert res.balances_written == 0
    s.close()
    t = Store.open(tmp_path / "a.db")
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(StoreError, match="thread"):
        pool.submit(t.head).result()
    t.close()


def test_many_changed_balances_are_logged_in_parts_and_the_chain_verifies(tmp_path) -> None:
    import json as _json
    import sqlite3 as _sqlite3
    from datetime import UTC, datetime

    from auditor.store import CycleRecord, Store
    from auditor.store_cycle import BALANCES_PER_RECORD

    n = BALANCES_PER_RECORD * 2 + 7
    store = Store.open(tmp_path / "a.db")
    rec = CycleRecord(
        taken_at=datetime(2026, 11, 24, tzinfo=UTC), status="ok", reason=None,
        chains={"ethereum": {"ok": True}}, totals=[("settled", "w", "ETH", n)], nonces=[],
        address_balances=[("ethereum", "settled", f"0x{i:040x}", "ETH", 1) for i in range(n)],
        exposure=None, findings=[], alerts=[], transitions=[], deliveries=[],
        consumed_approvals=[], config=None, config_digest=None, poll={}, wallet_chains={"w": "ethereum"})
    store.write_cycle(rec)
    assert store.verify().ok
    store.close()
    with _sqlite3.connect(tmp_path / "a.db") as c:
        rows = [(k, _json.loads(p)) for k, p in c.execute(
            "select kind, payload from audit_log where kind like 'snapshot%' order by seq")]
    assert [k for k, _ in rows] == ["snapshot", "snapshot_balances", "snapshot_balances"]
    assert rows[0][1]["balances_parts"] == 3
    assert sum(len(p["balances_changed"]) for _, p in rows) == n
    assert rows[0][1]["totals"] == {"settled": {"w": {"ETH": str(n)}}}
