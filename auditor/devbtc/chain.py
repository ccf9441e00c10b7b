"""A simulated regtest chain of real transactions: mine, mempool, spends, reorgs.

Transactions are built and signed with bitcoinlib, then parsed back with
`codec.parse_tx` (own txid computation) and checked with bitcoinlib's
`Transaction.verify()` and the independent `verify.check_input`; everything
the servers expose (inputs, outputs, sizes, fees) comes from the parsed raw
bytes. Blocks have real 80-byte headers (merkle root of the txids, regtest
bits, a nonce that meets the regtest target), a BIP 34/141 coinbase each, and
the block hash is the header's double SHA-256 in display order.

Import as `auditor.devbtc.chain` (the package's __init__ points bitcoinlib's
data folder at a temporary directory first).
"""

from __future__ import annotations

import functools
import itertools
import pickle
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bitcoinlib.transactions import Transaction

from .codec import ParsedTx, address_to_script, block_header, build_coinbase, merkle_root, parse_tx, sha256d
from .keys import KeySigner, Signer, Unlock
from .verify import check_input

__all__ = ["SimChain", "SimBlock", "SimTx", "COIN", "MINER_SCRIPT"]

COIN = 100_000_000
BITS = 0x207FFFFF  # regtest's powLimit
_TARGET = 0x7FFFFF << (8 * (0x20 - 3))
_HALVING = 150  # regtest's subsidy halving interval
MINER_SCRIPT = "0014" + "11" * 20  # where block rewards of mined blocks go (nobody watches it)
_T = TypeVar("_T")


@dataclass(frozen=True)
class SimBlock:
    height: int
    hash: str
    timestamp: int
    prev_hash: str
    txids: tuple[str, ...]
    header_hex: str
    version: int
    bits: int
    nonce: int
    merkle_root: str  # display order
    size: int
    weight: int


@dataclass
class SimTx:
    txid: str
    raw_hex: str
    inputs: list[tuple[str, int]]  # (txid, vout) spent; empty for a coinbase
    outputs: list[tuple[str, int]]  # (scriptPubKey hex, value)
    height: int  # 0 = mempool
    fee: int
    size: int
    vsize: int
    weight: int
    locktime: int
    version: int
    coinbase: bool
    wtxid: str
    input_values: list[int] = field(default_factory=list)
    order: int = 0  # position: index in its block, or mempool arrival number


def _locked(method: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(method)
    def wrapper(self: SimChain, *args: Any, **kwargs: Any) -> _T:
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class SimChain:
    """The live chain servers read on every request (thread-safe)."""

    network = "regtest"

    def __init__(self, *, clock: Callable[[], int] = lambda: int(time.time()), faucet_coins: int = 50,
                 check_signatures: bool = True):
        # check_signatures=False skips the two signature checks of every new tx
        # (~4 of ~8 ms): for benchmarks that fund thousands of addresses.
        self.check_signatures = check_signatures
        self._lock = threading.RLock()
        self._clock = clock
        self.faucet = KeySigner(b"btcsim faucet seed")
        self._blocks: list[SimBlock] = []
        self._by_hash: dict[str, SimBlock] = {}
        self._txs: dict[str, SimTx] = {}
        self._mempool: dict[str, None] = {}
        self._spent: dict[tuple[str, int], str] = {}
        self._by_script: dict[str, dict[str, None]] = {}
        self._seq = itertools.count(1)
        self._extranonce = itertools.count(1)
        self.revision = 0  # bumped on every change (servers may cache per revision)
        start = clock() - 600 * (faucet_coins + 101)
        self._mine_block(MINER_SCRIPT, start, take_mempool=False)
        for h in range(faucet_coins):
            self._mine_block(self.faucet.script, start + 600 * (h + 1), take_mempool=False)
        for h in range(100):  # coinbase maturity
            self._mine_block(MINER_SCRIPT, start + 600 * (faucet_coins + 1 + h), take_mempool=False)

    def save(self, path: str) -> None:
        """Write the chain to `path` (pickle) for a server in a child process."""
        with self._lock, open(path, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(path: str) -> SimChain:
        with open(path, "rb") as f:
            chain = pickle.load(f)
        assert isinstance(chain, SimChain)
        return chain

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_clock", "_seq", "_extranonce"):
            del state[name]
        state["_counters"] = (next(self._seq), next(self._extranonce))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        seq, extranonce = state.pop("_counters")
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._clock = lambda: int(time.time())
        self._seq, self._extranonce = itertools.count(seq), itertools.count(extranonce)

    @property
    def lock(self) -> threading.RLock:
        """Hold it to read several things from one state (servers do, per request)."""
        return self._lock

    # ------------------------------------------------------------ reads

    @_locked
    def tip(self) -> SimBlock:
        return self._blocks[-1]

    @_locked
    def height(self) -> int:
        return len(self._blocks) - 1

    @_locked
    def block(self, height: int) -> SimBlock:
        if not 0 <= height < len(self._blocks):
            raise KeyError(f"no block at height {height} (tip {len(self._blocks) - 1})")
        return self._blocks[height]

    @_locked
    def block_by_hash(self, block_hash: str) -> SimBlock:
        return self._by_hash[block_hash]  # KeyError: not in the active chain

    @_locked
    def tx(self, txid: str) -> SimTx:
        return self._txs[txid]

    @_locked
    def has_tx(self, txid: str) -> bool:
        return txid in self._txs

    @_locked
    def known_scripts(self) -> list[str]:
        """Every script with history (servers map scripthashes back with it)."""
        return [s for s, txids in self._by_script.items() if txids]

    @_locked
    def mempool(self) -> list[str]:
        return list(self._mempool)

    @_locked
    def history(self, script: str) -> list[tuple[str, int]]:
        """(txid, height) of every tx paying to or spending from `script`: confirmed
        in chain order, then mempool in arrival order (height 0)."""
        return [(t.txid, t.height) for t in self._script_txs(script)]

    @_locked
    def utxos(self, script: str) -> list[tuple[str, int, int, int]]:
        """(txid, vout, value, height) unspent; outputs spent in the mempool left out."""
        out = []
        for t in self._script_txs(script):
            for vout, (s, value) in enumerate(t.outputs):
                if s == script and (t.txid, vout) not in self._spent:
                    out.append((t.txid, vout, value, t.height))
        return out

    @_locked
    def spender(self, txid: str, vout: int) -> tuple[str, int] | None:
        s = self._spent.get((txid, vout))
        return None if s is None else (s, self._txs[s].height)

    @_locked
    def confirmed_utxo_set(self) -> Iterator[tuple[str, int, str, int, int, bool]]:
        """Bitcoin Core's chainstate: confirmed outputs not spent by a confirmed tx
        (mempool ignored; OP_RETURN outputs are never in it)."""
        rows = []
        for block in self._blocks:
            for txid in block.txids:
                t = self._txs[txid]
                for vout, (script, value) in enumerate(t.outputs):
                    if script.startswith("6a"):
                        continue
                    s = self._spent.get((txid, vout))
                    if s is None or self._txs[s].height == 0:
                        rows.append((txid, vout, script, value, t.height, t.coinbase))
        return iter(rows)

    def _script_txs(self, script: str) -> list[SimTx]:
        txs = [self._txs[t] for t in self._by_script.get(script, ())]
        txs.sort(key=lambda t: (t.height or 1 << 62, t.order))
        return txs

    # ------------------------------------------------------------ writes

    @_locked
    def pay(self, outputs: list[tuple[str, int]], *, fee: int = 1000) -> str:
        """Faucet → addresses (sat), change back to the faucet; into the mempool."""
        scripts = [(address_to_script(a, self.network), v) for a, v in outputs]
        need = sum(v for _, v in scripts) + fee
        coins, total = [], 0
        for txid, vout, value, _h in sorted(self.utxos(self.faucet.script), key=lambda c: -c[2]):
            coins.append((txid, vout))
            total += value
            if total >= need:
                break
        if total < need:
            raise ValueError(f"the faucet holds {total} sat, {need} needed: give SimChain more faucet_coins")
        if total > need:
            scripts.append((self.faucet.script, total - need))
        return self._sign_and_add(coins, scripts, self.faucet)

    def pay_batched(self, outputs: list[tuple[str, int]], *, per_tx: int = 10, fee: int = 1000) -> list[str]:
        """`pay` in transactions of `per_tx` outputs (one address's history then
        stays small, as with real deposits)."""
        return [self.pay(outputs[i:i + per_tx], fee=fee) for i in range(0, len(outputs), per_tx)]

    @_locked
    def spend(self, coins: list[tuple[str, int]], outputs: list[tuple[str, int]], signer: Signer, *,
              fee: int = 1000) -> str:
        """Spend `coins` with keys from `signer`; outputs must sum to inputs − fee."""
        scripts = [(address_to_script(a, self.network), v) for a, v in outputs]
        total = sum(self._coin(txid, vout)[1] for txid, vout in coins)
        if sum(v for _, v in scripts) != total - fee:
            raise ValueError(f"outputs sum to {sum(v for _, v in scripts)}, inputs − fee is {total - fee}")
        return self._sign_and_add(coins, scripts, signer)

    @_locked
    def mine(self, n: int = 1) -> list[str]:
        """Mine `n` blocks; the first takes the whole mempool."""
        return [self._mine_block(MINER_SCRIPT, None, take_mempool=i == 0).hash for i in range(n)]

    @_locked
    def reorg(self, depth: int, *, drop: Collection[str] = (), new_blocks: int | None = None) -> list[str]:
        """Disconnect the last `depth` blocks; their transactions go back to the
        mempool except `drop` and their descendants; then mine `new_blocks`
        (default depth + 1) empty blocks with new hashes."""
        if not 1 <= depth < len(self._blocks):
            raise ValueError(f"cannot disconnect {depth} blocks of a chain of {len(self._blocks)}")
        gone = self._blocks[-depth:]
        del self._blocks[-depth:]
        returned: list[str] = []
        removed = set(drop)
        for block in gone:
            del self._by_hash[block.hash]
            removed.add(block.txids[0])  # its coinbase
            returned += block.txids[1:]
        order = returned + list(self._mempool)
        unknown = set(drop) - set(order)
        if unknown:
            raise ValueError(f"drop: {sorted(unknown)} not in the disconnected blocks or the mempool")
        for txid in order:  # topological: a descendant comes after its parent
            if any(prev in removed for prev, _ in self._txs[txid].inputs):
                removed.add(txid)
        # descendants first: forgetting a tx needs its parents' outputs
        for txid in reversed([b.txids[0] for b in gone] + [t for t in order if t in removed]):
            self._forget(txid)
        self._mempool = {}
        for txid in order:
            if txid not in removed:
                t = self._txs[txid]
                t.height, t.order = 0, next(self._seq)
                self._mempool[txid] = None
        self.revision += 1
        n = depth + 1 if new_blocks is None else new_blocks
        return [self._mine_block(MINER_SCRIPT, None, take_mempool=False).hash for _ in range(n)]

    # ------------------------------------------------------------ internals

    def _coin(self, txid: str, vout: int) -> tuple[str, int]:
        t = self._txs.get(txid)
        if t is None or not 0 <= vout < len(t.outputs):
            raise ValueError(f"no coin {txid}:{vout}")
        if (txid, vout) in self._spent:
            raise ValueError(f"coin {txid}:{vout} is already spent by {self._spent[(txid, vout)]}")
        return t.outputs[vout]

    def _sign_and_add(self, coins: list[tuple[str, int]], outputs: list[tuple[str, int]], signer: Signer) -> str:
        prevouts = [self._coin(txid, vout) for txid, vout in coins]
        unlocks = [signer.unlock(script) for script, _ in prevouts]
        legacy = all(u.kind == "pkh" for u in unlocks)
        tx = Transaction(network="testnet", witness_type="legacy" if legacy else "segwit", version=2)
        for (txid, vout), (_s, value), u in zip(coins, prevouts, unlocks):
            tx.add_input(txid, vout, value=value, **_input_args(u))
        for script, value in outputs:
            tx.add_output(value, lock_script=bytes.fromhex(script))
        for i, u in enumerate(unlocks):
            tx.sign(list(u.private_keys), index_n=i)
        raw = bytes.fromhex(tx.raw_hex())
        parsed = parse_tx(raw)
        if tx.signature_hash()[::-1].hex() != parsed.txid:
            raise RuntimeError("bitcoinlib's txid differs from the parsed one (simulator bug)")
        if self.check_signatures:
            if not tx.verify():
                raise RuntimeError("bitcoinlib built a transaction that does not verify (simulator bug)")
            for i, (script, value) in enumerate(prevouts):
                check_input(parsed, i, bytes.fromhex(script), value)
        self._add(parsed, raw, 0, next(self._seq))
        self._mempool[parsed.txid] = None
        self.revision += 1
        return parsed.txid

    def _add(self, parsed: ParsedTx, raw: bytes, height: int, order: int) -> SimTx:
        inputs = [] if parsed.coinbase else [(i.prev_txid, i.vout) for i in parsed.inputs]
        in_values = [self._txs[p].outputs[v][1] for p, v in inputs]
        outputs = [(s.hex(), v) for v, s in parsed.outputs]
        fee = sum(in_values) - sum(v for _, v in outputs) if inputs else 0
        t = SimTx(parsed.txid, raw.hex(), inputs, outputs, height, fee, parsed.size, parsed.vsize, parsed.weight,
                  parsed.locktime, parsed.version, parsed.coinbase, parsed.wtxid, in_values, order)
        self._txs[t.txid] = t
        for p, v in inputs:
            self._spent[(p, v)] = t.txid
            self._by_script.setdefault(self._txs[p].outputs[v][0], {})[t.txid] = None
        for script, _ in outputs:
            self._by_script.setdefault(script, {})[t.txid] = None
        return t

    def _forget(self, txid: str) -> None:
        t = self._txs.pop(txid)
        for p, v in t.inputs:
            if self._spent.get((p, v)) == txid:
                del self._spent[(p, v)]
            if p in self._txs:
                self._by_script.get(self._txs[p].outputs[v][0], {}).pop(txid, None)
        for script, _ in t.outputs:
            self._by_script.get(script, {}).pop(txid, None)
        self._mempool.pop(txid, None)

    def _mine_block(self, payout_script: str, timestamp: int | None, *, take_mempool: bool) -> SimBlock:
        height = len(self._blocks)
        prev = self._blocks[-1] if self._blocks else None
        if timestamp is None:
            timestamp = max(self._clock(), prev.timestamp + 1 if prev else 0)
        txids = list(self._mempool) if take_mempool else []
        fees = sum(self._txs[t].fee for t in txids)
        reward = (50 * COIN >> (height // _HALVING)) + fees
        raw_cb = build_coinbase(height, next(self._extranonce), [(reward, bytes.fromhex(payout_script))],
                                [self._txs[t].wtxid for t in txids])
        cb = self._add(parse_tx(raw_cb), raw_cb, height, 0)
        all_txids = [cb.txid] + txids
        for i, txid in enumerate(all_txids):
            t = self._txs[txid]
            t.height, t.order = height, i
        self._mempool = {} if take_mempool else self._mempool
        root = merkle_root(all_txids)
        prev_hash = prev.hash if prev else "00" * 32
        nonce = 0
        while True:  # meet the regtest target, like a real regtest block (two tries on average)
            header = block_header(0x20000000, prev_hash, root, timestamp, BITS, nonce)
            digest = sha256d(header)
            if int.from_bytes(digest, "little") <= _TARGET:
                break
            nonce += 1
        txs = [self._txs[t] for t in all_txids]
        size = 80 + len(_compact(len(txs))) + sum(t.size for t in txs)
        weight = 4 * (80 + len(_compact(len(txs)))) + sum(t.weight for t in txs)
        block = SimBlock(height, digest[::-1].hex(), timestamp, prev_hash, tuple(all_txids), header.hex(),
                         0x20000000, BITS, nonce, root[::-1].hex(), size, weight)
        self._blocks.append(block)
        self._by_hash[block.hash] = block
        self.revision += 1
        return block


def _compact(n: int) -> bytes:
    return bytes([n]) if n < 0xFD else b"\xfd" + n.to_bytes(2, "little")


def _input_args(u: Unlock) -> dict[str, Any]:
    """bitcoinlib add_input arguments per script kind (checked against the 0.7.10
    source: Input.update_scripts builds scriptSig/witness from these)."""
    if u.kind == "pkh":
        return {"keys": [u.private_keys[0]], "script_type": "sig_pubkey", "witness_type": "legacy"}
    if u.kind == "sh-wpkh":
        return {"keys": [u.private_keys[0]], "script_type": "p2sh_p2wpkh", "witness_type": "p2sh-segwit"}
    if u.kind == "wpkh":
        return {"keys": [u.private_keys[0]], "script_type": "sig_pubkey", "witness_type": "segwit"}
    if u.kind in ("wsh-sortedmulti", "wsh-multi"):
        # public keys in script order, sort=False: bitcoinlib must not reorder a `multi`
        return {"keys": list(u.public_keys), "script_type": "p2sh_multisig", "witness_type": "segwit",
                "sigs_required": u.sigs_required, "sort": False}
    raise ValueError(f"spending {u.kind} coins is not supported")
