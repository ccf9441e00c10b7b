"""Esplora REST backend (Blockstream esplora / electrs API).

Per address, one `GET /address/:a/txs` (up to 50 mempool transactions, then
the newest 25 confirmed, each with its inputs' prevouts) is the whole history
of an unused address or a small one, and the coins follow from it exactly:
every output paying the script, spent by the input that names it. Only an
address with 25 or more confirmed transactions needs more: its
`chain_stats.tx_count`, then `/txs/chain/:last_seen` pages back to the part
of its history already verified by an earlier poll (kept per script, anchored
to a block hash that is checked again), and the count must match exactly — a
page that skips or repeats transactions shows up as a mismatch. A mismatch is
retried once (a block may arrive between two requests), then it is an error.

`transactions` reads one `GET /tx/:txid` per transaction: its inputs carry
their prevouts (script and value) and its status the block (esplora_json.py).

Anything else unexpected (HTTP status, timeout, malformed JSON, a value that
is not an integer number of satoshis, more than 50 unconfirmed transactions
on one address, which Esplora cannot list) raises `BackendError` naming the
backend by its label.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ...settings import BackendSettings
from .details import wanted_txids
from .esplora_http import HttpError, HttpPool, LoopThread
from .esplora_json import Bad, array, hash64, nonneg, obj, sat, tx_detail
from .types import BackendError, Coin, ScriptRef, ScriptState, Tip, TxDetail

__all__ = ["EsploraBackend", "CHAIN_PAGE", "MEMPOOL_LIMIT"]

CHAIN_PAGE = 25  # confirmed transactions per /txs and /txs/chain page (electrs CHAIN_TXS_PER_PAGE)
MEMPOOL_LIMIT = 50  # unconfirmed transactions /txs lists at most (electrs MAX_MEMPOOL_TXS)
_T = TypeVar("_T")
_I = TypeVar("_I")


class _Mismatch(Exception):
    """Pages and counts disagree: retried once, then a BackendError."""


@dataclass(frozen=True)
class _Tx:
    """One history entry, reduced to what it does to the script being read."""

    txid: str
    height: int  # 0 = mempool
    block_hash: str | None
    funded: tuple[tuple[int, int], ...]  # (vout, value) paying the script
    spent: tuple[tuple[str, int], ...]  # outpoints of the script this tx spends


@dataclass(frozen=True)
class _Verified:
    """A script's confirmed history checked complete, up to and including block `height`."""

    height: int
    block_hash: str
    txs: tuple[_Tx, ...]  # newest first


def _parse_tx(raw: Any, script: str) -> _Tx:
    tx = obj(raw, "a transaction")
    txid = hash64(tx.get("txid"), "txid")
    status = obj(tx.get("status"), "status")
    confirmed = status.get("confirmed")
    if confirmed is True:
        height = nonneg(status.get("block_height"), "block_height")
        block_hash: str | None = hash64(status.get("block_hash"), "block_hash")
        if height == 0:
            raise Bad("a confirmed transaction at height 0")
    elif confirmed is False:
        height, block_hash = 0, None
    else:
        raise Bad("status.confirmed is not a boolean")
    funded = []
    for n, out in enumerate(array(tx.get("vout"), "vout")):
        out = obj(out, "an output")
        value = sat(out.get("value"))
        if out.get("scriptpubkey") == script:
            funded.append((n, value))
    spent = []
    for inp in array(tx.get("vin"), "vin"):
        inp = obj(inp, "an input")
        prevout = inp.get("prevout")
        if prevout is None:
            if inp.get("is_coinbase") is not True:
                raise Bad("an input without prevout that is not a coinbase")
            continue
        prevout = obj(prevout, "prevout")
        sat(prevout.get("value"))
        if prevout.get("scriptpubkey") == script:
            spent.append((hash64(inp.get("txid"), "vin txid"), nonneg(inp.get("vout"), "vin vout")))
    if not funded and not spent:
        raise Bad(f"transaction {txid} is in the history but neither pays nor spends the script")
    return _Tx(txid, height, block_hash, tuple(funded), tuple(spent))


def _coins(txs: Sequence[_Tx], since: int) -> tuple[Coin, ...]:
    """The coins of a complete history: unspent, spent in the mempool, or spent above `since`."""
    created = {(t.txid, n): (value, t.height) for t in txs for n, value in t.funded}
    spends: dict[tuple[str, int], _Tx] = {}
    for t in txs:
        for outpoint in t.spent:
            if outpoint not in created:
                raise _Mismatch(f"a spend of {outpoint[0]}:{outpoint[1]}, which the history does not create")
            if outpoint in spends:
                raise _Mismatch(f"coin {outpoint[0]}:{outpoint[1]} spent twice")
            spends[outpoint] = t
    out = []
    for (txid, n), (value, height) in created.items():
        by = spends.get((txid, n))
        if by is None or by.height == 0 or by.height > since:
            out.append(Coin(txid, n, value, height, None if by is None else by.height,
                            None if by is None else by.txid))
    return tuple(sorted(out, key=lambda c: (c.height or 1 << 62, c.txid, c.vout)))


class EsploraBackend:
    """`types.Backend` over an Esplora REST API root (e.g. https://host/api)."""

    def __init__(self, settings: BackendSettings, network: str):
        self.label = settings.label
        self.network = network
        self._timeout = float(settings.timeout)
        self._concurrency = max(1, settings.concurrency)
        try:
            self._http = HttpPool(settings.url.reveal(), self._concurrency)
        except ValueError as exc:
            raise BackendError(f"{self.label}: {exc}") from None
        self._loop: LoopThread | None = None
        self._loop_lock = threading.Lock()
        self._verified: dict[str, _Verified] = {}
        self.requests = 0  # made so far (benchmarks report requests per address)

    # ------------------------------------------------------------ Backend

    def tip(self, deadline: float) -> Tip:
        async def read() -> Tip:
            block_hash = hash64((await self._text("/blocks/tip/hash", deadline)), "tip hash")
            return await self._block(block_hash, None, deadline)
        return self._run(read(), deadline)

    def block(self, height: int, deadline: float) -> Tip:
        """The block at `height` (hash and header time) on this server's best chain."""
        async def read() -> Tip:
            return await self._block(await self._height_hash(height, deadline), height, deadline)
        return self._run(read(), deadline)

    def block_hash(self, height: int, deadline: float) -> str:
        return self._run(self._height_hash(height, deadline), deadline)

    def scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        if not refs:
            return {}
        return self._run(self._scan(refs, since, deadline), deadline)

    def transactions(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        """One `GET /tx/:txid` per transaction (`concurrency` at a time): its inputs
        carry their prevouts and its status the block."""
        wanted = wanted_txids(txids)
        if not wanted:
            return {}
        return self._run(self._details(wanted, deadline), deadline)

    def close(self) -> None:
        with self._loop_lock:
            if self._loop is not None:
                self._loop.loop.call_soon_threadsafe(self._http.close)
                self._loop.stop()
                self._loop = None

    # ------------------------------------------------------------ plumbing

    def _run(self, coro: Awaitable[_T], deadline: float) -> _T:
        if deadline <= time.monotonic():
            if asyncio.iscoroutine(coro):
                coro.close()  # never started: close it rather than leave it unawaited
            raise BackendError(f"{self.label}: no complete answer before the poll deadline")
        with self._loop_lock:  # the client may call from several threads
            if self._loop is None:
                self._loop = LoopThread(f"esplora {self.label}")
            loop = self._loop

        async def bounded() -> _T:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    return await coro
            except TimeoutError:
                raise BackendError(f"{self.label}: no complete answer before the poll deadline") from None

        try:
            return loop.run(bounded(), deadline - time.monotonic() + 1.0)
        except HttpError as exc:
            raise BackendError(f"{self.label}: {exc}") from None
        except Bad as exc:
            raise BackendError(f"{self.label}: malformed answer: {exc}") from None

    async def _get(self, path: str, deadline: float, what: str) -> bytes:
        self.requests += 1
        try:
            status, body = await self._http.get(path, deadline, self._timeout)
        except HttpError as exc:
            raise BackendError(f"{self.label}: {what}: {exc}") from None
        if status != 200:
            raise BackendError(f"{self.label}: {what}: HTTP {status}")
        return body

    async def _text(self, path: str, deadline: float) -> str:
        body = await self._get(path, deadline, path.split("/")[1])
        try:
            return body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise BackendError(f"{self.label}: {path.split('/')[1]}: the answer is not text") from None

    async def _json(self, path: str, deadline: float, what: str) -> Any:
        body = await self._get(path, deadline, what)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BackendError(f"{self.label}: {what}: malformed JSON") from None

    async def _height_hash(self, height: int, deadline: float) -> str:
        text = await self._text(f"/block-height/{height}", deadline)
        try:
            return hash64(text, f"the hash of block {height}")
        except Bad as exc:
            raise BackendError(f"{self.label}: {exc}") from None

    async def _block(self, block_hash: str, height: int | None, deadline: float) -> Tip:
        raw = await self._json(f"/block/{block_hash}", deadline, "block")
        try:
            block = obj(raw, "block")
            h, ts = nonneg(block.get("height"), "height"), nonneg(block.get("timestamp"), "timestamp")
            if block.get("id") != block_hash or (height is not None and h != height):
                raise Bad(f"asked for block {block_hash}, got another")
        except Bad as exc:
            raise BackendError(f"{self.label}: block: {exc}") from None
        return Tip(h, block_hash, ts)

    # ------------------------------------------------------------ scan

    async def _scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        out: dict[str, ScriptState] = {}
        hashes: dict[int, asyncio.Task[str]] = {}  # block hashes asked once per scan

        def hash_at(height: int) -> Awaitable[str]:
            if height not in hashes:
                hashes[height] = asyncio.ensure_future(self._height_hash(height, deadline))
            return hashes[height]

        async def read(ref: ScriptRef) -> None:
            out[ref.script] = await self._read(ref, since, deadline, hash_at)

        try:
            await self._each(refs, read)
        except BaseException:
            for t in hashes.values():
                t.cancel()
            await asyncio.gather(*hashes.values(), return_exceptions=True)
            raise
        return out

    async def _each(self, items: Sequence[_I], work: Callable[[_I], Awaitable[None]]) -> None:
        """`work(item)` for every item, `concurrency` at a time; the first failure
        cancels the rest and is raised."""
        counter = itertools.count()

        async def worker() -> None:
            while (i := next(counter)) < len(items):
                await work(items[i])

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(self._concurrency, len(items)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ------------------------------------------------------------ transactions

    async def _details(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        out: dict[str, TxDetail] = {}

        async def read(txid: str) -> None:
            raw = await self._json(f"/tx/{txid}", deadline, f"tx {txid}")
            try:
                out[txid] = tx_detail(raw, txid)
            except Bad as exc:
                raise BackendError(f"{self.label}: tx {txid}: malformed answer: {exc}") from None

        await self._each(txids, read)
        return out

    async def _read(self, ref: ScriptRef, since: int, deadline: float,
                    hash_at: Callable[[int], Awaitable[str]]) -> ScriptState:
        base = f"/address/{ref.address}" if ref.address else \
            f"/scripthash/{hashlib.sha256(bytes.fromhex(ref.script)).digest()[::-1].hex()}"
        where = f"address {ref.address or ref.script}"
        for attempt in (1, 2):
            try:
                txs = await self._history(base, ref.script, deadline, hash_at)
                return ScriptState(ref.script, bool(txs), _coins(txs, since))
            except Bad as exc:
                raise BackendError(f"{self.label}: {where}: malformed answer: {exc}") from None
            except _Mismatch as exc:
                self._verified.pop(ref.script, None)
                if attempt == 2:
                    raise BackendError(f"{self.label}: {where}: the history pages are inconsistent ({exc}); "
                                       "the server skipped or repeated transactions") from None
        raise AssertionError("unreachable")

    async def _history(self, base: str, script: str, deadline: float,
                       hash_at: Callable[[int], Awaitable[str]]) -> list[_Tx]:
        """The complete history of `script` (mempool first, then confirmed newest first)."""
        first = [_parse_tx(t, script) for t in array(await self._json(base + "/txs", deadline, "txs"), "txs")]
        mem = [t for t in first if t.height == 0]
        conf = [t for t in first if t.height > 0]
        if first[:len(mem)] != mem or len(mem) > MEMPOOL_LIMIT or len(conf) > CHAIN_PAGE:
            raise Bad("/txs is not up to 50 unconfirmed then up to 25 confirmed transactions")
        _check_order(conf, None)
        if len(conf) < CHAIN_PAGE and len(mem) < MEMPOOL_LIMIT:
            return first  # the whole history in one answer
        stats = obj(await self._json(base, deadline, "address"), "address")
        chain_count = nonneg(obj(stats.get("chain_stats"), "chain_stats").get("tx_count"), "tx_count")
        mem_count = nonneg(obj(stats.get("mempool_stats"), "mempool_stats").get("tx_count"), "tx_count")
        if mem_count > MEMPOOL_LIMIT or (len(mem) == MEMPOOL_LIMIT and mem_count != MEMPOOL_LIMIT):
            raise BackendError(f"{self.label}: {base.split('/')[2]} has more than {MEMPOOL_LIMIT} unconfirmed "
                               "transactions, which Esplora cannot list: read it through an Electrum or "
                               "bitcoind backend, or wait for them to confirm")
        if len(conf) == CHAIN_PAGE:
            conf = await self._confirmed(base, script, conf, deadline, hash_at)
        if len(conf) != chain_count:
            raise _Mismatch(f"{len(conf)} confirmed transactions listed, the address has {chain_count}")
        if conf:
            self._verified[script] = _Verified(conf[0].height, conf[0].block_hash or "", tuple(conf))
        return mem + conf

    async def _confirmed(self, base: str, script: str, conf: list[_Tx], deadline: float,
                         hash_at: Callable[[int], Awaitable[str]]) -> list[_Tx]:
        """Page back until the end, or until the part verified by an earlier poll."""
        known = self._verified.get(script)
        if known is not None and await hash_at(known.height) != known.block_hash:
            known = None  # that block was reorganised away: read everything again
        page = conf
        while len(page) == CHAIN_PAGE and not (known and conf[-1].height <= known.height):
            raw = await self._json(f"{base}/txs/chain/{conf[-1].txid}", deadline, "txs/chain")
            page = [_parse_tx(t, script) for t in array(raw, "txs/chain")]
            if len(page) > CHAIN_PAGE or any(t.height == 0 for t in page):
                raise Bad("a /txs/chain page is not up to 25 confirmed transactions")
            _check_order(page, conf[-1])
            conf = conf + page
        if len({t.txid for t in conf}) != len(conf):
            raise _Mismatch("a transaction listed on two pages")
        if known is None:
            return conf
        newer = [t for t in conf if t.height > known.height]
        overlap = [t.txid for t in conf[len(newer):]]
        if overlap != [t.txid for t in known.txs[:len(overlap)]]:
            raise _Mismatch("the pages do not continue into the history read before")
        return newer + list(known.txs)


def _check_order(page: Sequence[_Tx], before: _Tx | None) -> None:
    """Confirmed entries newest first, no repeats (within the page and across the boundary)."""
    prev = before
    seen = set()
    for t in page:
        if prev is not None and t.height > prev.height:
            raise _Mismatch(f"transaction {t.txid} at height {t.height} after one at {prev.height}")
        if t.txid in seen or (before is not None and t.txid == before.txid):
            raise _Mismatch(f"transaction {t.txid} listed twice")
        seen.add(t.txid)
        prev = t
