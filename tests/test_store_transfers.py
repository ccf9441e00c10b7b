"""Transfers in the store: written with the cycle, hash-chained, rolled back on a
reorg, mempool rows confirmed in place, listed newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor.model import Transfer
from auditor.store import CycleRecord, Store
from auditor.store_transfers import StoredTransfer, TransferWrite

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def tr(block: int, tx: str, amount: int, *, idx: int = 0, wallet_from: str | None = "hot",
       wallet_to: str | None = None, chain: str = "ethereum") -> Transfer:
    return Transfer(chain=chain, block=block, block_hash=f"h{block}" if block else "", tx=tx, index=idx,
                    kind="native", asset="ETH", amount=amount, sender="0xaa", recipient="0xbb",
                    wallet_from=wallet_from, wallet_to=wallet_to, counterparties=("0xbb",),
                    timestamp=1_700_000_000 + block)


def audited(store: Store) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p) for (p,) in store._conn.execute(
        "SELECT payload FROM audit_log WHERE kind = 'transfers' ORDER BY seq")]


def cycle(store: Store, n: int, *writes: TransferWrite) -> None:
    store.write_cycle(CycleRecord(taken_at=T0 + timedelta(minutes=n), status="ok", transfers=list(writes)))


def test_transfers_cursor_and_block_hashes_are_written_with_the_cycle_and_audited(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    rows = [StoredTransfer(tr(10, "0x01", 5), "unknown"), StoredTransfer(tr(11, "0x02", 7), "withdrawal", "w-1")]
    cycle(store, 1, TransferWrite("ethereum", rows=rows, block_hashes={10: "h10", 11: "h11"}, cursor=11,
                                  used_withdrawals=["w-1"]))
    assert store.ingest_cursor("ethereum") == 11
    assert store.ingest_hashes("ethereum", 0) == {10: "h10", 11: "h11"}
    assert store.used_withdrawals() == {"w-1"}
    listed = store.list_transfers()
    assert [(t["tx"], t["amount"], t["class"], t["match"]) for t in listed] == [
        ("0x02", 7, "withdrawal", "w-1"), ("0x01", 5, "unknown", None)]
    audit = audited(store)
    assert len(audit) == 1 and [t["tx"] for t in audit[0]["chains"]["ethereum"]["transfers"]] == [
        "0x01", "0x02"]
    assert store.verify().ok
    store.close()


def test_a_rollback_removes_the_transfers_of_the_reorged_blocks_and_rewinds_the_cursor(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    cycle(store, 1, TransferWrite("ethereum", rows=[StoredTransfer(tr(b, f"0x{b:02x}", b), "unknown")
                                                    for b in (10, 11, 12)],
                                  block_hashes={10: "h10", 11: "h11", 12: "h12"}, cursor=12))
    assert [t["tx"] for t in store.transfers_from("ethereum", 11)] == ["0x0b", "0x0c"]
    cycle(store, 2, TransferWrite("ethereum", rollback_from=11,
                                  rows=[StoredTransfer(tr(11, "0x99", 1), "internal")],
                                  block_hashes={11: "x11", 12: "x12"}, cursor=12))
    assert sorted(t["tx"] for t in store.list_transfers()) == ["0x0a", "0x99"]
    assert store.ingest_hashes("ethereum", 0) == {10: "h10", 11: "x11", 12: "x12"}
    audit = audited(store)[-1]["chains"]["ethereum"]
    assert audit["rolled_back_from"] == 11 and audit["removed"] == 2
    store.close()


def test_a_mempool_transfer_gets_its_block_when_it_confirms_and_stays_one_row(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    cycle(store, 1, TransferWrite("bitcoin", rows=[StoredTransfer(tr(0, "ab" * 32, 9, chain="bitcoin"), "unknown")]))
    assert store.stored_transfer_keys("bitcoin", ["ab" * 32]) == {("ab" * 32, 0, "native", 0)}
    cycle(store, 2, TransferWrite("bitcoin", rows=[StoredTransfer(tr(120, "ab" * 32, 9, chain="bitcoin"),
                                                                  "unknown")]))
    rows = store.list_transfers()
    assert [(t["block"], t["block_hash"]) for t in rows] == [(120, "h120")]
    store.close()


def test_listing_filters_by_wallet_and_time(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    cycle(store, 1, TransferWrite("ethereum", rows=[
        StoredTransfer(tr(10, "0x01", 1, wallet_from="hot"), "unknown"),
        StoredTransfer(tr(20, "0x02", 2, wallet_from=None, wallet_to="dep"), "unknown"),
        StoredTransfer(tr(30, "0x03", 3, wallet_from="hot", wallet_to="cold"), "internal")]))
    assert [t["tx"] for t in store.list_transfers(wallet="hot")] == ["0x03", "0x01"]
    assert [t["tx"] for t in store.list_transfers(since_ts=1_700_000_020)] == ["0x03", "0x02"]
    assert json.dumps(store.list_transfers()[0]["counterparties"]) == '["0xbb"]'
    store.close()


def test_outflows_since_returns_every_non_internal_outflow_of_the_wallets_without_a_row_limit(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    rows = [StoredTransfer(tr(100 + i, f"0x{i:04x}", i + 1, wallet_from="hot"), "unknown") for i in range(1500)]
    rows += [StoredTransfer(tr(5, "0xold", 1, wallet_from="hot"), "unknown"),  # before the window
             StoredTransfer(tr(200, "0xsweep", 1, wallet_from="hot", wallet_to="cold"), "internal"),
             StoredTransfer(tr(201, "0xother", 1, wallet_from="warm"), "unknown")]
    cycle(store, 1, TransferWrite("ethereum", rows=rows))
    out = store.outflows_since(["hot"], 1_700_000_000 + 100)
    assert len(out) == 1500 and {t["class"] for t in out} == {"unknown"}
    assert [t["tx"] for t in out[:2]] == ["0x0000", "0x0001"]  # oldest first
    assert {t["tx"] for t in store.outflows_since(["hot", "warm"], 1_700_000_000 + 100)} >= {"0xother"}
    store.close()
