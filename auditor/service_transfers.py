"""One cycle's transfer ingestion: from each chain's ingestion cursor to its watch head.

Ethereum: the blocks after the stored cursor up to the watch head W, at most
`MAX_BLOCKS_PER_CYCLE` per cycle (after downtime the backlog is read over the
next cycles, none skipped). Before that, the stored hash of the cursor block
is compared with the chain's: when it differs (a reorg), the stored hashes
are walked back to the last block that still matches, the transfers above it
are rolled back (`TransferWrite.rollback_from`) and read again. A first run
starts at W (nothing before the auditor started is replayed as "new").

Bitcoin: the client reads the transfers with the coins (`ChainReading.transfers`).

A chain whose ingestion fails this cycle keeps its cursor (read again next
cycle) and gets a warning problem on its reading: its balances still count,
and the drain rules fall back to balances for it (`tracked` excludes it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chains.ethereum_rpc import RpcFailure
from .model import ChainReading, ProviderProblem, Transfer, TransferBatch
from .settings import Settings
from .store import Store
from .store_transfers import KEEP_BLOCK_HASHES, TransferWrite

__all__ = ["Ingested", "MAX_BLOCKS_PER_CYCLE", "ingest_chains"]

MAX_BLOCKS_PER_CYCLE = 2000
log = logging.getLogger("auditor.transfers")


@dataclass
class Ingested:
    batches: dict[str, TransferBatch] = field(default_factory=dict)  # chain → what was read
    writes: dict[str, TransferWrite] = field(default_factory=dict)  # chain → what to store
    new: list[Transfer] = field(default_factory=list)  # first seen this cycle (to evaluate)
    removed: list[dict[str, Any]] = field(default_factory=list)  # stored transfers a reorg took away
    tracked: set[str] = field(default_factory=set)  # chains ingested up to their watch head
    capable: set[str] = field(default_factory=set)  # chains whose client ingests transfers at all
    problems: dict[str, ProviderProblem] = field(default_factory=dict)  # chain → why not (warning)


def ingest_chains(settings: Settings, store: Store, readings: Mapping[str, ChainReading],
                  deadline: float, clients: Mapping[str, Any]) -> Ingested:
    """Transfers of every readable chain whose client can ingest them: Ethereum
    clients with `ingest_transfers`/`block_hashes`, Bitcoin clients that read them
    with the coins (`resume_transfers`). Other clients (test doubles) are skipped."""
    out = Ingested()
    for name, client in clients.items():
        if hasattr(client, "ingest_transfers") or hasattr(client, "resume_transfers"):
            out.capable.add(name)
    for name, r in readings.items():
        client = clients.get(name)
        if not r.ok or r.watch is None or name not in out.capable:
            continue
        chain = settings.chains[name]
        try:
            if hasattr(client, "ingest_transfers"):
                _ingest_ethereum(settings, store, name, r, deadline, out, client)
            else:
                _take_bitcoin(store, name, r, out)
        except RpcFailure as exc:
            out.problems[name] = ProviderProblem(
                "warning", chain.rpc[0].label if chain.rpc else name,
                f"transfers not ingested this cycle ({exc}); read again next cycle, drains judged "
                "on balances meanwhile")
    return out


def _ingest_ethereum(settings: Settings, store: Store, name: str, r: ChainReading, deadline: float,
                     out: Ingested, client: Any) -> None:
    assert r.watch is not None
    head = r.watch.block.number
    cursor = store.ingest_cursor(name)
    write = TransferWrite(name)
    if cursor is None:
        cursor = head - 1  # first run: from the watch head on
    else:
        rollback = _reorg_point(store, name, cursor, deadline, lambda ns: client.block_hashes(ns, deadline))
        if rollback is not None:
            write.rollback_from = rollback
            out.removed += store.transfers_from(name, rollback)
            cursor = rollback - 1
    if cursor >= head:  # nothing new (or the head went back: wait for it)
        if write.rollback_from is not None:
            write.cursor = cursor
            out.writes[name] = write
        out.tracked.add(name)
        return
    first, last = cursor + 1, min(head, cursor + MAX_BLOCKS_PER_CYCLE)
    wallets = [w for w in settings.wallets if w.chain == name]
    batch = client.ingest_transfers(wallets, settings.assets, first, last, deadline)
    _keep(store, name, batch, write, out)
    if last == head:
        out.tracked.add(name)


def _take_bitcoin(store: Store, name: str, r: ChainReading, out: Ingested) -> None:
    batch: TransferBatch | None = getattr(r, "transfers", None)
    if batch is None:
        return
    write = TransferWrite(name, drop_mempool=True)
    rollback = getattr(r, "transfers_rollback", None)
    if rollback is not None:
        write.rollback_from = rollback
        out.removed += store.transfers_from(name, rollback)
    _keep(store, name, batch, write, out)
    out.tracked.add(name)


def _keep(store: Store, name: str, batch: TransferBatch, write: TransferWrite, out: Ingested) -> None:
    """Record the batch; transfers not stored before (or stored only from the mempool) are new."""
    known = store.stored_transfer_keys(name, [t.tx for t in batch.transfers])
    seen = {(tx, idx, kind) for tx, idx, kind, _block in known}
    if write.rollback_from is not None:  # rolled-back rows are gone: their re-reading is new again
        seen = {(tx, idx, kind) for tx, idx, kind, block in known
                if block == 0 or block < write.rollback_from}
    out.new += [t for t in batch.transfers if (t.tx, t.index, t.kind) not in seen]
    write.block_hashes = dict(batch.block_hashes)
    write.cursor = batch.last if batch.last >= batch.first else write.cursor
    out.batches[name] = batch
    out.writes[name] = write


def _reorg_point(store: Store, name: str, cursor: int, deadline: float,
                 fetch: Any) -> int | None:
    """The first ingested block no longer on the chain, or None. One hash is read
    when nothing changed (the cursor block's: its ancestors follow from it)."""
    stored = store.ingest_hashes(name, cursor - KEEP_BLOCK_HASHES)
    if cursor not in stored:
        return None
    now: dict[int, str] = fetch([cursor])
    if now.get(cursor) == stored[cursor]:
        return None
    numbers: Sequence[int] = sorted(stored)
    now = fetch(list(numbers))
    for n in numbers:
        if now.get(n) != stored[n]:
            return n
    return None  # pragma: no cover - the cursor block differed above
