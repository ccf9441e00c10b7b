"""`auditor backtest` over a month of one-minute cycles (43,200) for 10 assets.

Run by hand (not by CI):

    .venv/bin/python benchmarks/backtest.py                 # 30 days, 10 assets
    .venv/bin/python benchmarks/backtest.py --days 3 --profile

Builds a store in a temp dir: the schema through `Store.open`, then the cycles,
their stored exposure JSON (from the pure `compute_exposure` + `exposure_json`,
exactly what the daemon stores) and their watch-view wallet totals written with
bulk SQL (the daemon's full `write_cycle` would take minutes to fill a month).
Five wallets (hot, warm, deposit, cold, guarantee) hold every asset; every
minute hot wallets pay withdrawals and receive sweeps from deposit wallets,
prices move (a live price source), twice a day hot is swept to cold, and on
three days hot grows past the 4 % warning and the 5 % limit of `hot_ratio`;
one theft drains a hot wallet. So every cycle's exposure differs (no caching
can help), and `hot_drain` meets its real worst cases (sweeps are falls it
must match against rises; a theft keeps it busy for its 24 h window).

Then runs `auditor backtest --rules stricter.yaml --json` for the whole month in
a child process (so building the store does not count) and prints its wall
time, CPU time, peak RSS, how many cycles ran `hot_drain`, and the counts of
transitions per side. Target (issue 8): under 5 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from auditor.config import load_config
from auditor.exposure import compute_exposure, exposure_json
from auditor.model import Liabilities, Price
from auditor.store import Store
from auditor.store_codec import db_time, dumps

ASSETS = ["ETH"] + [f"TK{i}" for i in range(1, 10)]
DECIMALS = {a: 18 if i % 2 == 0 else 6 for i, a in enumerate(ASSETS)}
START = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 2026-11-01 00:00 JST
WALLETS = (("hot", "hot", "customer"), ("warm", "warm", "customer"),
           ("deposit", "deposit", "customer"), ("cold", "cold", "customer"),
           ("guarantee", "cold", "guarantee"))


def write_config(tmp: Path) -> Path:
    tokens = "\n".join(
        f"  {a}: {{class: crypto, deployments: [{{chain: ethereum, token: "
        f"\"0x{i:040x}\", decimals: {DECIMALS[a]}}}]}}" for i, a in enumerate(ASSETS) if i)
    wallets = "\n".join(
        f"  - {{name: {n}, chain: ethereum, tier: {t}, role: {r}, addresses: [\"0x{j + 1:040x}\"]}}"
        for j, (n, t, r) in enumerate(WALLETS))
    (tmp / "liabilities.csv").write_text("asset,amount\n" + "".join(f"{a},1000000\n" for a in ASSETS))
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: bench-ex}}
store: {{path: bench.db}}
schedule: {{poll_every: 60s, timezone: Asia/Tokyo}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}, {{url: "http://127.0.0.1:2"}}]}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
{tokens}
wallets:
{wallets}
prices: {{source: static, static: {{{", ".join(f'{a}: "1000"' for a in ASSETS)}}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 1000d}}
rules: {{preset: jp-fsa}}
""")
    (tmp / "stricter.yaml").write_text(
        "rules: {preset: jp-fsa, hot_ratio: {warning: '3.5%', critical: '4.5%'}}\n")
    return cfg


class Book:
    """Balances per (wallet, asset) in base units, moved minute by minute."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.unit = {a: 10 ** DECIMALS[a] for a in ASSETS}
        self.bal = {}
        for a in ASSETS:
            u = self.unit[a]
            self.bal.update({("hot", a): 10_000 * u, ("warm", a): 5_000 * u,
                             ("deposit", a): 5_000 * u, ("cold", a): 965_000 * u,
                             ("guarantee", a): 40_000 * u})
        self.price = {a: Decimal(1000 + 100 * i) for i, a in enumerate(ASSETS)}
        self.stolen = 0

    def step(self, minute: int) -> None:
        day, hour = divmod(minute // 60, 24)
        for a in ASSETS:
            u, b = self.unit[a], self.bal
            paid = self.rng.randrange(0, 30 * u)  # withdrawals leave hot (the ledger follows)
            got = self.rng.randrange(0, 30 * u)  # deposits arrive (the ledger follows)
            b[("hot", a)] -= paid
            b[("deposit", a)] += got
            if minute % 10 == 0:  # sweep deposits to hot
                b[("hot", a)] += b[("deposit", a)] - 1000 * u
                b[("deposit", a)] = 1000 * u
            target = 45_000 if day in (7, 17, 27) and 8 <= hour < 14 else 10_000
            if minute % 720 == 0 or b[("hot", a)] < 2_000 * u or (
                    target > 10_000 and minute % 60 == 0):
                move = b[("hot", a)] - target * u  # sweep to / top up from cold
                b[("hot", a)] -= move
                b[("cold", a)] += move
            self.price[a] = max(Decimal(1), self.price[a] + Decimal(self.rng.randrange(-5, 6)))
        if minute == 20 * 1440 + 300:  # a theft: 60 % of hot ETH leaves
            self.stolen = self.bal[("hot", "ETH")] * 6 // 10
            self.bal[("hot", "ETH")] -= self.stolen


def build_store(cfg: Path, days: int) -> Path:
    settings = load_config(cfg, env={})
    Store.open(settings.store.path).close()  # the schema
    conn = sqlite3.connect(settings.store.path)
    conn.execute("PRAGMA journal_mode = WAL")
    book = Book(random.Random(8))
    cycles, exposures, totals = [], [], []
    for m in range(days * 1440):
        book.step(m)
        at = START + timedelta(minutes=m)
        prices = {a: Price(a, book.price[a], "http:https://prices.example:443", at) for a in ASSETS}
        owed = {a: sum(book.bal[(w, a)] for w, _t, r in WALLETS if r == "customer")
                for a in ASSETS}
        if m >= 20 * 1440 + 300:  # the stolen ETH is still owed
            owed["ETH"] += book.stolen
        liab = Liabilities(owed, at, "csv")
        e = compute_exposure(settings.wallets, settings.assets, dict(book.bal), prices, liab,
                             settings.rules.scope_classes, at, 600, "JPY")
        cid = m + 1
        cycles.append((cid, db_time(at), db_time(at), "ok", None, "{}", "{}", 1, None, cid))
        exposures.append((cid, dumps(exposure_json(e))))
        totals.extend((cid, "watch", w, a, str(v)) for (w, a), v in book.bal.items())
        totals.extend((cid, "settled", w, a, str(v)) for (w, a), v in book.bal.items())
        if len(cycles) == 1440:
            _flush(conn, cycles, exposures, totals)
    _flush(conn, cycles, exposures, totals)
    conn.close()
    return settings.store.path


def _flush(conn: sqlite3.Connection, cycles: list, exposures: list, totals: list) -> None:
    with conn:
        conn.executemany("INSERT INTO cycles (id, taken_at, started_at, status, reason, chains, "
                         "poll, has_watch, config_digest, audit_seq) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", cycles)
        conn.executemany("INSERT INTO exposures (cycle, payload) VALUES (?, ?)", exposures)
        conn.executemany("INSERT INTO wallet_totals (cycle, view, wallet, asset, amount) "
                         "VALUES (?, ?, ?, ?, ?)", totals)
    cycles.clear(), exposures.clear(), totals.clear()


CHILD = """
import cProfile, json, pstats, resource, sys, time
from click.testing import CliRunner
from auditor.cli import cli
args = {args!r}
t0, c0 = time.perf_counter(), time.process_time()
if {profile!r}:
    prof = cProfile.Profile(); prof.enable()
res = CliRunner().invoke(cli, args, catch_exceptions=False)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
if {profile!r}:
    prof.disable(); pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
rows = json.loads(res.stdout)
print(json.dumps({{"exit": res.exit_code, "wall": wall, "cpu": cpu, "rows": rows,
                   "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--store", metavar="DIR", default=None,
                    help="keep the built store in DIR and reuse it on later runs with the same "
                         "--days (building takes ~30 s)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = (Path(a.store) if a.store else Path(d)).resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = write_config(tmp)
        built = tmp / f"built-{a.days}d"
        t0 = time.perf_counter()
        if a.store and built.exists():
            db = load_config(cfg, env={}).store.path
            print(f"store: reusing {db} ({a.days} days)")
        else:
            for old in tmp.glob("bench.db*"):
                old.unlink()
            db = build_store(cfg, a.days)
            built.touch()
            print(f"store: {a.days * 1440} cycles x {len(ASSETS)} assets x {len(WALLETS)} "
                  f"wallets built in {time.perf_counter() - t0:.1f} s "
                  f"({db.stat().st_size / 2**20:.0f} MB)")
        last = (START + timedelta(days=a.days, hours=9) - timedelta(minutes=1)).date()
        args = ["backtest", "-c", str(cfg), "--rules", str(tmp / "stricter.yaml"),
                "--from", "2026-11-01", "--to", last.isoformat(), "--json"]
        # run in the store's directory: `-c` puts the current directory first on sys.path,
        # so from a checkout it would shadow PYTHONPATH (comparing two trees)
        out = subprocess.run([sys.executable, "-c", CHILD.format(args=args, profile=a.profile)],
                             cwd=tmp, stdout=subprocess.PIPE, text=True, check=True,
                             stderr=None if a.profile else subprocess.PIPE)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows = r["rows"]
        count = {(s, k): sum(1 for x in rows if x["source"] == s and x["transition"] == k)
                 for s in ("backtest", "store") for k in ("firing", "escalated", "resolved")}
        rules = sorted({x["rule"] for x in rows})
        print(f"backtest of {a.days * 1440} cycles: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
              f"peak RSS {r['rss_mb']:.0f} MB (exit {r['exit']}; target < 5 s)")
        print(f"would have fired: {count[('backtest', 'firing')]} firing, "
              f"{count[('backtest', 'escalated')]} escalated, "
              f"{count[('backtest', 'resolved')]} resolved; rules: {', '.join(rules)}")


if __name__ == "__main__":
    main()
