"""Benchmark: `auditor report` over a month of one-minute cycles (43,200) for 10 assets.

The month is bulk-inserted through SQL into the store's own tables (cycles and
exposures as `run_cycle` writes them, plus the 30 daily records through
`Store.write_daily_record`), then the real command runs in a child process,
all four formats, and we print its wall time and peak RSS (the child's
`ru_maxrss`, so the bulk insert does not count). Targets: < 10 s, < 300 MB.

    .venv/bin/python benchmarks/report.py [--cycles 43200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from auditor.store import Store
from auditor.store_codec import db_time, dumps, format_time
from auditor.units import format_ratio

ASSETS = [f"A{i}" for i in range(10)]
START = datetime(2026, 10, 31, 15, tzinfo=UTC)  # 2026-11-01 00:00 in Tokyo


def _config(d: Path) -> Path:
    assets = "\n".join(f"  {a}: {{class: crypto, chain: ethereum, decimals: 18"
                       + (f', token: "0x{i:040x}"' if i else "") + "}"
                       for i, a in enumerate(ASSETS))
    prices = ", ".join(f'{a}: "{1000 + i}"' for i, a in enumerate(ASSETS))
    (d / "liabilities.csv").write_text("asset,amount\n" + "".join(f"{a},1000\n" for a in ASSETS))
    cfg = d / "auditor.yaml"
    cfg.write_text(f"""exchange: {{id: bench-ex, name: Bench Exchange}}
store: {{path: var/bench.db}}
schedule: {{poll_every: 60s, timezone: Asia/Tokyo}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 12}}
assets:
{assets}
wallets:
  - {{name: hot, chain: ethereum, tier: hot, role: customer, addresses: ["0x{'11' * 20}"]}}
  - {{name: cold, chain: ethereum, tier: cold, role: customer, addresses: ["0x{'22' * 20}"]}}
  - {{name: guar, chain: ethereum, tier: cold, role: guarantee, addresses: ["0x{'33' * 20}"]}}
prices: {{source: static, static: {{{prices}}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa}}
""")
    return cfg


def _rows(n: int) -> tuple[list[tuple[object, ...]], list[tuple[int, str]]]:
    """Cycles and exposures as `run_cycle` stores them (strings built by hand: fast)."""
    rnd = random.Random(1)
    cycles, exposures = [], []
    for i in range(n):
        at = START + timedelta(minutes=i, seconds=rnd.randint(0, 3))
        hots = [rnd.randint(10, 60) for _ in ASSETS]  # whole units of 1000 owed
        assets = {a: {"class": "crypto", "hot": str(h), "warm": "0", "deposit": "0",
                      "cold": str(1000 - h), "online": str(h), "guarantee": "70",
                      "proprietary": "0", "liabilities": "1000", "price": str(1000 + k),
                      "hot_ratio": format_ratio(Decimal(h) / 1000), "price_source": "static",
                      "price_as_of": format_time(at)}
                  for k, (a, h) in enumerate(zip(ASSETS, hots, strict=True))}
        online = sum(h * (1000 + k) for k, h in enumerate(hots))
        owed = sum(1000 * (1000 + k) for k in range(len(ASSETS)))
        exp = {"fiat": "JPY", "basis": "liabilities", "online_value": str(online),
               "customer_value": str(owed),
               "hot_ratio": format_ratio(Decimal(online) / Decimal(owed)), "assets": assets}
        status = "failed" if i % 5000 == 4999 else "ok"
        chains = {"ethereum": {"ok": status == "ok", "settled": {
            "block": 1000 + 5 * i, "block_hash": f"0x{1000 + 5 * i:064x}", "timestamp": 0},
            "watch": None, "error": None, "head_timestamp": None, "problems": []}}
        cycles.append((i + 1, db_time(at), db_time(at), status, None, dumps(chains), "{}", 0,
                       None, 0))
        if status != "failed":
            exposures.append((i + 1, dumps(exp)))
    return cycles, exposures


def _fill(cfg_dir: Path, n: int) -> None:
    store = Store.open(cfg_dir / "var" / "bench.db")
    cycles, exposures = _rows(n)
    with store.transaction() as conn:
        conn.executemany("INSERT INTO cycles (id, taken_at, started_at, status, reason, chains, "
                         "poll, has_watch, config_digest, audit_seq) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", cycles)
        conn.executemany("INSERT INTO exposures (cycle, payload) VALUES (?, ?)", exposures)
    for d in range(30):  # business date 11-(d+1), cut at the next local midnight (15:00Z)
        cut = START + timedelta(days=d + 1)
        day, cid = (START + timedelta(days=d, hours=9)).date().isoformat(), (d + 1) * 1440 + 1
        store.write_daily_record(day, {"cycle": cid, "taken_at": format_time(cut), "late": False,
                                  "basis": "liabilities", "hot_ratio": "0.035",
                                       "cutoff": format_time(cut), "assets": {}, "chains": {}},
                                 cut)
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=43_200)
    ap.add_argument("--keep", type=Path, default=None, help="Leave the store and reports here.")
    args = ap.parse_args()
    d = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    d.mkdir(parents=True, exist_ok=True)
    cfg = _config(d)
    t0 = time.perf_counter()
    _fill(d, args.cycles)
    print(f"stored {args.cycles} cycles × {len(ASSETS)} assets in {time.perf_counter() - t0:.1f} s "
          f"({(d / 'var' / 'bench.db').stat().st_size / 2**20:.0f} MiB)")
    auditor = Path(sys.executable).with_name("auditor")
    cmd = [str(auditor), "report", "-c", str(cfg), "--from", "2026-11-01", "--to", "2026-11-30",
           "--format", "html,json,csv,md", "--out", str(d / "reports")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    sizes = {p.suffix: p.stat().st_size for p in (d / "reports").iterdir()}
    report = json.loads(next((d / "reports").glob("*.json")).read_text())
    print(f"auditor report, all four formats: {wall:.2f} s wall (target < 10 s), "
          f"peak RSS {rss:.0f} MiB (target < 300 MiB)")
    print("files: " + ", ".join(f"{k[1:]} {v / 1024:.0f} KiB" for k, v in sorted(sizes.items())))
    print(f"cycles in the report: {report['cycles']['total']}, hot ratio mean "
          f"{report['exposure']['hot_ratio']['mean']}, max {report['exposure']['hot_ratio']['max']['value']}")
    ok = wall < 10 and rss < 300
    print("OK" if ok else "OVER TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
