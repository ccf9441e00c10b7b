"""Bitcoin Core's JSON shapes over a `SimChain`, for `bitcoind_server.py`.

Shapes follow Core's RPC help and source (`blockheaderToJSON`, `blockToJSON`,
`TxToUniv`, `ScriptToUniv`, `scantxoutset`): amounts are JSON numbers with
exactly 8 decimals as Core's `ValueFromAmount` writes them (never through a
float), blocks at verbosity 0–3, transactions with `prevout` at verbosity 3.
Descriptors are evaluated with bdkpython (`addr(…)` and `raw(…)` by hand), and
the `desc` of a found coin is specialized like Core's `InferDescriptor`:
`wpkh([fingerprint/84h/1h/0h/0/5]02…)#checksum`, so its index can be read back.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import bdkpython as bdk
from bitcoinlib.keys import HDKey

from auditor.chains.bitcoin.bitcoind_rpc import descriptor_checksum

from .chain import SimBlock, SimChain, SimTx
from .codec import address_to_script, hash160, parse_tx, script_to_address, script_type, varint

__all__ = ["Amount", "RpcError", "dumps", "Descriptors", "header_json", "block_json", "tx_json", "script_json",
           "REGTEST_DIFFICULTY"]

REGTEST_DIFFICULTY = 4.656542373906925e-10  # what Core shows for regtest's powLimit bits (not an amount)
_CORE_TYPES = {"p2pkh": "pubkeyhash", "p2sh": "scripthash", "v0_p2wpkh": "witness_v0_keyhash",
               "v0_p2wsh": "witness_v0_scripthash", "v1_p2tr": "witness_v1_taproot", "op_return": "nulldata",
               "unknown": "nonstandard"}
# a BIP 32 key expression: optional [fingerprint/origin], the xpub, derivation steps, wildcard
_KEY = re.compile(r"(\[([0-9a-fA-F]{8})((?:/\d+[h']?)*)\])?([xt]pub[1-9A-HJ-NP-Za-km-z]{100,112})((?:/\d+)*)(/\*)?")


class Amount(int):
    """Satoshis, written as Core writes BTC: `0.00012345`."""


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def dumps(value: Any, amounts: str = "exact") -> str:
    """JSON like Core's UniValue. `amounts`: "exact"; "subsat" (a 9th decimal digit)
    and "overflow" (21,000,000.00000001 BTC) make amounts a client must refuse."""
    if isinstance(value, Amount):
        if amounts == "overflow":
            return "21000000.00000001"
        q, r = divmod(abs(int(value)), 100_000_000)
        return f"{'-' if value < 0 else ''}{q}.{r:08d}" + ("1" if amounts == "subsat" else "")
    if value is None or isinstance(value, (bool, int, float, str)):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v, amounts)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v, amounts) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# ---------------------------------------------------------------- scripts, transactions, blocks

def _asm(script: bytes, kind: str) -> str:
    if kind == "p2pkh":
        return f"OP_DUP OP_HASH160 {script[3:23].hex()} OP_EQUALVERIFY OP_CHECKSIG"
    if kind == "p2sh":
        return f"OP_HASH160 {script[2:22].hex()} OP_EQUAL"
    if kind in ("v0_p2wpkh", "v0_p2wsh", "v1_p2tr"):
        return f"{0 if kind.startswith('v0') else 1} {script[2:].hex()}"
    if kind == "op_return":
        return f"OP_RETURN {script[2:].hex()}"
    return ""


@lru_cache(maxsize=65536)
def script_json(script_hex: str) -> dict[str, Any]:
    script = bytes.fromhex(script_hex)
    kind = script_type(script)
    address = script_to_address(script)
    inferred = f"addr({address})" if address else f"raw({script_hex})"
    out: dict[str, Any] = {"asm": _asm(script, kind), "desc": f"{inferred}#{descriptor_checksum(inferred)}",
                           "hex": script_hex}
    if address:
        out["address"] = address
    out["type"] = _CORE_TYPES[kind]
    return out


@lru_cache(maxsize=65536)
def _parsed(raw_hex: str) -> Any:
    return parse_tx(bytes.fromhex(raw_hex))


def tx_json(chain: SimChain, tx: SimTx, detail: int) -> dict[str, Any]:
    """`TxToUniv`: detail 1 = getrawtransaction verbose, 2 = with fee, 3 = with prevouts."""
    parsed = _parsed(tx.raw_hex)
    vin = []
    for txin in parsed.inputs:
        item: dict[str, Any]
        if tx.coinbase:
            item = {"coinbase": txin.script_sig.hex()}
        else:
            item = {"txid": txin.prev_txid, "vout": txin.vout, "scriptSig": {"asm": "", "hex": txin.script_sig.hex()}}
        if txin.witness:
            item["txinwitness"] = [w.hex() for w in txin.witness]
        if detail >= 3 and not tx.coinbase:
            prev = chain.tx(txin.prev_txid)
            script, value = prev.outputs[txin.vout]
            item["prevout"] = {"generated": prev.coinbase, "height": prev.height, "value": Amount(value),
                               "scriptPubKey": script_json(script)}
        item["sequence"] = txin.sequence
        vin.append(item)
    vout = [{"value": Amount(v), "n": n, "scriptPubKey": script_json(s)} for n, (s, v) in enumerate(tx.outputs)]
    out: dict[str, Any] = {"txid": tx.txid, "hash": tx.wtxid, "version": tx.version, "size": tx.size,
                           "vsize": tx.vsize, "weight": tx.weight, "locktime": tx.locktime, "vin": vin, "vout": vout}
    if detail >= 2 and not tx.coinbase:
        out["fee"] = Amount(tx.fee)
    out["hex"] = tx.raw_hex
    return out


def header_json(chain: SimChain, block: SimBlock) -> dict[str, Any]:
    """`blockheaderToJSON` for a block of the active chain."""
    tip = chain.height()
    times = [chain.block(h).timestamp for h in range(max(0, block.height - 10), block.height + 1)]
    out: dict[str, Any] = {
        "hash": block.hash, "confirmations": tip - block.height + 1, "height": block.height,
        "version": block.version, "versionHex": f"{block.version:08x}", "merkleroot": block.merkle_root,
        "time": block.timestamp, "mediantime": int(statistics.median_low(times)), "nonce": block.nonce,
        "bits": f"{block.bits:08x}", "difficulty": REGTEST_DIFFICULTY, "chainwork": f"{2 * (block.height + 1):064x}",
        "nTx": len(block.txids)}
    if block.height > 0:
        out["previousblockhash"] = block.prev_hash
    if block.height < tip:
        out["nextblockhash"] = chain.block(block.height + 1).hash
    return out


def block_json(chain: SimChain, block: SimBlock, verbosity: int) -> Any:
    """`getblock` at verbosity 0 (hex), 1 (txids), 2 (transactions) or 3 (with prevouts)."""
    txs = [chain.tx(t) for t in block.txids]
    if verbosity == 0:
        return block.header_hex + varint(len(txs)).hex() + "".join(t.raw_hex for t in txs)
    out = header_json(chain, block)
    out.update({"strippedsize": (block.weight - block.size) // 3, "size": block.size, "weight": block.weight})
    out["tx"] = list(block.txids) if verbosity == 1 else [tx_json(chain, t, verbosity) for t in txs]
    return out


# ---------------------------------------------------------------- descriptors

class Descriptors:
    """Descriptor evaluation as `scantxoutset`/`deriveaddresses` need it (cached)."""

    def __init__(self, network: str = "regtest"):
        self.network = network
        self._parsed: dict[str, Any] = {}
        self._scripts: dict[tuple[str, int], str] = {}
        self._hd: dict[str, Any] = {}

    @staticmethod
    def split(text: str, require_checksum: bool) -> str:
        """The descriptor without its checksum, after checking it like Core."""
        body, sep, given = text.partition("#")
        if sep:
            want = descriptor_checksum(body)
            if given != want:
                raise RpcError(-5, f"Provided checksum '{given}' does not match computed checksum '{want}'")
        elif require_checksum:
            raise RpcError(-5, "Missing checksum")
        return body

    def ranged(self, body: str) -> bool:
        return "*" in body and not body.startswith(("addr(", "raw("))

    def scripts(self, body: str, lo: int, hi: int) -> list[tuple[str, int, str]]:
        """(single descriptor, index, scriptPubKey hex) of every script in lo … hi;
        a multipath descriptor (`<0;1>`) gives each of its paths in turn, like Core."""
        if body.startswith(("addr(", "raw(")):
            return [(body, 0, self._fixed(body))]
        out = []
        for single in _singles(body):
            d = self._desc(single)
            for i in range(lo, hi + 1) if self.ranged(body) else [0]:
                script = self._scripts.get((single, i))
                if script is None:
                    script = d.derive_address(i, bdk.Network.REGTEST).script_pubkey().to_bytes().hex()
                    self._scripts[(single, i)] = script
                out.append((single, i, script))
        return out

    def specialize(self, body: str, index: int, script: str) -> str:
        """The `desc` Core shows for a found coin of a single-path descriptor: keys
        derived, full origins, checksum."""
        if not _KEY.search(body):
            inferred = script_json(script)["desc"]
            return str(inferred)
        xonly = body.startswith("tr(")

        def one(m: re.Match[str]) -> str:
            key = self._hd.get(m[4])
            if key is None:
                key = self._hd[m[4]] = HDKey(m[4], network="testnet" if m[4][0] == "t" else "bitcoin")
            fingerprint = m[2] or hash160(key.public_byte)[:4].hex()
            origin = (m[3] or "").replace("'", "h")
            steps = [int(s) for s in (m[5] or "").split("/") if s] + ([index] if m[6] else [])
            for s in steps:
                key = key.child_public(s)
            pub = key.public_byte[1:] if xonly else key.public_byte
            return f"[{fingerprint}{origin}{''.join(f'/{s}' for s in steps)}]{pub.hex()}"

        special = _KEY.sub(one, body)
        return f"{special}#{descriptor_checksum(special)}"

    def _fixed(self, body: str) -> str:
        inner = body[body.index("(") + 1:-1]
        if body.startswith("raw("):
            if len(inner) % 2 or re.fullmatch(r"[0-9a-fA-F]*", inner) is None:
                raise RpcError(-5, f"raw(): Raw script is not hex: '{inner}'")
            return inner.lower()
        try:
            return address_to_script(inner, self.network)
        except ValueError:
            raise RpcError(-5, f"addr(): Address '{inner}' is not valid") from None

    def _desc(self, single: str) -> Any:
        d = self._parsed.get(single)
        if d is None:
            try:
                d = bdk.Descriptor(single, bdk.NetworkKind.TEST)
            except Exception as exc:  # bdk's errors omit the input on purpose
                raise RpcError(-5, f"'{single[:40]}…' is not a valid descriptor ({type(exc).__name__})") from None
            self._parsed[single] = d
        return d


def _singles(body: str) -> list[str]:
    """`<0;1>` multipath steps expanded: one descriptor per path."""
    groups = re.findall(r"<([\d;]+)>", body)
    if not groups:
        return [body]
    options = [g.split(";") for g in groups]
    if len({len(o) for o in options}) != 1:
        raise RpcError(-5, "multipath specifiers have different lengths")
    out = []
    for k in range(len(options[0])):
        picks = iter([o[k] for o in options])

        def pick(_m: re.Match[str], picks: Iterator[str] = picks) -> str:
            return next(picks)

        out.append(re.sub(r"<[\d;]+>", pick, body))
    return out
