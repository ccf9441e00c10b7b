"""A whole poll cycle (`service.run_cycle`) on a real anvil, vs a naive web3 read.

Run by hand (not by CI), after `make deps`:

    .venv/bin/python benchmarks/cycle.py                     # 10k, then 100k addresses
    .venv/bin/python benchmarks/cycle.py --addresses 2000 --large 0 --profile

Starts anvil (`--prune-history 64`), funds N addresses with ETH and two
TestTokens spread over four wallets (hot: 10 addresses, cold: 1, guarantee: 1,
deposit: the rest), writes a config YAML and a liabilities CSV into a temp dir
and runs the cycles in a child process (so anvil, funding and the balance
changes do not count in its CPU or peak RSS): `load_config`, `Store.open`, one
cold cycle (everything new in the store), then steady cycles. Between cycles
the parent changes 1% of the N x 3 balances through cheat codes and mines
BLOCKS_PER_CYCLE blocks: half the confirmations, so the settled view (head-11)
picks up the previous cycle's changes while the watch view has this one's,
as on a live chain. The chain read is timed by wrapping `EthereumClient.read`
(`clients=`); the rest of the cycle by wrapping the service's steps (wall time,
and how much each raised the peak RSS), GC pauses through `gc.callbacks`. A
last process restarts on the warm store (a daemon restart: the store's balance
cache is loaded from SQLite) for one more cycle. The naive loop (web3
`get_balance` + 2 x `balanceOf` + `get_transaction_count` per address, at the
settled and the watch block: the same read as the cycle) runs on a sample and
is extrapolated to N.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from auditor import devchain

CONFIRMATIONS = 12
BLOCKS_PER_CYCLE = CONFIRMATIONS // 2
HOT_ADDRESSES = 10
ASSETS = ("ETH", "USD6", "TOK18")
DECIMALS = {"ETH": 18, "USD6": 6, "TOK18": 18}
PRICES = {"ETH": "450000", "USD6": "150", "TOK18": "1000"}
BUMP = {"ETH": 10**15, "USD6": 10**6, "TOK18": 10**15}  # a small deposit: no rule fires
# Per wallet: address prefix and the balance of its i-th address per asset.
WALLETS: dict[str, tuple[str, str, int, Callable[[int], tuple[int, int, int]]]] = {
    "eth-hot": ("hot", "customer", 0x407, lambda i: (50 * 10**18 + i, 10**11 + i, 2**64 + i)),
    "eth-cold": ("cold", "customer", 0xc01d, lambda i: (10**24, 10**15, 10**27)),
    "eth-guarantee": ("cold", "guarantee", 0x6a4, lambda i: (2 * 10**22, 10**13, 10**25)),
    "eth-deposits": ("deposit", "customer", 0xde9,
                     lambda i: (10**17 + i, 5 * 10**7 + i, 2**65 + i)),
}
READ_CHAINS = "_read_chains (client.read + thread pool)"
ERC20_ABI = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}],
              "outputs": [{"name": "", "type": "uint256"}]}]
# The service's steps, timed where they exist (service.py is refactored under us).
SERVICE_STEPS = ("_wallet_totals", "load_prices", "_load_ledger", "compute_exposure",
                 "config_material", "_digest", "_evaluate", "plan_deliveries", "_deliveries",
                 "_poll_json", "_read_chains")
STORE_STEPS = ("write_cycle", "last_config", "open_alerts", "silences")


# --- the exchange --------------------------------------------------------------


def sizes(n: int) -> dict[str, int]:
    return {"eth-hot": HOT_ADDRESSES, "eth-cold": 1, "eth-guarantee": 1,
            "eth-deposits": n - HOT_ADDRESSES - 2}


def address(wallet: str, i: int) -> str:
    return to_checksum_address(f"0x{WALLETS[wallet][2] << 128 | i:040x}")


def initial(wallet: str, i: int) -> dict[str, int]:
    return dict(zip(ASSETS, WALLETS[wallet][3](i), strict=True))


def fund(node: devchain.Anvil, tokens: dict[str, str], wallet: str, start: int, stop: int) -> None:
    for lo in range(start, stop, 10_000):  # in slices: the funding maps stay small
        bal = {address(wallet, i): initial(wallet, i) for i in range(lo, min(stop, lo + 10_000))}
        node.set_balances({a: b["ETH"] for a, b in bal.items()})
        for sym, token in tokens.items():
            devchain.set_token_balances(node, token, {a: b[sym] for a, b in bal.items()})


def write_config(root: Path, url: str, tokens: dict[str, str], n: int) -> Path:
    """The config YAML and the ledger (liabilities = customer holdings: nothing fires)."""
    owed = dict.fromkeys(ASSETS, 0)
    lines = []
    for wallet, count in sizes(n).items():
        tier, role = WALLETS[wallet][:2]
        lines += [f"  - name: {wallet}", "    chain: ethereum", f"    tier: {tier}",
                  f"    role: {role}", "    addresses:"]
        lines += [f'      - "{address(wallet, i)}"' for i in range(count)]
        for i in range(count if role == "customer" else 0):
            for sym, amount in initial(wallet, i).items():
                owed[sym] += amount
    from auditor.units import format_amount

    ledger = root / "liabilities.csv"
    ledger.write_text("asset,amount\n" + "".join(
        f"{s},{format_amount(owed[s], DECIMALS[s])}\n" for s in ASSETS))
    cfg = root / "auditor.yaml"
    cfg.write_text(f"""exchange: {{id: bench-ex, name: Bench Exchange, fiat: JPY}}
store: {{path: auditor.db}}
schedule: {{poll_every: 60s, timezone: UTC}}
chains:
  ethereum:
    type: ethereum
    rpc:
      - {{url: "{url}", timeout: 60s}}
    confirmations: {CONFIRMATIONS}
    max_head_age: 1h
    multicall3: "{devchain.MULTICALL3_ADDRESS}"
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  USD6: {{class: stablecoin, chain: ethereum, token: "{tokens['USD6']}", decimals: 6}}
  TOK18: {{class: crypto, chain: ethereum, token: "{tokens['TOK18']}", decimals: 18}}
wallets:
{chr(10).join(lines)}
prices: {{source: static, static: {json.dumps(PRICES)}}}
liabilities: {{source: csv, path: "{ledger}", max_age: 1d}}
rules: {{preset: jp-fsa}}
alerts:
  repeat_every: 1h
  channels:
    - {{name: console, type: log}}
  routes:
    - {{severity: [critical, warning], channels: [console]}}
""")
    return cfg


class Changer:
    """Changes ~1% of the N x 3 balances between cycles (deposits arriving)."""

    def __init__(self, node: devchain.Anvil, tokens: dict[str, str]) -> None:
        self.node, self.tokens = node, tokens
        self.now: dict[tuple[str, int, str], int] = {}
        self.rng = random.Random(1)

    def step(self, n: int, share: float) -> int:
        picks = self.rng.sample(range(n * len(ASSETS)), max(1, round(n * len(ASSETS) * share)))
        todo: dict[str, dict[str, int]] = {s: {} for s in ASSETS}
        for p in picks:
            w, i = self._slot(n, p // 3)
            sym = ASSETS[p % 3]
            key = (w, i, sym)
            self.now[key] = self.now.get(key, initial(w, i)[sym]) + BUMP[sym]
            todo[sym][address(w, i)] = self.now[key]
        self.node.set_balances(todo["ETH"])
        for sym, token in self.tokens.items():
            devchain.set_token_balances(self.node, token, todo[sym])
        self.node.mine(BLOCKS_PER_CYCLE)
        return len(picks)

    @staticmethod
    def _slot(n: int, k: int) -> tuple[str, int]:
        for w, c in sizes(n).items():
            if k < c:
                return w, k
            k -= c
        raise IndexError(k)


# --- the cycling process -------------------------------------------------------


class Steps:
    """Wall time of named steps, and how much each raised the peak RSS, per cycle."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.grew: dict[str, float] = {}
        self.gc_s, self._gc_start = 0.0, 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_start

    def clear(self) -> None:
        self.t.clear()
        self.grew.clear()
        self.gc_s = 0.0

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return  # renamed or gone: its time shows as "other"

        def timed(*a: Any, **k: Any) -> Any:
            t, rss = time.perf_counter(), rss_mb()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t
                self.grew[name] = self.grew.get(name, 0.0) + rss_mb() - rss
        setattr(owner, attr, timed)


class TimedClient:
    """The real EthereumClient, its read timed (wall and the process's CPU)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name
        self.wall = self.cpu = 0.0

    def read(self, wallets: Any, assets: Any, deadline: float | None = None) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self.inner.read(wallets, assets, deadline)
        finally:  # the cycle thread waits meanwhile: process CPU here is the read's
            self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu

    def close(self) -> None:
        self.inner.close()


def rss_mb() -> float:
    """Peak RSS so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """Current RSS (MB): what the process keeps between cycles."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    """Cycles on demand: one per line on stdin; one JSON line per cycle on stdout."""
    from auditor import alerting, rules, service
    from auditor.chains import EthereumClient
    from auditor.config import load_config
    from auditor.store import Store

    out = sys.stdout
    t = time.perf_counter()
    settings = load_config(args.config)
    out.write(json.dumps({"load_config": time.perf_counter() - t, "rss_mb": rss_mb()}) + "\n")
    out.flush()
    steps = Steps()
    for name in SERVICE_STEPS:
        steps.wrap(service, name, READ_CHAINS if name == "_read_chains" else name)
    steps.wrap(alerting, "advance", "alerting.advance")
    steps.wrap(rules, "evaluate_all", "rules.evaluate_all (in _evaluate)")
    client = TimedClient(EthereumClient(settings.chains["ethereum"]))
    steps.wrap(client, "read", "chain read")
    with Store.open(Path(args.store)) as store:
        written = [0]
        write = store.write_cycle

        def counted(rec: Any) -> Any:
            res = write(rec)
            written[0] = res.balances_written
            return res
        store.write_cycle = counted  # type: ignore[method-assign]
        for name in STORE_STEPS:
            steps.wrap(store, name, "write_cycle" if name == "write_cycle" else f"store.{name}")
        for line in sys.stdin:
            profile = cProfile.Profile() if line.strip() == "profile" else None
            steps.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            if profile:  # profiles this thread only: the read runs in the chain thread
                profile.enable()
            outcome = service.run_cycle(settings, store, clients={"ethereum": client})
            if profile:
                profile.disable()
            res = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                   "read_wall": client.wall, "read_cpu": client.cpu, "status": outcome.status,
                   "steps": dict(steps.t), "grew": dict(steps.grew),
                   "gc_s": steps.gc_s, "written": written[0], "rss_mb": rss_mb(),
                   "rss_now_mb": rss_now_mb(),
                   "poll": outcome.poll}
            if profile:
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
                res["profile"] = text.getvalue()
            out.write(json.dumps(res) + "\n")
            out.flush()
    client.close()


# --- the parent ----------------------------------------------------------------


def run_cycles(root: Path, cfg: Path, changer: Changer, n: int, commands: list[str],
               share: float, change_first: bool
               ) -> tuple[dict[str, Any], list[dict[str, Any]], list[int]]:
    """One cycling process on the store in `root`; balances change before each cycle
    (but the first, unless `change_first`). Returns its figures and the changes made."""
    cmd = [sys.executable, __file__, "--child", "--config", str(cfg),
           "--store", str(root / "auditor.db")]
    with open(root / "child.err", "w") as err, subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True) as proc:
        assert proc.stdin and proc.stdout

        def answer() -> dict[str, Any]:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise SystemExit(f"cycling process failed:\n{(root / 'child.err').read_text()}")
            result: dict[str, Any] = json.loads(line)
            return result

        loaded = answer()
        cycles, changed = [], []
        for c, command in enumerate(commands):
            changed.append(changer.step(n, share) if c or change_first else 0)
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            cycles.append(answer())
        proc.stdin.close()
    return loaded, cycles, changed


def naive(url: str, tokens: dict[str, str], addrs: list[str], blocks: tuple[int, int]) -> float:
    """Seconds for the per-address web3 loop over `addrs`, at both blocks."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    contracts = [w3.eth.contract(address=to_checksum_address(t), abi=ERC20_ABI)
                 for t in tokens.values()]
    start = time.perf_counter()
    for block in blocks:
        for a in addrs:
            w3.eth.get_balance(a, block_identifier=block)
            for token in contracts:
                token.functions.balanceOf(a).call(block_identifier=block)
            w3.eth.get_transaction_count(a, block_identifier=block)
    return time.perf_counter() - start


def by_size(d: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(d.items(), key=lambda kv: -kv[1])


def verdict(ok: bool, what: str) -> None:
    print(f"  [{'PASS' if ok else 'FAIL'}] {what}")


def report(n: int, loaded: dict[str, Any], cycles: list[dict[str, Any]], changed: list[int],
           profile: bool) -> dict[str, float]:
    s = sizes(n)
    print(f"\n{n:,} addresses (hot {s['eth-hot']}, cold 1, guarantee 1, deposit "
          f"{s['eth-deposits']:,}) x (ETH + USD6 + TOK18) = {3 * n:,} balances per view, "
          f"{6 * n:,} in both views (+ nonces)")
    print(f"  load_config: {loaded['load_config']:.2f} s; RSS after it {loaded['rss_mb']:.0f} MB")
    prof = cycles.pop() if profile else None
    for k, c in enumerate(cycles):
        if c["status"] != "ok":
            raise SystemExit(f"cycle {k + 1} status {c['status']}: {json.dumps(c['poll'])[:800]}")
        label = "cold  " if k == 0 else f"steady ({changed[k]:,} changed on chain)"
        print(f"  cycle {k + 1} {label}: wall {c['wall']:.3f} s, own CPU {c['cpu']:.3f} s | read "
              f"wall {c['read_wall']:.3f} s (CPU {c['read_cpu']:.3f}) | rest wall "
              f"{c['wall'] - c['read_wall']:.3f} s (CPU {c['cpu'] - c['read_cpu']:.3f}) | "
              f"write_cycle {c['steps']['write_cycle']:.3f} s, {c['written']:,} balances written")
        grew = ", ".join(f"{k} +{v:.0f}" for k, v in by_size(c["grew"])
                         if v >= 1 and "(" not in k) or "nothing"  # no nested steps
        firing = sum(a.get("state") == "firing" for a in c["poll"].get("alerts", []))
        print(f"      {firing} alerts firing; GC pauses {c['gc_s']:.3f} s; RSS now "
              f"{c['rss_now_mb']:.0f} MB, peak "
              f"{c['rss_mb']:.0f} MB, raised by (MB): {grew}")
    steady = cycles[1:]
    med = {k: statistics.median(c[k] for c in steady) for k in ("wall", "cpu", "read_wall",
                                                              "read_cpu")}
    med["write"] = statistics.median(c["steps"]["write_cycle"] for c in steady)
    med["written"] = statistics.median(c["written"] for c in steady)
    med["max_cpu"] = max(c["cpu"] for c in steady)
    med["max_wall"] = max(c["wall"] for c in steady)
    med["rss"] = max(c["rss_mb"] for c in cycles)
    print(f"  steady median of {len(steady)}: wall {med['wall']:.3f} s (max {med['max_wall']:.3f}),"
          f" own CPU {med['cpu']:.3f} s (max {med['max_cpu']:.3f}); read wall "
          f"{med['read_wall']:.3f} s, rest wall {med['wall'] - med['read_wall']:.3f} s, "
          f"write_cycle {med['write']:.3f} s ({med['written']:,.0f} balances written)")
    for which, c in (("cold cycle", cycles[0]), ("steady median", None)):
        parts = {k: (c["steps"][k] if c else statistics.median(x["steps"].get(k, 0.0)
                                                              for x in steady))
                 for k in cycles[0]["steps"] if k != "chain read"}
        if READ_CHAINS in parts:
            parts["_read_chains beyond client.read"] = parts.pop(READ_CHAINS) - (
                c["read_wall"] if c else med["read_wall"])
        parts["other (not in a timed step)"] = (
            (c["wall"] - c["read_wall"]) if c else med["wall"] - med["read_wall"]) - sum(
            v for k, v in parts.items() if "(in " not in k)
        print(f"  rest of the cycle by step, {which}: " + ", ".join(
            f"{k} {v * 1000:.1f} ms" for k, v in by_size(parts) if v >= 0.0005)
            + " (steps under 0.5 ms left out)")
    print(f"  peak RSS of the cycling process: {med['rss']:.0f} MB "
          f"(after load_config: {loaded['rss_mb']:.0f} MB)")
    if prof:
        print(f"  cProfile of one more steady cycle, cycle thread only (the read runs in another "
              f"thread: waiting for it shows as lock acquire; "
              f"wall {prof['wall']:.3f} s under the profiler):")
        print("\n".join("    " + ln for ln in prof["profile"].strip().splitlines()[:45]))
    return med


def restart(root: Path, cfg: Path, changer: Changer, n: int, share: float) -> float:
    """A daemon restarted on the warm store: a new process, one steady cycle."""
    loaded, cycles, changed = run_cycles(root, cfg, changer, n, ["cycle"], share, True)
    c = cycles[0]
    print(f"  restart on the warm store (new process, {changed[0]:,} changed): wall "
          f"{c['wall']:.3f} s, own CPU {c['cpu']:.3f} s, write_cycle "
          f"{c['steps']['write_cycle']:.3f} s ({c['written']:,} written); peak RSS "
          f"{c['rss_mb']:.0f} MB (after load_config {loaded['rss_mb']:.0f} MB)")
    return float(c["rss_mb"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addresses", type=int, default=10_000, help="first run size (default 10000)")
    p.add_argument("--large", type=int, default=100_000, help="second run size; 0 skips it")
    p.add_argument("--cycles", type=int, default=5, help="steady cycles after the cold one")
    p.add_argument("--changed", type=float, default=0.01, help="share of balances changed")
    p.add_argument("--naive-sample", type=int, default=1_000,
                   help="addresses the naive web3 loop reads (extrapolated to --addresses)")
    p.add_argument("--profile", action="store_true",
                   help="cProfile one more steady cycle (the part outside the chain read)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.addresses < HOT_ADDRESSES + 3 or args.cycles < 1:
        raise SystemExit(f"--addresses must be at least {HOT_ADDRESSES + 3}, --cycles at least 1")
    with devchain.Anvil(args=["--prune-history", "64"]) as node, \
            tempfile.TemporaryDirectory() as tmp:
        node.mine()
        devchain.install_multicall3(node)
        tokens = {"USD6": devchain.deploy_erc20(node, "Six", "USD6", 6),
                  "TOK18": devchain.deploy_erc20(node, "Eighteen", "TOK18", 18)}
        changer, funded = Changer(node, tokens), dict.fromkeys(WALLETS, 0)
        for n in [args.addresses] + ([args.large] if args.large > args.addresses else []):
            t = time.perf_counter()
            for w, count in sizes(n).items():
                fund(node, tokens, w, funded[w], count)
                funded[w] = count
            node.mine(CONFIRMATIONS + 2)
            root = Path(tmp) / str(n)
            root.mkdir()
            cfg = write_config(root, node.url, tokens, n)
            print(f"\nfunded {n:,} addresses and wrote the config in "
                  f"{time.perf_counter() - t:.1f} s")
            commands = ["cycle"] * (args.cycles + 1) + ["profile"] * args.profile
            loaded, cycles, changed = run_cycles(root, cfg, changer, n, commands,
                                                 args.changed, False)
            med = report(n, loaded, cycles, changed, args.profile)
            med["restart_rss"] = restart(root, cfg, changer, n, args.changed)
            targets(args, node, tokens, n, med)


def targets(args: argparse.Namespace, node: devchain.Anvil, tokens: dict[str, str], n: int,
            med: dict[str, float]) -> None:
    print("  targets:")
    if n == args.addresses:
        head = node.block_number()
        sample = min(args.naive_sample, sizes(n)["eth-deposits"])
        step = sizes(n)["eth-deposits"] // sample
        addrs = [address("eth-deposits", i * step) for i in range(sample)]
        naive_s = naive(node.url, tokens, addrs, (head - CONFIRMATIONS + 1, head)) * n / sample
        print(f"  naive web3 loop: {naive_s:.1f} s for the same read of {n:,} addresses "
              f"(extrapolated from {sample:,}); the auditor's read is "
              f"{naive_s / med['read_wall']:.0f}x faster, its whole cycle "
              f"{naive_s / med['wall']:.0f}x")
        note = "" if n == 10_000 else " (a target for 10,000)"
        verdict(med["cpu"] < 1.0, f"poll of {n:,} addresses x 3 assets under 1 s{note} of the "
                f"auditor's own time: steady own CPU median {med['cpu']:.3f} s "
                f"(max {med['max_cpu']:.3f}), wall {med['wall']:.3f} s")
        verdict(naive_s / med["wall"] >= 20, f">= 20x faster than naive: whole cycle "
                f"{naive_s / med['wall']:.0f}x (read alone {naive_s / med['read_wall']:.0f}x)")
        verdict(med["write"] < 0.2, f"cycle write, 1% changed, under 0.2 s{note}: write_cycle "
                f"median "
                f"{med['write']:.3f} s for {6 * n:,} balances in both views "
                f"({med['written']:,.0f} changed)")
    else:
        verdict(med["wall"] < 10, f"poll of {n:,} addresses under 10 s: steady wall median "
                f"{med['wall']:.2f} s (max {med['max_wall']:.2f}), own CPU {med['cpu']:.2f} s")
    verdict(med["rss"] < 250, f"peak RSS under 250 MB, first run on an empty store (cold "
            f"cycle + steady cycles): {med['rss']:.0f} MB")
    verdict(med["restart_rss"] < 250, f"peak RSS under 250 MB, daemon restarted on the warm "
            f"store: {med['restart_rss']:.0f} MB")


if __name__ == "__main__":
    main()
