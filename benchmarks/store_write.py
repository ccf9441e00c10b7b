"""Store write and verify throughput. Not run by CI.

A cycle of 30,000 per-address balances (10k addresses × 3 assets) where 1%
changed since the previous cycle, written with the hash chain, against a
naive store that rewrites every balance each cycle with one audit record per
balance. Then verify speed and memory over N audit records.

    .venv/bin/python benchmarks/store_write.py [--addresses 10000] [--cycles 5] [--verify 100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor.model import Transition
from auditor.store import CycleRecord, Store
from auditor.store_audit import AuditChain

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ASSETS = ("ETH", "USDC", "USDT")


def balances(n: int, cycle: int, changed_every: int = 100) -> list[tuple[str, str, str, str, int]]:
    """n addresses × 3 assets; each cycle a different 1% of them rises by one unit."""
    rows = []
    for i in range(n):
        for j, asset in enumerate(ASSETS):
            k = i * 3 + j
            bump = (cycle + k % changed_every) // changed_every  # steps once per 100 cycles
            rows.append(("ethereum", "watch", f"0x{i:040x}", asset, 10**21 + k * 7 + bump))
    return rows


def record(n: int, cycle: int) -> CycleRecord:
    at = T0 + timedelta(minutes=cycle)
    chain = {"ok": True, "error": None, "problems": [],
             "settled": {"block": 1000 + cycle, "block_hash": f"0x{cycle:064x}", "timestamp": 1},
             "watch": {"block": 1011 + cycle, "block_hash": f"0x{cycle + 11:064x}", "timestamp": 2}}
    t = Transition(kind="repeat", fingerprint="f" * 64, rule="hot_ratio", subject="combined",
                   severity="warning", at=at, summary="hot ratio above 4%")
    return CycleRecord(
        taken_at=at, status="ok", chains={"ethereum": chain},
        totals=[(v, f"w{w}", a, 10**24 + w) for v in ("settled", "watch") for w in range(20)
                for a in ASSETS],
        address_balances=balances(n, cycle), exposure={"hot_ratio": "0.041"},
        transitions=[t], deliveries=[("log", [0])], poll={"status": "ok"})


def naive_cycle(store: Store, rows: list[tuple[str, str, str, str, int]], cycle: int) -> None:
    """Rewrite every balance, each with its own audit record."""
    at = T0 + timedelta(minutes=cycle)
    with store.transaction() as conn:
        chain = AuditChain(conn)
        for c, v, addr, asset, amount in rows:
            chain.append("balance", {"chain": c, "view": v, "address": addr, "asset": asset,
                                     "amount": str(amount), "cycle": cycle}, at)
        conn.executemany("INSERT INTO address_balances VALUES (?, ?, ?, ?, ?, ?)",
                         [(cycle, c, v, a, s, str(x)) for c, v, a, s, x in rows])


def bench_writes(root: Path, n: int, cycles: int) -> tuple[float, float]:
    with Store.open(root / "diff.db") as store:
        t = time.perf_counter()
        first = store.write_cycle(record(n, 0))
        print(f"first cycle (all {first.balances_written} balances new): "
              f"{time.perf_counter() - t:.3f} s")
        times, written = [], []
        for c in range(1, cycles + 1):
            rec = record(n, c)  # built outside the timing: the service builds it anyway
            t = time.perf_counter()
            res = store.write_cycle(rec)
            times.append(time.perf_counter() - t)
            written.append(res.balances_written)
        diff = statistics.median(times)
        print(f"changed-only cycle: {n * 3} balances, {statistics.median(written):.0f} changed "
              f"→ median {diff * 1000:.1f} ms (min {min(times) * 1000:.1f}, "
              f"max {max(times) * 1000:.1f}) over {cycles} cycles; target < 200 ms")
    with Store.open(root / "naive.db") as store:
        times = []
        for c in range(1, min(cycles, 3) + 1):
            rows = balances(n, c)
            t = time.perf_counter()
            naive_cycle(store, rows, c)
            times.append(time.perf_counter() - t)
        naive = statistics.median(times)
        print(f"naive cycle: {n * 3} rows + {n * 3} audit records → median {naive:.3f} s")
    print(f"ratio naive / changed-only: {naive / diff:.0f}×; rows per day at 1/min: "
          f"{n * 3 // 100 * 1440:,} vs {n * 3 * 1440:,}")
    return diff, naive


def bench_verify(root: Path, records: int) -> None:
    with Store.open(root / "verify.db") as store:
        with store.transaction() as conn:
            chain = AuditChain(conn)
            for i in range(records):
                chain.append("note", {"i": i, "amount": str(10**21 + i), "address": f"0x{i:040x}"},
                             T0 + timedelta(seconds=i))
        tracemalloc.start()
        t = time.perf_counter()
        res = store.verify()
        took = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert res.ok and res.records == records
        print(f"verify: {records:,} records in {took:.2f} s ({records / took:,.0f}/s; under "
              f"tracemalloc, which slows it), peak Python memory {peak / 1e6:.2f} MB")
        t = time.perf_counter()
        store.verify()
        took = time.perf_counter() - t
        print(f"verify without tracemalloc: {took:.2f} s ({records / took:,.0f} records/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addresses", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--verify", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench_writes(Path(d), args.addresses, args.cycles)
        bench_verify(Path(d), args.verify)


if __name__ == "__main__":
    main()
