"""Bitcoin Core as a backend: JSON-RPC `scantxoutset` over the wallets' descriptors.

No wallet and no index are needed on the node, but Core only knows its UTXO set,
so a scan is put together from several calls and checked for one tip:

- `scantxoutset` at Core's tip: the unspent confirmed coins of the descriptors
  (one scan object per descriptor, its range covering the indexes asked for;
  plain scripts as `raw(<script>)`: exact, nothing re-derived from an address),
  each with its height. It ignores the mempool and forgets spent coins.
- coins spent in blocks above `since`: every block since+1 … tip is read with
  `getblock <hash> 3` (each input carries its prevout: script, value, height).
  Blocks are kept in memory by hash, so a poll reads only the new ones.
- coins spent in the mempool: `gettxspendingprevout` (Core 24 or newer); the own
  outputs of those spending transactions (change, internal moves;
  `getrawtransaction`) are coins of height 0, followed down a chain of spends.
- finally `getbestblockhash` must still be the scan's tip, else the reading is
  refused (the next poll reads again).

What bitcoind cannot see: incoming coins still in the mempool (they appear when
mined), and addresses emptied at or below `since`: `used` means "has coins in
what was seen", so the client keeps the highest used index per branch in its
store and discovery resumes there. `scantxoutset` reads the whole UTXO set
(minutes on mainnet): only the read's deadline bounds it, not the per-request
timeout.

`transactions` reads transaction details with `getrawtransaction … 2` (see
bitcoind_details.py); the heights scans saw let a node without `-txindex`
find confirmed ones.

Before a descriptor index is scanned the first time, Core's own derivation
(`deriveaddresses`) must give the address the auditor derived: a descriptor
read differently by Core would otherwise show funded addresses as empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from ...settings import BackendSettings
from .bitcoind_details import DetailReader
from .bitcoind_rpc import Rpc, RpcFailure, array, hexstr, integer, obj, sats, script_hex, with_checksum
from .details import wanted_txids
from .types import BackendError, Coin, ScriptRef, ScriptState, Tip, TxDetail

__all__ = ["BitcoindBackend", "CHAINS"]

# config network → the `chain` names getblockchaininfo may answer (testnet: 3 or 4)
CHAINS = {"bitcoin": ("main",), "testnet": ("test", "testnet4"), "signet": ("signet",),
          "regtest": ("regtest",)}
MAX_BLOCKS_ABOVE_SINCE = 1000  # each is a full getblock: a `since` this deep is a caller bug
MAX_MEMPOOL_DEPTH = 100  # chained mempool spends followed; Core's own limits are lower
SCAN_GAP = 1000  # indexes further apart than this get scan objects of their own

_MOVED = "the chain tip moved during the scan (a new block or a reorg); the next poll reads again"
_Coins = dict[str, dict[tuple[str, int], Coin]]  # script → outpoint → coin


@dataclass(frozen=True)
class _Spend:
    """One input of a block: the coin it spends and who spends it."""

    txid: str
    vout: int
    script: str
    value: int
    height: int
    spender: str


@dataclass(frozen=True)
class _Block:
    prev: str | None
    spends: tuple[_Spend, ...]


# --- the backend -----------------------------------------------------------------


class BitcoindBackend:
    """`types.Backend` over Bitcoin Core's JSON-RPC (see the module docstring)."""

    # One scan reads Core's whole UTXO set whatever the number of scripts (minutes on
    # mainnet): the client looks much further ahead per discovery round with this backend.
    scans_in_bulk = True

    def __init__(self, settings: BackendSettings, network: str) -> None:
        if network not in CHAINS:
            raise ValueError(f"unknown bitcoin network {network!r}; one of {', '.join(CHAINS)}")
        self.label = settings.label
        self.network = network
        self._rpc = Rpc(settings)
        self._details = DetailReader(self._rpc)
        self._blocks: dict[str, _Block] = {}  # the blocks above the last `since`, by hash
        self._derived: set[tuple[str, int]] = set()  # (descriptor, index) Core derives as we do
        self._scan_timed_out = False
        self._lock = threading.Lock()

    def close(self) -> None:
        self._rpc.close()

    @contextmanager
    def _failures(self, deadline: float) -> Iterator[None]:
        """One call at a time (a read abandoned at its deadline may still be finishing in
        its thread); every failure becomes a BackendError with the label."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BackendError(f"{self.label}: an earlier read of this backend still runs past the deadline")
        try:
            yield
        except RpcFailure as exc:
            raise BackendError(f"{self.label}: {exc}") from None
        finally:
            self._lock.release()

    def tip(self, deadline: float) -> Tip:
        with self._failures(deadline):
            info = obj(self._rpc.call("getblockchaininfo", [], deadline), "getblockchaininfo")
            chain = info.get("chain")
            if chain not in CHAINS[self.network]:
                raise RpcFailure(f"the node is on chain {str(chain)[:20]!r} but this chain's network is "
                                 f"{self.network!r}: point the backend at a {self.network} node or fix "
                                 "the chain's network")
            best = hexstr(info.get("bestblockhash"), "getblockchaininfo.bestblockhash")
            tip = self._header(best, deadline)
            if tip.height != integer(info.get("blocks"), "getblockchaininfo.blocks"):
                raise RpcFailure("getblockheader and getblockchaininfo disagree on the tip's height")
            return tip

    def block_hash(self, height: int, deadline: float) -> str:
        with self._failures(deadline):
            return hexstr(self._rpc.call("getblockhash", [height], deadline), "getblockhash")

    def block(self, height: int, deadline: float) -> Tip:
        """The block at `height` in the active chain, with its header time."""
        with self._failures(deadline):
            tip = self._header(hexstr(self._rpc.call("getblockhash", [height], deadline), "getblockhash"),
                               deadline)
            if tip.height != height:
                raise RpcFailure(f"getblockheader: height {tip.height}, asked for {height}")
            return tip

    def _header(self, block_hash: str, deadline: float) -> Tip:
        header = obj(self._rpc.call("getblockheader", [block_hash, True], deadline), "getblockheader")
        if header.get("hash") != block_hash:
            raise RpcFailure("getblockheader answered for another block")
        return Tip(integer(header.get("height"), "getblockheader.height"), block_hash,
                   integer(header.get("time"), "getblockheader.time"))

    def scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        with self._failures(deadline):
            own = {r.script: r for r in refs}
            if not own:
                return {}
            coins = self._scan(own, since, deadline)
            for found in coins.values():
                for c in found.values():
                    self._details.note(c.txid, c.height)
                    if c.spent_by is not None and c.spent_height is not None:
                        self._details.note(c.spent_by, c.spent_height)
            return {sc: ScriptState(sc, bool(found), tuple(sorted(found.values(), key=_coin_order)))
                    for sc, found in coins.items()}

    def transactions(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        wanted = wanted_txids(txids)
        if not wanted:
            return {}
        with self._failures(deadline):
            return self._details.read(wanted, deadline)

    def _scan(self, own: dict[str, ScriptRef], since: int, deadline: float) -> _Coins:
        ranged, plain = _group(own.values())
        self._check_derivation(ranged, deadline)
        objects: list[Any] = [{"desc": with_checksum(d), "range": list(run)}
                              for d, ix in ranged.items() for run in _runs(sorted(ix))]
        objects += [{"desc": with_checksum(f"raw({r.script})")} for r in plain]
        height, best, unspents = self._utxos(objects, deadline)
        coins: _Coins = {sc: {} for sc in own}
        for u in unspents:
            u = obj(u, "scantxoutset unspent")
            script = hexstr(u.get("scriptPubKey"), "scantxoutset scriptPubKey", None)
            if script not in coins:
                continue  # an index inside the range that was not asked for
            coin = Coin(hexstr(u.get("txid"), "scantxoutset txid"), integer(u.get("vout"), "scantxoutset vout"),
                        sats(u.get("amount"), "scantxoutset amount"),
                        integer(u.get("height"), "scantxoutset height", 1))
            if coin.height > height:
                raise RpcFailure("scantxoutset: a coin above the scan's own tip")
            coins[script][(coin.txid, coin.vout)] = coin
        for s, spent_at in self._spends_above(since, height, best, deadline):
            if s.script in coins:
                if s.height < 1:
                    raise RpcFailure("getblock: an own coin spent from the genesis block")
                coins[s.script][(s.txid, s.vout)] = Coin(s.txid, s.vout, s.value, s.height, spent_at, s.spender)
        try:
            self._mempool(coins, deadline)
        except RpcFailure:  # a spending tx may have been mined meanwhile: say so if it was
            self._same_tip(best, deadline)
            raise
        self._same_tip(best, deadline)
        return coins

    def _same_tip(self, best: str, deadline: float) -> None:
        if self._rpc.call("getbestblockhash", [], deadline) != best:
            raise RpcFailure(_MOVED)

    def _check_derivation(self, ranged: dict[str, dict[int, ScriptRef]], deadline: float) -> None:
        for desc, by_index in ranged.items():
            todo = sorted(i for i in by_index if (desc, i) not in self._derived)
            for lo, hi in _runs(todo) if todo else ():
                got = array(self._rpc.call("deriveaddresses", [with_checksum(desc), [lo, hi]], deadline),
                            "deriveaddresses")
                if len(got) != hi - lo + 1:
                    raise RpcFailure(f"deriveaddresses gave {len(got)} addresses for {hi - lo + 1} indexes")
                for i in (i for i in todo if lo <= i <= hi):
                    if got[i - lo] != by_index[i].address:
                        raise RpcFailure(f"Core derives {str(got[i - lo])[:90]} at index {i} of a descriptor "
                                         f"where the auditor derives {by_index[i].address}: the descriptor is "
                                         "read differently; check it (key origin, hardened steps, script type)")
            self._derived.update((desc, i) for i in todo)

    def _utxos(self, objects: list[Any], deadline: float) -> tuple[int, str, list[Any]]:
        if self._scan_timed_out:  # ours may still run on the node: Core allows one at a time
            self._scan_timed_out = False
            self._rpc.call("scantxoutset", ["abort"], deadline)
        try:
            res = obj(self._rpc.call("scantxoutset", ["start", objects], deadline, slow=True), "scantxoutset")
        except RpcFailure as exc:
            self._scan_timed_out = str(exc).startswith("no answer")
            raise
        if res.get("success") is not True:
            raise RpcFailure("scantxoutset did not complete (success is not true: aborted on the node?)")
        return (integer(res.get("height"), "scantxoutset height"),
                hexstr(res.get("bestblock"), "scantxoutset bestblock"),
                array(res.get("unspents"), "scantxoutset unspents"))

    def _spends_above(self, since: int, height: int, best: str,
                      deadline: float) -> Iterator[tuple[_Spend, int]]:
        """Every input of the blocks since+1 … height, with the spend's height."""
        first = max(since + 1, 1)
        if first > height:
            return
        if height - first + 1 > MAX_BLOCKS_ABOVE_SINCE:
            raise RpcFailure(f"since={since} is {height - since} blocks below the tip: bitcoind reads each "
                             f"block above it, at most {MAX_BLOCKS_ABOVE_SINCE}")
        hashes = [hexstr(h, "getblockhash") for h in
                  self._rpc.batch([("getblockhash", [h]) for h in range(first, height + 1)], deadline)]
        if hashes[-1] != best:
            raise RpcFailure(_MOVED)
        for i, block_hash in enumerate(hashes):
            block = self._block(block_hash, first + i, deadline)
            if i and block.prev != hashes[i - 1]:
                raise RpcFailure("the blocks above since do not link up (a reorg during the scan)")
            for spend in block.spends:
                yield spend, first + i
        for old in set(self._blocks) - set(hashes):  # at or below since now: not needed again
            del self._blocks[old]

    def _block(self, block_hash: str, height: int, deadline: float) -> _Block:
        cached = self._blocks.get(block_hash)
        if cached is not None:
            return cached
        raw = obj(self._rpc.call("getblock", [block_hash, 3], deadline), "getblock")
        if raw.get("hash") != block_hash or raw.get("height") != height:
            raise RpcFailure("getblock answered for another block")
        prev = raw.get("previousblockhash")
        block = _Block(None if prev is None else hexstr(prev, "getblock previousblockhash"),
                       tuple(_block_spends(array(raw.get("tx"), "getblock tx"))))
        self._blocks[block_hash] = block
        return block

    def _mempool(self, coins: _Coins, deadline: float) -> None:
        """Mark coins spent in the mempool; add the own outputs of those spends, and so on."""
        pending = [(sc, c) for sc, found in coins.items() for c in found.values() if c.spent_height is None]
        seen: set[str] = set()
        for _ in range(MAX_MEMPOOL_DEPTH):
            if not pending:
                return
            asked = [{"txid": c.txid, "vout": c.vout} for _, c in pending]
            answer = array(self._rpc.call("gettxspendingprevout", [asked], deadline), "gettxspendingprevout")
            if len(answer) != len(asked):
                raise RpcFailure("gettxspendingprevout answered for a different number of outputs")
            spenders: list[str] = []
            for (sc, c), item in zip(pending, answer):
                item = obj(item, "gettxspendingprevout item")
                if (item.get("txid"), item.get("vout")) != (c.txid, c.vout):
                    raise RpcFailure("gettxspendingprevout answered for other outputs than asked")
                if "blockhash" in item:
                    raise RpcFailure(_MOVED)
                if "spendingtxid" in item:
                    spender = hexstr(item["spendingtxid"], "gettxspendingprevout spendingtxid")
                    coins[sc][(c.txid, c.vout)] = replace(c, spent_height=0, spent_by=spender)
                    if spender not in seen:
                        seen.add(spender)
                        spenders.append(spender)
            pending = self._mempool_outputs(spenders, coins, deadline)
        raise RpcFailure(f"more than {MAX_MEMPOOL_DEPTH} chained mempool spends of own coins")

    def _mempool_outputs(self, txids: list[str], coins: _Coins,
                         deadline: float) -> list[tuple[str, Coin]]:
        new: list[tuple[str, Coin]] = []
        txs = self._rpc.batch([("getrawtransaction", [t, True]) for t in txids], deadline)
        for txid, tx in zip(txids, txs):
            tx = obj(tx, "getrawtransaction")
            if tx.get("txid") != txid:
                raise RpcFailure("getrawtransaction answered for another transaction")
            for out in array(tx.get("vout"), "getrawtransaction vout"):
                out = obj(out, "getrawtransaction output")
                script = script_hex(out.get("scriptPubKey"), "getrawtransaction scriptPubKey")
                if script in coins:
                    coin = Coin(txid, integer(out.get("n"), "getrawtransaction n"),
                                sats(out.get("value"), "getrawtransaction value"), 0)
                    coins[script].setdefault((coin.txid, coin.vout), coin)
                    new.append((script, coin))
        return new


def _group(refs: Iterable[ScriptRef]) -> tuple[dict[str, dict[int, ScriptRef]], list[ScriptRef]]:
    """Refs of ranged descriptors by descriptor and index; the others as plain scripts."""
    ranged: dict[str, dict[int, ScriptRef]] = {}
    plain: list[ScriptRef] = []
    for r in refs:
        if r.descriptor is not None and r.index is not None and "*" in r.descriptor:
            ranged.setdefault(r.descriptor.split("#", 1)[0], {})[r.index] = r
        else:
            plain.append(r)
    return ranged, plain


def _runs(indexes: list[int]) -> Iterator[tuple[int, int]]:
    """[first, last] ranges covering sorted `indexes`, split where they are far apart
    (Core derives every index of a range, and refuses ranges of a million)."""
    start = prev = indexes[0]
    for i in indexes[1:]:
        if i - prev > SCAN_GAP:
            yield start, prev
            start = i
        prev = i
    yield start, prev


def _block_spends(txs: list[Any]) -> Iterator[_Spend]:
    for tx in txs:
        tx = obj(tx, "getblock tx")
        txid = hexstr(tx.get("txid"), "getblock txid")
        for vin in array(tx.get("vin"), "getblock vin"):
            vin = obj(vin, "getblock vin")
            if "coinbase" in vin:
                continue
            prevout = vin.get("prevout")
            if prevout is None:
                raise RpcFailure("getblock verbosity 3 gave an input without prevout: Bitcoin Core 23 or newer "
                                 "with the block's undo data (not pruned away) is needed")
            prevout = obj(prevout, "getblock prevout")
            yield _Spend(hexstr(vin.get("txid"), "getblock vin txid"), integer(vin.get("vout"), "getblock vin vout"),
                         script_hex(prevout.get("scriptPubKey"), "getblock prevout scriptPubKey"),
                         sats(prevout.get("value"), "getblock prevout value"),
                         integer(prevout.get("height"), "getblock prevout height"), txid)


def _coin_order(c: Coin) -> tuple[int, str, int]:
    return (c.height or 1 << 62, c.txid, c.vout)
