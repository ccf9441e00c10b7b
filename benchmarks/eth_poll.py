"""How fast the auditor reads many Ethereum addresses, vs a naive per-address web3 loop.

Run by hand (not by CI), after `make deps`:

    .venv/bin/python benchmarks/eth_poll.py                  # 10k, then 100k addresses
    .venv/bin/python benchmarks/eth_poll.py --addresses 2000 --large 0

Starts anvil (`--prune-history 64`: 100k funded accounts stay fast), funds N
addresses with ETH and two TestTokens (6 and 18 decimals) through cheat codes,
then times `EthereumClient.read()` of ETH + 2 tokens + nonces, both views. Each
read runs in a child process so its peak RSS is the auditor's own. The naive
loop (web3 `get_balance` + contract `balanceOf` + `get_transaction_count` per
address, both blocks) runs on a sample and is extrapolated to N.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from eth_utils import to_checksum_address

from auditor import devchain
from auditor.chains import EthereumClient
from auditor.settings import AssetSettings, ChainSettings, Deployment, RpcEndpoint, Secret, WalletSettings, redact_url

CONFIRMATIONS = 12
ERC20_ABI = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}],
              "outputs": [{"name": "", "type": "uint256"}]}]


def address(i: int) -> str:
    return to_checksum_address(f"0x{0x5eed << 128 | i:040x}")


def expected(i: int) -> tuple[int, int, int]:
    """ETH, USD6 and TOK18 balances of address i (distinct, some above 2^64)."""
    return 10**18 + i, 1_000_000 * i + 1, 2**65 + i


def settings(url: str, usd6: str, tok18: str, n: int, multicall: bool = True
             ) -> tuple[ChainSettings, list[WalletSettings], dict[str, AssetSettings]]:
    chain = ChainSettings("ethereum", "ethereum",
                          (RpcEndpoint(Secret(url), redact_url(url), timeout=60),),
                          confirmations=CONFIRMATIONS, native_asset="ETH",
                          multicall3=devchain.MULTICALL3_ADDRESS if multicall else None)
    assets = {"ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
              "USD6": AssetSettings("USD6", "stablecoin", 6, (Deployment("ethereum", usd6, 6),)),
              "TOK18": AssetSettings("TOK18", "crypto", 18, (Deployment("ethereum", tok18, 18),))}
    wallet = WalletSettings("deposits", "ethereum", "deposit", "customer",
                            tuple(address(i) for i in range(n)), ("ETH", "USD6", "TOK18"))
    return chain, [wallet], assets


def child(args: argparse.Namespace) -> None:
    """One client, two reads (cold, then warm); prints a JSON line with the figures."""
    chain, wallets, assets = settings(args.url, args.usd6, args.tok18, args.addresses,
                                      not args.no_multicall)
    client = EthereumClient(chain)
    runs, rss = [], []
    previous = None  # a daemon holds the last reading while it takes the next one
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        reading = client.read(wallets, assets)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if not reading.ok:
            raise SystemExit(f"read failed: {reading.error}")
        previous = reading
    client.close()
    for i in (0, args.addresses // 2, args.addresses - 1):
        a = address(i).lower()
        got = tuple(reading.settled.balances[(a, s)] for s in ("ETH", "USD6", "TOK18"))
        assert got == expected(i), (i, got)
    assert previous is reading
    print(json.dumps({"cold": runs[0], "warm": runs[1], "rss_mb": rss,
                      "balances": 2 * len(reading.settled.balances)}))


def measure(url: str, usd6: str, tok18: str, n: int, multicall: bool = True) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", "--url", url, "--usd6", usd6, "--tok18", tok18,
           "--addresses", str(n)] + ([] if multicall else ["--no-multicall"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def fund(node: devchain.Anvil, usd6: str, tok18: str, start: int, stop: int) -> None:
    for lo in range(start, stop, 10_000):  # in slices: the funding maps stay small
        idx = range(lo, min(stop, lo + 10_000))
        node.set_balances({address(i): expected(i)[0] for i in idx})
        devchain.set_token_balances(node, usd6, {address(i): expected(i)[1] for i in idx})
        devchain.set_token_balances(node, tok18, {address(i): expected(i)[2] for i in idx})
    node.mine(CONFIRMATIONS + 2)


def naive(url: str, usd6: str, tok18: str, sample: int) -> float:
    """Seconds for the per-address web3 loop over `sample` addresses, both blocks."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    tokens = [w3.eth.contract(address=to_checksum_address(t), abi=ERC20_ABI) for t in (usd6, tok18)]
    head = w3.eth.block_number
    start = time.perf_counter()
    for block in (head - CONFIRMATIONS + 1, head):
        for i in range(sample):
            a = address(i)
            w3.eth.get_balance(a, block_identifier=block)
            for token in tokens:
                token.functions.balanceOf(a).call(block_identifier=block)
            w3.eth.get_transaction_count(a, block_identifier=block)
    return time.perf_counter() - start


def report(label: str, n: int, m: dict[str, object]) -> None:
    cold, warm = m["cold"], m["warm"]
    print(f"{label}: {n:,} addresses x (ETH + 2 tokens + nonce), both views = "
          f"{m['balances']:,} balances")
    print(f"  cold read: wall {cold[0]:.2f} s, own CPU {cold[1]:.2f} s")
    print(f"  warm read: wall {warm[0]:.2f} s, own CPU {warm[1]:.2f} s")
    rss = m["rss_mb"]
    print(f"  peak RSS of the reading process: {rss[0]:.0f} MB after one read, "
          f"{rss[1]:.0f} MB after a second read while holding the first")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addresses", type=int, default=10_000, help="first run size (default 10000)")
    p.add_argument("--large", type=int, default=100_000, help="second run size; 0 skips it")
    p.add_argument("--naive-sample", type=int, default=1_000,
                   help="addresses the naive web3 loop reads (extrapolated to --addresses)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-multicall", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--usd6", dest="usd6", help=argparse.SUPPRESS)
    p.add_argument("--tok18", dest="tok18", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    n = args.addresses
    with devchain.Anvil(args=["--prune-history", "64"]) as node:
        node.mine()
        devchain.install_multicall3(node)
        usd6 = devchain.deploy_erc20(node, "Six", "USD6", 6)
        tok18 = devchain.deploy_erc20(node, "Eighteen", "TOK18", 18)
        t = time.perf_counter()
        fund(node, usd6, tok18, 0, n)
        print(f"funded {n:,} addresses in {time.perf_counter() - t:.1f} s")
        small = measure(node.url, usd6, tok18, n)
        report("auditor (Multicall3)", n, small)
        batch = measure(node.url, usd6, tok18, n, multicall=False)
        print(f"  JSON-RPC batch path (no Multicall3): warm wall {batch['warm'][0]:.2f} s")
        sample = min(args.naive_sample, n)
        naive_s = naive(node.url, usd6, tok18, sample) * n / sample
        ratio = naive_s / small["warm"][0]
        print(f"naive web3 loop: {naive_s:.1f} s for {n:,} addresses "
              f"(extrapolated from {sample:,}); auditor is {ratio:.0f}x faster "
              f"(target >= 20x; own CPU target < 1 s)")
        if args.large > n:
            t = time.perf_counter()
            fund(node, usd6, tok18, n, args.large)
            print(f"funded {args.large:,} addresses in {time.perf_counter() - t:.1f} s")
            report("auditor (Multicall3)", args.large, measure(node.url, usd6, tok18, args.large))
            print("  (targets: wall < 10 s, peak RSS < 250 MB)")


if __name__ == "__main__":
    main()
