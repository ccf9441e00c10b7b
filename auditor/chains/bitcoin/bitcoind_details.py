"""`BitcoindBackend.transactions`: transaction details from Bitcoin Core's JSON-RPC.

`getrawtransaction <txid> 2 [<blockhash>]` (Core 25+) gives a confirmed
transaction with every input's prevout (script, value), read from the block's
undo data. Without `-txindex` Core finds a confirmed transaction only in the
block named by its hash, so the backend remembers the height at which its
scans saw each transaction (`note`) and names that block; a node with
`-txindex` needs no hint. The txid is recomputed from the `hex`, which is
what the outputs are read from; the JSON inputs must match it.

A mempool transaction (no block, no undo data) and a confirmed one whose
undo data is gone (pruned) come without prevouts: each spent output is then
read from the UTXO set (`gettxout <txid> <n> false`: confirmed outputs, a
spend in the mempool ignored) or, when it is not there (created in the
mempool), from its own transaction (`getrawtransaction <txid>`: the mempool,
or any block with `-txindex`). Block heights and times come from
`getblockheader`, which must place the block in the active chain.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .bitcoind_rpc import Rpc, RpcFailure, array, hexstr, integer, obj, sats, script_hex
from .details import make_detail
from .rawtx import RawTx, parse_tx_hex
from .types import TxDetail

__all__ = ["DetailReader"]

HINTS = 200_000  # txid → height remembered from scans
PREV_CACHE = 20_000  # transactions kept as possible parents (a txid's content never changes)
BATCH = 500  # calls per JSON-RPC batch request
_MOVED = "the transaction's block left the active chain (a reorg); the next poll reads again"
_PREVOUT_HINT = ("; Core 25+ gives the outputs a confirmed transaction spends from the blocks' undo data; "
                 "with pruned blocks or an older Core, run the node with -txindex")

Prevout = tuple[str, int]  # (script hex, value)


@dataclass(frozen=True)
class _Tx:
    raw: RawTx
    block_hash: str | None
    prevouts: tuple[Prevout | None, ...]  # per input; () for a coinbase
    coinbase: bool


class DetailReader:
    """Reads `TxDetail`s through one `Rpc`; `note` feeds it the heights scans saw."""

    def __init__(self, rpc: Rpc) -> None:
        self._rpc = rpc
        self._heights: OrderedDict[str, int] = OrderedDict()
        self._prev_txs: OrderedDict[str, RawTx] = OrderedDict()

    def note(self, txid: str, height: int) -> None:
        """A scan saw `txid` at `height` (0: the mempool)."""
        self._heights[txid] = height
        self._heights.move_to_end(txid)
        if len(self._heights) > HINTS:
            self._heights.popitem(last=False)

    def read(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        hints = self._block_hints(txids, deadline)
        calls = [("getrawtransaction", [t, 2, hints[t]] if t in hints else [t, 2]) for t in txids]
        txs = {t: _parse(t, a) for t, a in zip(txids, self._batch(calls, deadline), strict=True)}
        for tx in txs.values():
            self._remember(tx.raw)  # often the parent of a transaction read next
        prevouts = self._missing_prevouts(txs, deadline)
        blocks = self._blocks(sorted({t.block_hash for t in txs.values() if t.block_hash}), deadline)
        out = {}
        for txid, tx in txs.items():
            inputs = [] if tx.coinbase else [
                (prev, vout, *(tx.prevouts[i] or prevouts[(prev, vout)]))
                for i, (prev, vout) in enumerate(tx.raw.inputs)]
            height, timestamp = blocks[tx.block_hash] if tx.block_hash else (0, 0)
            try:
                out[txid] = make_detail(txid, height, tx.block_hash or "", timestamp, inputs, tx.raw.outputs)
            except ValueError as exc:
                raise RpcFailure(f"getrawtransaction: {exc}") from None
        return out

    def _batch(self, calls: list[tuple[str, list[Any]]], deadline: float) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(calls), BATCH):
            out += self._rpc.batch(calls[start:start + BATCH], deadline)
        return out

    def _block_hints(self, txids: Sequence[str], deadline: float) -> dict[str, str]:
        """txid → hash of the block a scan saw it in, for the confirmed ones."""
        heights = {t: h for t in txids if (h := self._heights.get(t, 0)) > 0}
        wanted = sorted(set(heights.values()))
        hashes = [hexstr(h, "getblockhash") for h in self._batch([("getblockhash", [h]) for h in wanted], deadline)]
        by_height = dict(zip(wanted, hashes, strict=True))
        return {t: by_height[h] for t, h in heights.items()}

    def _missing_prevouts(self, txs: dict[str, _Tx], deadline: float) -> dict[tuple[str, int], Prevout]:
        """The outputs spent by inputs that came without a prevout."""
        missing = list(dict.fromkeys((prev, vout) for tx in txs.values() if not tx.coinbase
                                     for (prev, vout), p in zip(tx.raw.inputs, tx.prevouts) if p is None))
        found = {m: _output(self._prev_txs[m[0]], m[1]) for m in missing if m[0] in self._prev_txs}
        rest = [m for m in missing if m not in found]
        answers = self._batch([("gettxout", [p, v, False]) for p, v in rest], deadline)
        for m, answer in zip(rest, answers, strict=True):
            if answer is not None:
                utxo = obj(answer, "gettxout")
                found[m] = (script_hex(utxo.get("scriptPubKey"), "gettxout scriptPubKey"),
                            sats(utxo.get("value"), "gettxout value"))
        unknown = sorted({p for p, v in rest if (p, v) not in found})
        try:
            answers = self._batch([("getrawtransaction", [p]) for p in unknown], deadline)
        except RpcFailure as exc:
            raise RpcFailure(f"{exc}{_PREVOUT_HINT}") from None
        for prev, answer in zip(unknown, answers, strict=True):
            self._remember(_raw_tx(prev, answer))
        for m in rest:
            if m not in found:
                found[m] = _output(self._prev_txs[m[0]], m[1])
        return found

    def _remember(self, tx: RawTx) -> None:
        self._prev_txs[tx.txid] = tx
        while len(self._prev_txs) > PREV_CACHE:
            self._prev_txs.popitem(last=False)

    def _blocks(self, hashes: list[str], deadline: float) -> dict[str, tuple[int, int]]:
        """Block hash → (height, header time), each block in the active chain."""
        out = {}
        for block_hash, answer in zip(hashes, self._batch([("getblockheader", [h, True]) for h in hashes], deadline),
                                      strict=True):
            header = obj(answer, "getblockheader")
            if header.get("hash") != block_hash:
                raise RpcFailure("getblockheader answered for another block")
            if not isinstance(header.get("confirmations"), int) or header["confirmations"] < 1:
                raise RpcFailure(_MOVED)
            out[block_hash] = (integer(header.get("height"), "getblockheader.height", 1),
                               integer(header.get("time"), "getblockheader.time", 1))
        return out


def _raw_tx(txid: str, hex_answer: Any) -> RawTx:
    try:
        raw = parse_tx_hex(hexstr(hex_answer, "getrawtransaction hex", None))
    except ValueError as exc:
        raise RpcFailure(f"getrawtransaction: {exc}") from None
    if raw.txid != txid:
        raise RpcFailure("getrawtransaction answered for another transaction")
    return raw


def _output(tx: RawTx, vout: int) -> Prevout:
    if vout >= len(tx.outputs):
        raise RpcFailure(f"a transaction spends output {vout} of {tx.txid}, which has {len(tx.outputs)}")
    return tx.outputs[vout]


def _parse(txid: str, answer: Any) -> _Tx:
    """One `getrawtransaction <txid> 2` answer: the transaction from its hex, the
    prevouts from its inputs, its block from `blockhash`."""
    tx = obj(answer, "getrawtransaction")
    raw = _raw_tx(txid, tx.get("hex"))
    if tx.get("txid") != txid:
        raise RpcFailure("getrawtransaction answered for another transaction")
    vin = array(tx.get("vin"), "getrawtransaction vin")
    if len(vin) != len(raw.inputs):
        raise RpcFailure("getrawtransaction: vin does not match the transaction's hex")
    coinbase = len(vin) == 1 and "coinbase" in obj(vin[0], "getrawtransaction vin")
    prevouts: list[Prevout | None] = []
    for item, outpoint in zip(vin, raw.inputs) if not coinbase else ():
        item = obj(item, "getrawtransaction vin")
        if (item.get("txid"), item.get("vout")) != outpoint:
            raise RpcFailure("getrawtransaction: vin does not match the transaction's hex")
        prevout = item.get("prevout")
        if prevout is not None:
            prevout = obj(prevout, "getrawtransaction prevout")
            prevouts.append((script_hex(prevout.get("scriptPubKey"), "getrawtransaction prevout scriptPubKey"),
                             sats(prevout.get("value"), "getrawtransaction prevout value")))
        else:
            prevouts.append(None)
    if tx.get("in_active_chain", True) is not True:
        raise RpcFailure(_MOVED)
    block_hash = tx.get("blockhash")
    if block_hash is not None:
        block_hash = hexstr(block_hash, "getrawtransaction blockhash")
        if not isinstance(tx.get("confirmations"), int) or tx["confirmations"] < 1:
            raise RpcFailure(_MOVED)
    return _Tx(raw, block_hash, tuple(prevouts), coinbase)
