"""Bitcoin poll: two descriptor wallets, 10,000 used addresses in all, gap limit 20,
against the local Esplora server (issue 4). Run by hand (not by CI):

    .venv/bin/python benchmarks/btc_poll.py                 # 10,000 used addresses
    .venv/bin/python benchmarks/btc_poll.py --used 2000     # quicker

Builds a simulated regtest chain of real signed transactions (auditor.devbtc) paying
one deposit to each used address of a `wpkh` wallet and of a 2-of-3
`wsh(sortedmulti)` wallet (half each), saves it, and serves it from the Esplora
simulator in a child process (its CPU is not counted as the client's). Then:

- derive: 10,000 `wpkh` addresses with `descriptors.derive` (bdk) vs
  bitcoinlib HD derivation of the same addresses (target < 2 s);
- full poll: `BitcoinClient.read` from scratch (no stored discovery, nothing
  derived yet) in a fresh child process: wall time, own CPU, peak RSS
  (target < 250 MB);
- resumed poll: the same wallets again with the discovery state the first
  poll returned (what the daemon stores), in the same process;
- naive: bitcoinlib derivation and one sequential keep-alive request per
  address (`/address/:a/txs`, which says whether it is used and its coins)
  walking each branch until 20 unused in a row, as a script without this
  project would. The poll must be ≥ 5× faster than this.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child_poll(url: str, spec_file: str) -> None:
    """The measured poll, in a process of its own so peak RSS is the poll's."""
    from auditor.chains.bitcoin.client import BitcoinClient
    from auditor.settings import BackendSettings, ChainSettings, Secret, WalletSettings

    spec = json.loads(Path(spec_file).read_text())
    backend = BackendSettings(type="esplora", url=Secret(url), label=url, timeout=30, concurrency=16)
    chain = ChainSettings(name="bitcoin", type="bitcoin", network="regtest", confirmations=3,
                          max_head_age=7200, native_asset="BTC", backends=(backend,))
    wallets = [WalletSettings(name=w["name"], chain="bitcoin", tier="deposit", role="customer",
                              addresses=(), assets=("BTC",), descriptors=(w["descriptor"],), gap_limit=20)
               for w in spec["wallets"]]
    out: dict[str, object] = {}
    client = BitcoinClient(chain)
    c0, t0 = time.process_time(), time.perf_counter()
    r = client.read(wallets, {}, time.monotonic() + 600)
    out["full_s"], out["full_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    assert r.ok and r.settled is not None, r.error
    out["used"] = sum(len(a) for a in (r.wallet_addresses or {}).values())
    out["sats"] = sum(r.settled.balances.values())
    out["full_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    client.resume(r.discovery)
    c0, t0 = time.process_time(), time.perf_counter()
    r2 = client.read(wallets, {}, time.monotonic() + 600)
    out["resumed_s"], out["resumed_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    assert r2.ok and r2.settled is not None and sum(r2.settled.balances.values()) == out["sats"]
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    client.close()
    print(json.dumps(out))


def _naive(url: str, wallets: list[object], gap: int) -> tuple[float, int, int]:
    """bitcoinlib derivation + one sequential request per address until the gap."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    t0 = time.perf_counter()
    used = sats = 0
    for w in wallets:
        for branch in (0, 1):
            unused, index = 0, 0
            while unused < gap:
                address = w.address(branch, index)  # type: ignore[attr-defined]  # bitcoinlib HD derivation
                conn.request("GET", f"{parts.path}/address/{address}/txs")
                txs = json.loads(conn.getresponse().read())
                if txs:
                    used, unused = used + 1, 0
                    script = w.script(branch, index)  # type: ignore[attr-defined]
                    sats += sum(o["value"] for t in txs for o in t["vout"] if o["scriptpubkey"] == script)
                else:
                    unused += 1
                index += 1
    return time.perf_counter() - t0, used, sats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--used", type=int, default=10_000, help="used addresses in all (default 10,000)")
    ap.add_argument("--child", nargs=2, metavar=("URL", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child_poll(*args.child)
        return

    import auditor.devbtc  # noqa: F401  # sets BCL_DATA_DIR before bitcoinlib loads
    from auditor.chains.bitcoin import descriptors
    from auditor.devbtc.chain import SimChain
    from auditor.devbtc.keys import TestWallet

    per = args.used // 2
    ws = [TestWallet("wpkh", "bench"), TestWallet("wsh-sortedmulti", "bench")]

    d = ws[0].branch_descriptor(0)
    t0 = time.perf_counter()
    fast = descriptors.derive(d, "regtest", 0, 10_000)
    derive_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [ws[0].address(0, i) for i in range(10_000)]
    naive_derive_s = time.perf_counter() - t0
    assert [a for a, _ in fast] == slow, "bdk and bitcoinlib disagree on the addresses"
    print(f"derive 10,000 wpkh addresses: {derive_s:.2f} s (bitcoinlib {naive_derive_s:.1f} s, "
          f"{naive_derive_s / derive_s:.0f}x)")

    t0 = time.perf_counter()
    chain = SimChain(check_signatures=False, faucet_coins=max(50, args.used // 400 + 10))
    outputs = []
    for w in ws:
        addrs = descriptors.derive(w.branch_descriptor(0), "regtest", 0, per)
        outputs += [(a, 10_000 + i) for i, (a, _s) in enumerate(addrs)]
    chain.pay_batched(outputs, per_tx=10)
    chain.mine(3)
    tmp = Path(tempfile.mkdtemp(prefix="btc-poll-"))
    chain.save(str(tmp / "chain.pickle"))
    expect = sum(v for _a, v in outputs)
    print(f"chain: {len(outputs):,} funded addresses in {time.perf_counter() - t0:.1f} s")

    server = subprocess.Popen([sys.executable, "-m", "auditor.devbtc.serve", "esplora", "--chain",
                               str(tmp / "chain.pickle")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
        spec = tmp / "spec.json"
        spec.write_text(json.dumps({"wallets": [{"name": w.name + "-" + w.kind, "descriptor": w.descriptor}
                                                for w in ws]}))
        res = json.loads(subprocess.run([sys.executable, __file__, "--child", url, str(spec)],
                                        check=True, capture_output=True, text=True).stdout)
        assert res["sats"] == expect and res["used"] == len(outputs), res
        naive_s, naive_used, naive_sats = _naive(url, [TestWallet(w.kind, w.name) for w in ws], 20)  # cold caches
        assert (naive_used, naive_sats) == (len(outputs), expect)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(10)
    print(f"full poll ({res['used']:,} used addresses + gaps): {res['full_s']:.2f} s wall, "
          f"{res['full_cpu_s']:.2f} s own CPU, peak RSS {res['full_rss_mb']:.0f} MB")
    print(f"resumed poll: {res['resumed_s']:.2f} s wall, {res['resumed_cpu_s']:.2f} s own CPU "
          f"(peak RSS after both {res['rss_mb']:.0f} MB)")
    print(f"naive (bitcoinlib derivation + sequential requests): {naive_s:.1f} s")
    print(f"ratio: full poll {naive_s / res['full_s']:.1f}x faster, resumed {naive_s / res['resumed_s']:.1f}x "
          "(target: >= 5x)")


if __name__ == "__main__":
    main()
