"""How fast `ingest_ethereum` reads ERC-20 transfers of many watched addresses, vs web3's event decoding.

Run by hand (not by CI), after `make deps`:

    .venv/bin/python benchmarks/flows.py                     # 50,000 logs, 10,000 watched addresses
    .venv/bin/python benchmarks/flows.py --logs 10000 --watched 2000

Starts anvil, deploys a TestBulkToken (6 decimals, asset decimals 18 so every
amount is rescaled) and makes `--logs` Transfer logs touching `--watched`
addresses with a few `mintMany`/`moveMany` transactions: a fifth minted to
watched addresses, two fifths from watched to foreign addresses, a fifth from
foreign to watched and a fifth between watched addresses (internal; each
matched by both the outgoing and the incoming filter). Then, in the same run:

- auditor: `ingest_ethereum` over the whole block range (blocks with their
  transactions, chunked raw `eth_getLogs`, hand decoding, traces, receipts,
  the reorg re-check), best and median of `--runs`;
- web3 `contract.events.Transfer().get_logs(argument_filters=…)` (from and to
  filters with the same watched lists, chunked the same way: 1,000 addresses
  per topic list) — fetch and decode;
- web3 `w3.eth.get_logs` + `contract.events.Transfer().process_log` per log.

Targets (issue 5): auditor under 2 s, and at least 5x faster than web3's
event decoding (the faster of the two web3 paths).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from auditor import devchain
from auditor.chains.ethereum_logs import TOPICS_PER_FILTER
from auditor.chains.ethereum_transfers import ingest_ethereum
from auditor.model import TransferBatch
from auditor.settings import AssetSettings, ChainSettings, Deployment, RpcEndpoint, Secret, WalletSettings, redact_url

TRANSFER_ABI = [{"type": "event", "name": "Transfer", "anonymous": False, "inputs": [
    {"name": "from", "type": "address", "indexed": True},
    {"name": "to", "type": "address", "indexed": True},
    {"name": "value", "type": "uint256", "indexed": False}]}]


def watched_address(i: int) -> str:
    return to_checksum_address(f"0x{0xa11ce << 128 | i:040x}")


def foreign_address(i: int) -> str:
    return to_checksum_address(f"0x{0xf0e << 128 | i:040x}")


def calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (keccak(text=signature)[:4] + encode(types, args)).hex()


def make_logs(node: devchain.Anvil, token: str, watched: Sequence[str], foreign: Sequence[str],
              logs: int, per_tx: int) -> tuple[int, int, dict[str, int]]:
    """Mint and move so that `logs` Transfer logs touch the watched addresses.
    Returns (first block, last block, expected count per direction)."""
    fifth = logs // 5
    n = len(watched)
    pick = [watched[i % n] for i in range(fifth)]
    out_to = [foreign[i % len(foreign)] for i in range(2 * fifth)]
    plan: list[tuple[str, list[str], list[str]]] = [
        ("mint", [], pick),
        ("move", [watched[i % n] for i in range(2 * fifth)], out_to),
        ("move", out_to[:fifth], pick),
        ("move", pick, [watched[(i + 1) % n] for i in range(fifth)]),
    ]
    first = node.block_number() + 1
    for kind, sources, targets in plan:
        for lo in range(0, len(targets), per_tx):
            to = targets[lo:lo + per_tx]
            if kind == "mint":
                data = calldata("mintMany(address[],uint256)", ["address[]", "uint256"], [to, 10])
            else:
                data = calldata("moveMany(address[],address[],uint256)", ["address[]", "address[]", "uint256"],
                                [sources[lo:lo + per_tx], to, 1])
            node.send_tx(devchain.DEV_ACCOUNTS[0], token, data=data)
    expected = {"in": 2 * fifth, "out": 2 * fifth, "internal": fifth}
    return first, node.block_number(), expected


def settings(url: str, token: str, watched: Sequence[str]
             ) -> tuple[ChainSettings, list[WalletSettings], dict[str, AssetSettings]]:
    chain = ChainSettings("ethereum", "ethereum", (RpcEndpoint(Secret(url), redact_url(url), timeout=60),),
                          confirmations=12, native_asset="ETH", multicall3=None)
    assets = {"ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
              "BULK": AssetSettings("BULK", "stablecoin", 18, (Deployment("ethereum", token, 6),))}
    wallets = [WalletSettings("deposits", "ethereum", "deposit", "customer", tuple(watched), ("ETH", "BULK"))]
    return chain, wallets, assets


def timed(runs: int, fn: Callable[[], Any]) -> tuple[list[float], Any, list[float]]:
    """(wall seconds per run, the last result, this process's CPU seconds per run)."""
    times, cpu, result = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, result, cpu


def web3_get_logs(url: str, token: str, watched: Sequence[str], first: int, last: int) -> int:
    """web3's own path: event.get_logs with argument filters (fetch + decode), deduplicated."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    event = w3.eth.contract(address=to_checksum_address(token), abi=TRANSFER_ABI).events.Transfer()
    seen = set()
    for lo in range(0, len(watched), TOPICS_PER_FILTER):
        chunk = list(watched[lo:lo + TOPICS_PER_FILTER])
        for side in ("from", "to"):
            for log in event.get_logs(from_block=first, to_block=last, argument_filters={side: chunk}):
                seen.add((log["blockNumber"], log["logIndex"]))
    return len(seen)


def web3_process_log(url: str, token: str, watched: Sequence[str], first: int, last: int) -> int:
    """Raw w3.eth.get_logs with hand-built topic filters, each log through process_log."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    event = w3.eth.contract(address=to_checksum_address(token), abi=TRANSFER_ABI).events.Transfer()
    topic0 = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    seen = set()
    for lo in range(0, len(watched), TOPICS_PER_FILTER):
        topics = ["0x" + "0" * 24 + a[2:].lower() for a in watched[lo:lo + TOPICS_PER_FILTER]]
        for shape in ([topic0, topics], [topic0, None, topics]):
            for raw in w3.eth.get_logs({"fromBlock": first, "toBlock": last,
                                        "address": to_checksum_address(token), "topics": shape}):
                log = event.process_log(raw)
                seen.add((log["blockNumber"], log["logIndex"]))
    return len(seen)


def check(batch: TransferBatch, expected: dict[str, int]) -> None:
    got = {"in": 0, "out": 0, "internal": 0}
    for t in batch.transfers:
        got[t.direction] += 1
    assert got == expected, (got, expected)
    assert all(t.amount in (10 * 10**12, 10**12) for t in batch.transfers)  # rescaled from 6 to 18 decimals


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logs", type=int, default=50_000, help="Transfer logs to make (default 50000)")
    p.add_argument("--watched", type=int, default=10_000, help="watched addresses (default 10000)")
    p.add_argument("--per-tx", type=int, default=2_500, help="transfers per setup transaction")
    p.add_argument("--runs", type=int, default=3, help="auditor runs (best and median are shown)")
    p.add_argument("--skip-process-log", action="store_true", help="skip the slow process_log baseline")
    args = p.parse_args()
    watched = [watched_address(i) for i in range(args.watched)]
    foreign = [foreign_address(i) for i in range(args.watched)]
    with devchain.Anvil(args=["--gas-limit", "1000000000"]) as node:
        node.mine()
        contract = devchain.compile_contracts()["TestBulkToken"]["bytecode"]
        token = node.deploy(contract, constructor_args=encode(["uint8"], [6]).hex())
        start = time.perf_counter()
        first, last, expected = make_logs(node, token, watched, foreign, args.logs, args.per_tx)
        print(f"setup: {sum(expected.values()):,} Transfer logs touching {args.watched:,} watched addresses "
              f"in blocks {first}..{last}, made in {time.perf_counter() - start:.1f} s")
        chain, wallets, assets = settings(node.url, token, watched)
        ours, batch, cpu = timed(args.runs, lambda: ingest_ethereum(chain, wallets, assets, first, last,
                                                               time.monotonic() + 120))
        check(batch, expected)
        best, median = min(ours), statistics.median(ours)
        print(f"auditor ingest_ethereum: best {best:.2f} s, median {median:.2f} s of {args.runs} "
              f"({len(batch.transfers):,} transfers; runs {', '.join(f'{t:.2f}' for t in ours)}; "
              f"own CPU median {statistics.median(cpu):.2f} s)")
        (web3_s,), count, _ = timed(1, lambda: web3_get_logs(node.url, token, watched, first, last))
        assert count == len(batch.transfers), (count, len(batch.transfers))
        print(f"web3 events.Transfer().get_logs (fetch + decode): {web3_s:.2f} s")
        baseline = web3_s
        if not args.skip_process_log:
            (process_s,), count, _ = timed(1, lambda: web3_process_log(node.url, token, watched, first, last))
            assert count == len(batch.transfers), (count, len(batch.transfers))
            print(f"web3 eth.get_logs + process_log: {process_s:.2f} s")
            baseline = min(baseline, process_s)
        ratio = baseline / median
        verdict = "ok" if median < 2.0 and ratio >= 5 else "MISSED"
        print(f"auditor is {ratio:.1f}x faster than the faster web3 path (median vs {baseline:.2f} s); "
              f"targets: < 2 s and >= 5x: {verdict}")


if __name__ == "__main__":
    main()
