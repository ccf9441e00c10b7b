"""`ElectrumBackend`: the `Backend` interface over an Electrum server
(electrs, Fulcrum, ElectrumX), protocol 1.4.

Newline-delimited JSON-RPC over TCP (`tcp://`) or TLS (`ssl://`), one
connection kept between polls. Calls go in batches of `concurrency` calls,
several batches in flight, so a remote server is not paid one round trip per
script. A script is known by its scripthash (sha256 of the script, reversed).

`scan` reads per script the history (used = non-empty) and the unspent coins
(`listunspent`: mempool spends already removed); the transactions of the
history above `since` or in the mempool are fetched and their inputs matched
against the script's own outputs, which gives the coins spent recently with
the height that created them. History and coins are separate calls, so the
history is read again afterwards: a script whose history moved in between
(a block, a mempool transaction) is read again, never reported half-updated.

`transactions` reads raw transactions and the ones they spend (batched,
cached), a height from a history and a merkle proof per confirmed
transaction, checked against the block header (electrum_details.py).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ...settings import BackendSettings
from .details import make_detail, wanted_txids
from .electrum_details import check_proof, height_script, spent_txids, tx_inputs
from .electrum_rpc import RpcConnection, RpcError
from .rawtx import MAX_MONEY, Header, RawTx, parse_header_hex, parse_tx_hex
from .types import Backend, BackendError, Coin, ScriptRef, ScriptState, Tip, TxDetail

__all__ = ["ElectrumBackend", "scripthash"]

PROTOCOL = "1.4"
MAX_ROUNDS = 3  # reads of a script whose history keeps moving before giving up
MAX_BATCH = 250  # calls per batch whatever `concurrency` says: servers limit batch and answer sizes
TX_CACHE = 20_000  # parsed transactions kept between polls (a txid's content never changes)
READABLE = 200_000  # scripts remembered as having a history this server sent (electrum_details.py)
_TXID = re.compile(r"[0-9a-f]{64}")
_SCRIPT = re.compile(r"(?:[0-9a-f]{2})+")
# Every signet shares one genesis block; testnet is testnet3 or testnet4. Regtest is not
# checked: a regtest chain is local and throwaway (the test simulator has its own genesis).
GENESIS = {
    "bitcoin": {"000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"},
    "testnet": {"000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
                "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"},
    "signet": {"00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"},
}

History = tuple[tuple[str, int], ...]  # (txid, height) in the server's order; height 0 = mempool
T = TypeVar("T")


def scripthash(script: str) -> str:
    """Electrum's key for an output script: sha256 of the script bytes, reversed, hex."""
    return hashlib.sha256(bytes.fromhex(script)).digest()[::-1].hex()


class ElectrumBackend:
    """One Electrum server, one connection: calls from several threads take turns
    (a read abandoned at its deadline may still be finishing when the next starts)."""

    def __init__(self, settings: BackendSettings, network: str) -> None:
        self.label = settings.label
        self.network = network
        parts = urlsplit(settings.url.reveal())
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("tcp", "ssl") or not parts.hostname or port is None:
            raise BackendError(f"{self.label}: an electrum url is tcp://host:port or ssl://host:port")
        self._rpc = RpcConnection(
            label=self.label, host=parts.hostname, port=port, tls=parts.scheme == "ssl",
            ca_file=settings.ca_file, timeout=float(settings.timeout),
            batch_size=min(max(1, settings.concurrency), MAX_BATCH), on_connect=self._handshake,
        )
        self._txs: OrderedDict[str, RawTx] = OrderedDict()
        self._readable: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    # --- Backend -------------------------------------------------------------------------

    def tip(self, deadline: float) -> Tip:
        return self._turn(self._tip, deadline)

    def block_hash(self, height: int, deadline: float) -> str:
        return self.block(height, deadline).hash

    def block(self, height: int, deadline: float) -> Tip:
        """The block at `height` (its hash and header time) as a `Tip`."""
        if height < 0:
            raise ValueError(f"block height {height} is negative")
        header = self._turn(lambda d: self._call("blockchain.block.header", [height], d), deadline)
        block_hash, timestamp = self._header(header, "blockchain.block.header")
        return Tip(height=height, hash=block_hash, timestamp=timestamp)

    def scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        return self._turn(lambda d: self._scan(refs, since, d), deadline)

    def transactions(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        wanted = wanted_txids(txids)
        if not wanted:
            return {}
        return self._turn(lambda d: self._details(wanted, d), deadline)

    def close(self) -> None:
        with self._lock:
            self._rpc.close()

    # --- steps -----------------------------------------------------------------------------

    def _turn(self, work: Callable[[float], T], deadline: float) -> T:
        """Run `work(deadline)` holding the connection, waiting for it no longer than the deadline."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BackendError(f"{self.label}: still busy with an earlier read at the deadline")
        try:
            return work(deadline)
        finally:
            self._lock.release()

    def _tip(self, deadline: float) -> Tip:
        result = self._call("blockchain.headers.subscribe", [], deadline)
        if not isinstance(result, dict) or not _is_int(result.get("height")) or result["height"] < 0:
            raise self._malformed("blockchain.headers.subscribe")
        header = self._header(result.get("hex"), "blockchain.headers.subscribe")
        return Tip(height=result["height"], hash=header[0], timestamp=header[1])

    def _scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        scripts = list(dict.fromkeys(ref.script for ref in refs))
        for script in scripts:
            if not _SCRIPT.fullmatch(script):
                raise ValueError(f"script {script!r} is not lowercase hex")
        history = self._histories(scripts, deadline)
        states = {s: ScriptState(script=s, used=False) for s in scripts if not history[s]}
        todo = [s for s in scripts if history[s]]
        for _ in range(MAX_ROUNDS):
            if not todo:
                return states
            coins = self._coins(todo, history, since, deadline)
            again = self._histories(todo, deadline)
            moved = [s for s in todo if again[s] != history[s] or coins[s] is None]
            for s in todo:
                if s not in moved:
                    states[s] = ScriptState(script=s, used=True, coins=coins[s] or ())
                elif not again[s]:  # a reorg or an evicted transaction left it unused
                    states[s] = ScriptState(script=s, used=False)
            history.update(again)
            todo = [s for s in moved if again[s]]
        if todo:
            raise BackendError(f"{self.label}: {len(todo)} script(s) changed on every one of {MAX_ROUNDS} reads "
                               "(blocks or mempool moving fast); the next poll reads them again")
        return states

    # --- protocol --------------------------------------------------------------------------

    def _handshake(self, rpc: RpcConnection, deadline: float) -> None:
        """First calls on a new connection: agree the protocol version, check the chain."""
        version = rpc.call_many([("server.version", ["custody-auditor", PROTOCOL])], deadline)[0]
        if not (isinstance(version, list) and len(version) == 2 and all(isinstance(v, str) for v in version)):
            raise self._malformed("server.version")
        expected = GENESIS.get(self.network)
        if expected is None:
            return
        first = rpc.call_many([("blockchain.block.header", [0])], deadline)[0]
        genesis = self._header(first, "blockchain.block.header")
        if genesis[0] not in expected:
            raise BackendError(f"{self.label}: the server follows another chain (genesis {genesis[0][:16]}…), "
                               f"not {self.network}: point this backend at a {self.network} server")

    def _call(self, method: str, params: list[Any], deadline: float) -> Any:
        return self._call_many([(method, params)], deadline)[0]

    def _call_many(self, calls: list[tuple[str, list[Any]]], deadline: float) -> list[Any]:
        try:
            return self._rpc.call_many(calls, deadline)
        except RpcError as exc:
            raise BackendError(str(exc)) from None

    def _header(self, value: Any, method: str) -> tuple[str, int]:
        header = self._parsed_header(value, method)
        return header.hash, header.timestamp

    def _parsed_header(self, value: Any, method: str) -> Header:
        try:
            header = parse_header_hex(value) if isinstance(value, str) else None
        except ValueError:
            header = None
        if header is None:
            raise self._malformed(method, "a block header is 160 hex characters")
        return header

    def _malformed(self, method: str, why: str = "") -> BackendError:
        hint = f" ({why})" if why else ""
        return BackendError(f"{self.label}: {method} answered with data of the wrong shape{hint}; "
                            "is this an Electrum protocol 1.4 server?")

    # --- scan steps ------------------------------------------------------------------------

    def _histories(self, scripts: list[str], deadline: float) -> dict[str, History]:
        calls = [("blockchain.scripthash.get_history", [scripthash(s)]) for s in scripts]
        results = self._call_many(calls, deadline)
        histories = {s: self._history(r) for s, r in zip(scripts, results, strict=True)}
        for s, h in histories.items():
            if h:
                self._readable[s] = None
                self._readable.move_to_end(s)
        while len(self._readable) > READABLE:
            self._readable.popitem(last=False)
        return histories

    def _history(self, result: Any) -> History:
        method = "blockchain.scripthash.get_history"
        if not isinstance(result, list):
            raise self._malformed(method)
        entries = tuple((self._txid(e, method), self._height(e, method)) for e in result)
        if len({txid for txid, _ in entries}) != len(entries):
            raise self._malformed(method, "a transaction listed twice")
        return entries

    def _coins(self, scripts: list[str], history: dict[str, History], since: int,
               deadline: float) -> dict[str, tuple[Coin, ...] | None]:
        """Per script its unspent coins and the coins spent above `since` or in the
        mempool, or None when the answers do not fit together (the chain moved)."""
        calls = [("blockchain.scripthash.listunspent", [scripthash(s)]) for s in scripts]
        unspent = {s: self._utxos(r) for s, r in zip(scripts, self._call_many(calls, deadline), strict=True)}
        recent = {s: [(t, h) for t, h in history[s] if h == 0 or h > since] for s in scripts}
        spenders = self._transactions([t for s in scripts for t, _ in recent[s]], deadline)
        own_prev = {s: {t for t, _ in history[s]} for s in scripts}
        prevs = {p for s in scripts for t, _ in recent[s] for p, _ in spenders[t].inputs if p in own_prev[s]}
        txs = {**spenders, **self._transactions(sorted(prevs), deadline)}
        result: dict[str, tuple[Coin, ...] | None] = {}
        for s in scripts:
            spent = self._spent(s, history[s], recent[s], txs)
            result[s] = self._merge(s, unspent[s], spent, dict(history[s]), txs)
        return result

    def _spent(self, script: str, history: History, recent: list[tuple[str, int]],
               txs: dict[str, RawTx]) -> list[Coin]:
        heights = dict(history)
        coins = []
        for spender, spent_height in recent:
            for prev, vout in txs[spender].inputs:
                if prev not in heights:
                    continue
                outputs = txs[prev].outputs
                if vout >= len(outputs):
                    raise self._malformed("blockchain.transaction.get", f"{spender} spends a missing output")
                out_script, value = outputs[vout]
                if out_script == script:
                    coins.append(Coin(txid=prev, vout=vout, value=value, height=heights[prev],
                                      spent_height=spent_height, spent_by=spender))
        return coins

    def _merge(self, script: str, unspent: list[Coin], spent: list[Coin], heights: dict[str, int],
               txs: dict[str, RawTx]) -> tuple[Coin, ...] | None:
        """Unspent and recently spent coins, or None when they contradict each other or
        the history (an answer read while a block or mempool transaction arrived)."""
        keys = [(c.txid, c.vout) for c in (*unspent, *spent)]
        if len(set(keys)) != len(keys):
            return None
        for coin in unspent:
            if heights.get(coin.txid) != coin.height:
                return None
            tx = txs.get(coin.txid)
            if tx is not None and (coin.vout >= len(tx.outputs) or tx.outputs[coin.vout] != (script, coin.value)):
                raise self._malformed("blockchain.scripthash.listunspent", f"coin {coin.txid}:{coin.vout} "
                                      "does not match its transaction")
        return (*unspent, *spent)

    def _utxos(self, result: Any) -> list[Coin]:
        method = "blockchain.scripthash.listunspent"
        if not isinstance(result, list):
            raise self._malformed(method)
        coins = []
        for entry in result:
            txid, height = self._txid(entry, method), self._height(entry, method)
            vout, value = entry.get("tx_pos"), entry.get("value")
            if not _is_int(vout) or not 0 <= vout < 2**32:
                raise self._malformed(method, "tx_pos is not an output index")
            if not _is_int(value) or not 0 <= value <= MAX_MONEY:
                raise self._malformed(method, f"value {value!r} is not a whole number of satoshis")
            coins.append(Coin(txid=txid, vout=vout, value=value, height=height))
        return coins

    def _transactions(self, txids: list[str], deadline: float) -> dict[str, RawTx]:
        """Parsed transactions by txid, from the cache or the server; each checked to
        be the transaction asked for (its txid is recomputed from the bytes)."""
        wanted = [t for t in dict.fromkeys(txids) if t not in self._txs]
        results = self._call_many([("blockchain.transaction.get", [t]) for t in wanted], deadline)
        for txid, raw in zip(wanted, results, strict=True):
            try:
                tx = parse_tx_hex(raw) if isinstance(raw, str) else None
            except ValueError as exc:
                raise self._malformed("blockchain.transaction.get", str(exc)) from None
            if tx is None or tx.txid != txid:
                raise self._malformed("blockchain.transaction.get", f"not the transaction {txid}")
            self._txs[txid] = tx
        found = {}
        for txid in txids:
            found[txid] = self._txs[txid]
            self._txs.move_to_end(txid)
        while len(self._txs) > TX_CACHE:
            self._txs.popitem(last=False)
        return found

    # --- transactions ----------------------------------------------------------------------

    def _details(self, txids: list[str], deadline: float) -> dict[str, TxDetail]:
        txs = self._transactions(txids, deadline)
        prevs = self._transactions(sorted(spent_txids(txs.values())), deadline)
        try:
            inputs = {t: tx_inputs(txs[t], prevs) for t in txids}
            picks = {t: height_script(txs[t], inputs[t], self._readable) for t in txids}
        except ValueError as exc:
            raise self._malformed("blockchain.transaction.get", str(exc)) from None
        histories = self._histories(sorted(set(picks.values())), deadline)
        heights = {}
        for t in txids:
            height = dict(histories[picks[t]]).get(t)
            if height is None:
                raise BackendError(f"{self.label}: transaction {t} is missing from the history of a script it "
                                   "touches (a reorg or a mempool eviction between two reads?); the next poll "
                                   "reads again")
            heights[t] = height
        blocks = self._proven_blocks(heights, deadline)
        out = {}
        for t in txids:
            header = blocks.get(heights[t])
            try:
                out[t] = make_detail(t, heights[t], header.hash if header else "", header.timestamp if header else 0,
                                     inputs[t], txs[t].outputs)
            except ValueError as exc:
                raise self._malformed("blockchain.transaction.get", str(exc)) from None
        return out

    def _proven_blocks(self, heights: dict[str, int], deadline: float) -> dict[int, Header]:
        """The headers at the heights of the confirmed transactions, each transaction's
        merkle proof checked against its header (one batch for both)."""
        confirmed = sorted({h for h in heights.values() if h})
        proved = [(t, h) for t, h in heights.items() if h]
        results = self._call_many([("blockchain.block.header", [h]) for h in confirmed]
                                  + [("blockchain.transaction.get_merkle", [t, h]) for t, h in proved], deadline)
        headers = {h: self._parsed_header(r, "blockchain.block.header")
                   for h, r in zip(confirmed, results[:len(confirmed)], strict=True)}
        for (t, h), answer in zip(proved, results[len(confirmed):], strict=True):
            try:
                check_proof(t, h, answer, headers[h])
            except ValueError as exc:
                raise BackendError(f"{self.label}: blockchain.transaction.get_merkle: {exc}; the chain moved "
                                   "between two reads or the server is wrong (the next poll reads again)") from None
        return headers

    def _txid(self, entry: Any, method: str) -> str:
        txid = entry.get("tx_hash") if isinstance(entry, dict) else None
        if not isinstance(txid, str) or not _TXID.fullmatch(txid):
            raise self._malformed(method, "tx_hash is not a txid")
        return txid

    def _height(self, entry: dict[str, Any], method: str) -> int:
        """A block height; Electrum's 0 and -1 (mempool, unconfirmed parents) are 0."""
        height = entry.get("height")
        if not isinstance(height, int) or isinstance(height, bool) or height < -1:
            raise self._malformed(method, "height is not a block height")
        return max(height, 0)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_check: type[Backend] = ElectrumBackend  # mypy: the class implements the protocol
