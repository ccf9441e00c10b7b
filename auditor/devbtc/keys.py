"""Deterministic regtest test wallets, one per descriptor type, with bitcoinlib keys.

Each `TestWallet` has fixed seeds, its public descriptor (`/<0;1>/*`, key
origins, no checksum), the account keys as tpub (and upub/vpub/Vpub, the
testnet/regtest forms of ypub/zpub/Zpub, where they apply), and the address,
script and keys at (branch, index). A `Signer` hands `SimChain.spend` what it
needs to sign a coin of a script it knows (multisig: 2 of the 3 keys).

Regtest uses testnet's base58 prefixes (m/n…, 2…) and `bcrt` for bech32;
bitcoinlib's own "regtest" network has mainnet prefixes, so keys are testnet
HD keys and addresses are encoded with bitcoinlib's encoding functions and the
regtest prefixes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

# importing this module runs auditor/devbtc/__init__.py first: BCL_DATA_DIR is set before bitcoinlib loads
from bitcoinlib.encoding import pubkeyhash_to_addr_base58, pubkeyhash_to_addr_bech32
from bitcoinlib.keys import HDKey
from bitcoinlib.scripts import Script
from fastecdsa.curve import secp256k1
from fastecdsa.point import Point

from .codec import hash160

__all__ = ["KINDS", "TestWallet", "Derived", "Unlock", "Signer", "WalletSigner", "KeySigner", "wallet",
           "all_wallets", "taproot_output_key"]

# kind: (descriptor template with {k} for key expressions, BIP 32 account path, number of keys)
KINDS: dict[str, tuple[str, str, int]] = {
    "pkh": ("pkh({k})", "44h/1h/0h", 1),
    "sh-wpkh": ("sh(wpkh({k}))", "49h/1h/0h", 1),
    "wpkh": ("wpkh({k})", "84h/1h/0h", 1),
    "wsh-sortedmulti": ("wsh(sortedmulti(2,{k}))", "48h/1h/0h/2h", 3),
    "wsh-multi": ("wsh(multi(2,{k}))", "48h/1h/1h/2h", 3),
    "tr": ("tr({k})", "86h/1h/0h", 1),
}
_SLIP132 = {"sh-wpkh": ("p2sh-segwit", False), "wpkh": ("segwit", False),
            "wsh-sortedmulti": ("segwit", True), "wsh-multi": ("segwit", True)}


@dataclass(frozen=True)
class Derived:
    branch: int
    index: int
    address: str
    script: str  # scriptPubKey hex
    public_keys: tuple[bytes, ...]  # in script order (sortedmulti: sorted)
    private_keys: tuple[Any, ...]  # bitcoinlib HDKeys, same order as the descriptor's keys


@dataclass(frozen=True)
class Unlock:
    """What `SimChain.spend` needs to sign one input."""

    kind: str
    public_keys: tuple[bytes, ...]  # in script order
    private_keys: tuple[Any, ...]  # the keys that sign (multisig: 2 of 3)
    sigs_required: int


class Signer(Protocol):
    def unlock(self, script: str) -> Unlock:
        """Keys for a coin of `script` (hex); KeyError if this signer does not own it."""
        ...


def taproot_output_key(internal_xonly: bytes) -> bytes:
    """BIP 86 output key: P + H_TapTweak(P)·G, P the even-y lift of the x-only key."""
    p = secp256k1.p
    x = int.from_bytes(internal_xonly, "big")
    y = pow((x * x * x + 7) % p, (p + 1) // 4, p)
    point = Point(x, y if y % 2 == 0 else p - y, curve=secp256k1)
    tag = hashlib.sha256(b"TapTweak").digest()
    t = int.from_bytes(hashlib.sha256(tag + tag + internal_xonly).digest(), "big")
    q = point + t * secp256k1.G
    return int(q.x).to_bytes(32, "big")


def _hardened_path(key: Any, path: str) -> Any:
    for step in path.split("/"):
        key = key.child_private(int(step.rstrip("h")), hardened=step.endswith("h"))
    return key


class TestWallet:
    """One descriptor wallet (`kind` in KINDS) from fixed seeds; addresses are
    derived on demand and cached."""

    __test__ = False  # not a pytest test class

    def __init__(self, kind: str, name: str = ""):
        template, path, n_keys = KINDS[kind]
        self.kind = kind
        self.name = name or kind
        self.network = "regtest"
        seeds = [hashlib.sha256(f"btcsim/{self.name}/{i}".encode()).digest() for i in range(n_keys)]
        masters = [HDKey.from_seed(s, network="testnet") for s in seeds]
        self.fingerprints = tuple(hash160(m.public_byte)[:4].hex() for m in masters)
        self.origin_path = path
        self.accounts = tuple(_hardened_path(m, path) for m in masters)
        self.tpubs = tuple(a.wif_public(witness_type="legacy", multisig=False) for a in self.accounts)
        slip = _SLIP132.get(kind)
        self.slip132 = tuple(a.wif_public(witness_type=slip[0], multisig=slip[1]) for a in self.accounts) \
            if slip else ()
        keys = ",".join(f"[{fp}/{path}]{t}/<0;1>/*" for fp, t in zip(self.fingerprints, self.tpubs))
        self.descriptor = template.format(k=keys)
        self._branches: dict[int, tuple[Any, ...]] = {}
        self._derived: dict[tuple[int, int], Derived] = {}
        self._by_script: dict[str, Derived] = {}

    def branch_descriptor(self, branch: int) -> str:
        """The single-branch descriptor (`/0/*` receive, `/1/*` change)."""
        return self.descriptor.replace("<0;1>", str(branch))

    def derive(self, branch: int, index: int) -> Derived:
        d = self._derived.get((branch, index))
        if d is None:
            d = self._derive(branch, index)
            self._derived[(branch, index)] = d
            self._by_script[d.script] = d
        return d

    def address(self, branch: int, index: int) -> str:
        return self.derive(branch, index).address

    def script(self, branch: int, index: int) -> str:
        return self.derive(branch, index).script

    def find(self, script: str, search: int = 100) -> Derived:
        """The derivation of `script`, looking past the cache up to `search` per branch."""
        if script in self._by_script:
            return self._by_script[script]
        for index in range(search):
            for branch in (0, 1):
                if self.derive(branch, index).script == script:
                    return self._by_script[script]
        raise KeyError(f"script {script} is not in the first {search} addresses of wallet {self.name}")

    def signer(self) -> WalletSigner:
        return WalletSigner(self)

    def _derive(self, branch: int, index: int) -> Derived:
        if branch not in self._branches:
            self._branches[branch] = tuple(a.child_private(branch) for a in self.accounts)
        privs = tuple(b.child_private(index) for b in self._branches[branch])
        pubs = tuple(k.public_byte for k in privs)
        script, address = self._script_and_address(pubs)
        if self.kind == "wsh-sortedmulti":
            pubs = tuple(sorted(pubs))
        return Derived(branch, index, address, script.hex(), pubs, privs)

    def _script_and_address(self, pubs: tuple[bytes, ...]) -> tuple[bytes, str]:
        kind = self.kind
        if kind == "pkh":
            h = hash160(pubs[0])
            return b"\x76\xa9\x14" + h + b"\x88\xac", pubkeyhash_to_addr_base58(h, prefix=b"\x6f")
        if kind == "sh-wpkh":
            h = hash160(b"\x00\x14" + hash160(pubs[0]))
            return b"\xa9\x14" + h + b"\x87", pubkeyhash_to_addr_base58(h, prefix=b"\xc4")
        if kind == "wpkh":
            h = hash160(pubs[0])
            return b"\x00\x14" + h, pubkeyhash_to_addr_bech32(h, prefix="bcrt", witver=0)
        if kind in ("wsh-sortedmulti", "wsh-multi"):
            ordered = sorted(pubs) if kind == "wsh-sortedmulti" else list(pubs)
            witness_script = Script(script_types=["multisig"], keys=ordered, sigs_required=2).serialize()
            h = hashlib.sha256(witness_script).digest()
            return b"\x00\x20" + h, pubkeyhash_to_addr_bech32(h, prefix="bcrt", witver=0)
        q = taproot_output_key(pubs[0][1:])
        return b"\x51\x20" + q, pubkeyhash_to_addr_bech32(q, prefix="bcrt", witver=1, checksum_xor=0x2BC830A3)


class WalletSigner:
    """Signs coins of one or more test wallets (multisig: the first two keys)."""

    def __init__(self, *wallets: TestWallet):
        self.wallets = wallets

    def unlock(self, script: str) -> Unlock:
        for w in self.wallets:
            try:
                d = w.find(script)
            except KeyError:
                continue
            if w.kind == "tr":
                raise KeyError("taproot spends are not supported (bitcoinlib 0.7.10 does not sign them)")
            signers = d.private_keys[:2] if len(d.private_keys) == 3 else d.private_keys
            return Unlock(w.kind, d.public_keys, signers, 2 if len(d.private_keys) == 3 else 1)
        raise KeyError(f"no test wallet owns script {script}")


class KeySigner:
    """One P2WPKH key (the chain's faucet)."""

    def __init__(self, seed: bytes):
        self.key = HDKey.from_seed(seed, network="testnet")
        self.public_key: bytes = self.key.public_byte
        self.script = (b"\x00\x14" + hash160(self.public_key)).hex()
        self.address: str = pubkeyhash_to_addr_bech32(hash160(self.public_key), prefix="bcrt", witver=0)

    def unlock(self, script: str) -> Unlock:
        if script != self.script:
            raise KeyError(f"script {script} is not the key's P2WPKH script")
        return Unlock("wpkh", (self.public_key,), (self.key,), 1)


_WALLETS: dict[str, TestWallet] = {}


def wallet(kind: str, name: str = "") -> TestWallet:
    """The shared test wallet of `kind` (derivations are cached across tests);
    a different `name` gives different seeds."""
    key = f"{kind}/{name}"
    if key not in _WALLETS:
        _WALLETS[key] = TestWallet(kind, name)
    return _WALLETS[key]


def all_wallets() -> list[TestWallet]:
    return [wallet(k) for k in KINDS]
