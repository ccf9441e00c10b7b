"""Transfer ingestion on an EVM chain: every movement touching an own address in blocks first..last.

Read through the chain's first RPC endpoint, in three steps, several POSTs in
flight: (1) the blocks with their transactions, and the ERC-20 Transfer /
Approval logs of watched addresses (`ethereum_logs`); (2) internal ETH
transfers from a trace API (`ethereum_traces`) and the receipts of
transactions that need one (status, fee); (3) the last block's hash again.
Everything read must belong to the same blocks (hashes, parent links): a reorg
during the read, a malformed answer or a passed deadline raises `RpcFailure`
and nothing is returned. A batch is whole or absent.

Kinds and indexes (`model.Transfer`): an ERC-20 Transfer log is "token" at
its log index, an Approval "approval" (recipient the spender, amount the
allowance); the ETH value of a successful transaction is "native" at -1, its
gas fee "fee" at -2 (charged to an own sender; recipient ""); ETH a contract
moves is "native" at -3 − its position in the transaction's call tree; a
beacon-chain withdrawal to an own address is "native" at -1 with tx
"withdrawal:<index>" and sender "". Transfers come in (block, transaction,
then native value, internal calls, logs, fee) order.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from ..model import Transfer, TransferBatch, TransferKind
from ..settings import AssetSettings, ChainSettings, WalletSettings
from ..units import rescale
from .ethereum_blocks import BlockInfo, Receipt, TxInfo, block_tasks, check_chain, header_tasks, receipts_of
from .ethereum_logs import TokenLog, log_tasks
from .ethereum_rpc import RpcConnection, RpcFailure
from .ethereum_traces import InternalCall, TraceTask, call_tracer_tasks, trace_block_tasks

__all__ = ["PARALLEL_POSTS", "ingest_ethereum", "block_hashes"]

PARALLEL_POSTS = 4  # requests in flight: nodes answer getLogs and traces on several cores
WEI_DECIMALS = 18  # the native coin's base units when no deployment says otherwise
T = TypeVar("T")


class _CollectorPause:
    """Pauses Python's cycle collector while a batch is read (re-entrant, any thread).

    Reading 50,000 logs makes some 300,000 container objects (JSON dicts, decoded
    logs, transfers) and no reference cycles; the collector would walk the growing
    heap again and again for nothing: measured 25-30% of the CPU time of the
    benchmark. Reference counting still frees everything as usual."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                gc.enable()


_COLLECTOR_PAUSE = _CollectorPause()


@dataclass(frozen=True)
class _Watch:
    """What to look for on this chain."""

    chain: str
    owners: dict[str, str]  # lowercase address → wallet name
    tokens: dict[str, tuple[str, int, int]]  # lowercase token → (asset, token decimals, asset decimals)
    native: tuple[str, int, int] | None  # (asset, coin decimals, asset decimals) of the chain's coin

    @property
    def watched(self) -> list[str]:
        return sorted(self.owners)

    def needs_receipt(self, tx: TxInfo) -> bool:
        """Own senders (fee, status) and value towards own addresses (did it succeed?)."""
        owners = self.owners
        return tx.sender in owners or (tx.value > 0 and (tx.to is None or tx.to in owners))


def _watch(chain: ChainSettings, wallets: Sequence[WalletSettings],
           assets: Mapping[str, AssetSettings]) -> _Watch:
    owners: dict[str, str] = {}
    for wallet in wallets:
        if wallet.chain == chain.name:
            for address in wallet.addresses:
                owners.setdefault(address.lower(), wallet.name)
    tokens: dict[str, tuple[str, int, int]] = {}
    native = None
    for symbol, asset in assets.items():
        deployment = asset.on_chain(chain.name)
        if deployment is not None and deployment.token:
            tokens.setdefault(deployment.token.lower(), (symbol, deployment.decimals, asset.decimals))
        elif symbol == chain.native_asset:
            native = (symbol, deployment.decimals if deployment else WEI_DECIMALS, asset.decimals)
    return _Watch(chain.name, owners, tokens, native)


def ingest_ethereum(chain: ChainSettings, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
                    first: int, last: int, deadline: float) -> TransferBatch:
    """The transfers of blocks first..last (inclusive) touching the wallets' addresses on `chain`.

    Raises `RpcFailure` on any trouble (never a partial batch), ValueError for a
    range that is not one or a chain without an RPC endpoint.
    """
    if not 0 <= first <= last:
        raise ValueError(f"block range {first}..{last} is empty or negative")
    if not chain.rpc:
        raise ValueError(f"chain {chain.name!r} has no rpc endpoint")
    conn = RpcConnection(chain.rpc[0])
    try:
        with _COLLECTOR_PAUSE:
            return _ingest(conn, _watch(chain, wallets, assets), first, last, deadline)
    finally:
        conn.close()


def block_hashes(chain: ChainSettings, numbers: Sequence[int], deadline: float) -> dict[int, str]:
    """The current hashes of these blocks (to find reorgs). A block the node does not have
    (a reorg to a shorter chain, a node behind) raises `RpcFailure`: it is never guessed."""
    if not chain.rpc:
        raise ValueError(f"chain {chain.name!r} has no rpc endpoint")
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    conn = RpcConnection(chain.rpc[0])
    try:
        return {b.number: b.hash for part in _run_all(header_tasks(conn, wanted, deadline), deadline) for b in part}
    finally:
        conn.close()


def _ingest(conn: RpcConnection, watch: _Watch, first: int, last: int, deadline: float) -> TransferBatch:
    full = watch.native is not None  # without a native asset the transactions are not needed
    reading_blocks = block_tasks(conn, first, last, full, deadline)
    reading_logs = log_tasks(conn, list(watch.tokens), watch.watched, first, last, deadline)
    reads: list[Callable[[], list[Any]]] = [*reading_blocks, *reading_logs]
    answers = _run_all(reads, deadline)
    split = len(reading_blocks)
    blocks: list[BlockInfo] = [b for part in answers[:split] for b in part]
    # A transfer between two watched addresses comes from both filters: keep one.
    logs: dict[int, TokenLog] = {log.block << 32 | log.log_index: log for part in answers[split:] for log in part}
    check_chain(blocks)
    by_number = {b.number: b for b in blocks}
    _check_logs(logs.values(), by_number, full)
    notes: list[str] = []
    calls: list[InternalCall] = []
    receipts: dict[str, Receipt] = {}
    if watch.native is not None:
        traced = _internal_calls(conn, [b for b in blocks if b.txs], deadline)
        if traced is None:
            notes.append(f"{watch.chain}: the node answers neither trace_block nor debug_traceBlockByHash; "
                         "ETH moved by contracts (internal transfers) is not listed, only reconciled "
                         "through balances")
        calls = traced or []
        needed = {b: [tx for tx in b.txs if watch.needs_receipt(tx)] for b in blocks}
        receipts = receipts_of(conn, needed, deadline, lambda tasks: _run_all(tasks, deadline))
    else:
        notes.append(f"{watch.chain}: no native asset configured: ETH transfers and fees are not ingested")
    _check_unchanged(conn, blocks[-1], deadline)
    transfers = _Builder(watch, by_number).build(logs.values(), calls, receipts)
    return TransferBatch(watch.chain, first, last, tuple(transfers), {b.number: b.hash for b in blocks},
                         tuple(notes))


def _check_logs(logs: Iterable[TokenLog], by_number: Mapping[int, BlockInfo], full: bool) -> None:
    """Logs must come from the blocks read (and, when their transactions were read, from one of them)."""
    for log in logs:
        block = by_number[log.block]
        if log.block_hash != block.hash:
            raise RpcFailure(f"a log of block {log.block} names another block hash than the block read "
                             "(reorg during the read?); the next cycle retries")
        if full and (log.tx_index >= len(block.txs) or block.txs[log.tx_index].hash != log.tx):
            raise RpcFailure(f"log {log.log_index} of block {log.block} names a transaction the block "
                             "does not have at that position")


def _internal_calls(conn: RpcConnection, blocks: list[BlockInfo], deadline: float) -> list[InternalCall] | None:
    """Internal ETH transfers from the first trace API the node has; None when it has none."""
    if not blocks:
        return []
    apis: tuple[Callable[[RpcConnection, Sequence[BlockInfo], float | None], list[TraceTask]], ...] = (
        trace_block_tasks, call_tracer_tasks)
    for tasks in apis:
        parts = _run_all(tasks(conn, blocks, deadline), deadline)
        if all(p is not None for p in parts):
            return [c for p in parts if p is not None for c in p]
        if any(p is not None for p in parts):
            raise RpcFailure("the trace API answered for some blocks and not for others; "
                             "is the RPC URL a load balancer over different nodes?")
    return None


def _check_unchanged(conn: RpcConnection, last: BlockInfo, deadline: float) -> None:
    """The last block is still the one read: logs and traces came from the same chain."""
    (again,) = _run_all(header_tasks(conn, [last.number], deadline), deadline)
    if again[0].hash != last.hash:
        raise RpcFailure(f"block {last.number} changed during the read (reorg); the next cycle retries")


class _Builder:
    """Turns what was read into `Transfer`s in order. Sort keys are single ints
    (block, tx index, group, n packed): 50,000 tuples would cost the collector more."""

    def __init__(self, watch: _Watch, blocks: Mapping[int, BlockInfo]) -> None:
        self.watch = watch
        self.blocks = blocks
        self.keys: list[int] = []
        self.transfers: list[Transfer] = []

    def build(self, logs: Iterable[TokenLog], calls: Sequence[InternalCall],
              receipts: Mapping[str, Receipt]) -> list[Transfer]:
        tokens = self.watch.tokens
        for log in logs:
            asset, token_decimals, asset_decimals = tokens[log.token]
            amount = log.value if token_decimals == asset_decimals else \
                _rescaled(log.value, token_decimals, asset_decimals, log.token)
            self._add(_key(log.block, log.tx_index, 2, log.log_index), log.block, log.tx, log.log_index,
                      "approval" if log.approval else "token", asset, amount, log.sender, log.recipient)
        if self.watch.native is not None:
            self._native(calls, receipts)
        keys, transfers = self.keys, self.transfers
        return [transfers[i] for i in sorted(range(len(keys)), key=keys.__getitem__)]

    def _native(self, calls: Sequence[InternalCall], receipts: Mapping[str, Receipt]) -> None:
        owners = self.watch.owners
        for block in self.blocks.values():
            for tx in block.txs:
                receipt = receipts.get(tx.hash)
                if receipt is None:
                    continue  # touches no own address at the top level
                recipient = tx.to if tx.to is not None else (receipt.created or "")
                if receipt.ok and tx.value and (tx.sender in owners or recipient in owners):
                    self._eth(block.number, tx.index, 0, 0, tx.hash, -1, tx.value, tx.sender, recipient)
                if tx.sender in owners:
                    self._eth(block.number, tx.index, 3, 0, tx.hash, -2, receipt.fee, tx.sender, "", "fee")
            for i, (index, address, wei) in enumerate(block.withdrawals):
                if address in owners and wei:  # after the block's transactions
                    self._eth(block.number, len(block.txs) + i, 0, 0, f"withdrawal:{index}", -1, wei, "", address)
        for call in calls:
            if call.sender in owners or call.recipient in owners:
                tx = self.blocks[call.block].txs[call.tx_index]
                self._eth(call.block, call.tx_index, 1, call.position, tx.hash, -3 - call.position,
                          call.value, call.sender, call.recipient)

    def _eth(self, block: int, tx_index: int, group: int, n: int, tx: str, index: int, wei: int, sender: str,
             recipient: str, kind: TransferKind = "native") -> None:
        assert self.watch.native is not None
        asset, coin_decimals, asset_decimals = self.watch.native
        self._add(_key(block, tx_index, group, n), block, tx, index, kind, asset,
                  _rescaled(wei, coin_decimals, asset_decimals, asset), sender, recipient)

    def _add(self, key: int, number: int, tx: str, index: int, kind: TransferKind, asset: str,
             amount: int, sender: str, recipient: str) -> None:
        owners = self.watch.owners
        wallet_from, wallet_to = owners.get(sender), owners.get(recipient)
        if wallet_from is not None:
            counterparties = (recipient,) if wallet_to is None and recipient else ()
        else:
            counterparties = (sender,) if sender else ()
        block = self.blocks[number]
        self.keys.append(key)
        self.transfers.append(Transfer(self.watch.chain, number, block.hash, tx, index, kind, asset, amount,
                                       sender, recipient, wallet_from, wallet_to, counterparties, block.timestamp))


def _key(block: int, tx_index: int, group: int, n: int) -> int:
    """Order: block, transaction, then native value (0), internal calls (1), logs (2), fee (3)."""
    return block << 96 | tx_index << 64 | group << 48 | n


def _rescaled(amount: int, from_decimals: int, to_decimals: int, what: str) -> int:
    try:
        return rescale(amount, from_decimals, to_decimals)
    except ValueError:
        raise RpcFailure(f"{amount} base units of {what} ({from_decimals} decimals) do not fit the asset's "
                         f"{to_decimals} decimals: check the asset's decimals in the config") from None


def _run_all(tasks: Sequence[Callable[[], T]], deadline: float | None) -> list[T]:
    """Run the tasks, a few at a time; results in task order. The first failure (or the
    deadline) ends the whole step: no partial answer is ever used."""
    if deadline is not None and time.monotonic() >= deadline:
        raise RpcFailure("the read's deadline passed")
    if len(tasks) <= 1:
        return [task() for task in tasks]
    pool = ThreadPoolExecutor(max_workers=min(PARALLEL_POSTS, len(tasks)), thread_name_prefix="eth-ingest")
    try:
        futures = [pool.submit(task) for task in tasks]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, pending = wait(futures, timeout=timeout, return_when=FIRST_EXCEPTION)
        for future in futures:
            failure = future.exception() if future.done() and not future.cancelled() else None
            if failure is not None:
                raise failure
        if pending:
            raise RpcFailure("no answer before the read's deadline")
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck request ends on its own timeout
