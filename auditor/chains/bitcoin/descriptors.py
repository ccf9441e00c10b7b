"""Bitcoin addresses, extended public keys and output descriptors: checked,
made canonical, split into receive/change branches and derived. Pure: no I/O.

bdkpython (rust-miniscript) parses descriptors and derives addresses. The
checks in front of it are our own so that a refusal names the problem in the
user's terms (a private key, a key of another network, a hardened step after
an xpub, a checksum that does not match) — bdk's errors deliberately omit the
input. Accepted: `pkh(K)`, `sh(wpkh(K))`, `wpkh(K)`, `tr(K)`, and
`wsh(multi|sortedmulti(k,K,…))` (also inside `sh(…)`, and `sh(multi|sortedmulti)`),
K an xpub/tpub with an optional `[fingerprint/path]` origin and unhardened
steps ending in `/*`, `/0/*`, `/1/*` or `/<0;1>/*`, or a hex public key.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import bdkpython as bdk

from .addresses import NETWORKS, address_script, check_address, check_network
from .codec import descriptor_checksum
from .keys import KeyPart, split_key

__all__ = [
    "NETWORKS",
    "Branch",
    "address_script",
    "branches",
    "check_address",
    "check_descriptor",
    "derive",
    "descriptor_checksum",
    "xpub_descriptor",
]

_SINGLE = ("pkh", "wpkh", "tr")
_MULTI = ("multi", "sortedmulti")
_ACCEPTED = ("pkh(KEY), sh(wpkh(KEY)), wpkh(KEY), tr(KEY), wsh(multi(k,KEY,…)), "
             "wsh(sortedmulti(k,KEY,…)) (also sh(…) and sh(wsh(…)) multisig)")
_TEMPLATES = {"pkh": "pkh({})", "sh_wpkh": "sh(wpkh({}))", "wpkh": "wpkh({})"}
_BDK_NETWORKS = {"bitcoin": bdk.Network.BITCOIN, "testnet": bdk.Network.TESTNET,
                 "signet": bdk.Network.SIGNET, "regtest": bdk.Network.REGTEST}
_BRANCH_STEP = re.compile(r"/(\d+)/\*")
_RANGED_KEY = re.compile(r"(\[[^\]]*\])?([xt]pub[1-9A-HJ-NP-Za-km-z]+)((?:/\d+)+)/\*")
_PARALLEL_MIN = 1000  # below this a thread pool costs more than it saves


@dataclass(frozen=True)
class Branch:
    """One derivation branch: `descriptor` has no `<0;1>` and no checksum."""

    descriptor: str
    ranged: bool
    receive: bool


# -- public API ---------------------------------------------------------------
def xpub_descriptor(key: str, network: str) -> str:
    """A bare xpub/ypub/zpub/tpub/upub/vpub → its descriptor with receive and
    change branches: `pkh(xpub/<0;1>/*)`, `sh(wpkh(…))` or `wpkh(…)`."""
    part = split_key(key.strip(), network)
    if "/" in part.identity:  # the key's own derivation steps
        raise ValueError(f"{part.preview} is followed by derivation steps; a bare key takes "
                         "none (/<0;1>/* is added): write a descriptor to choose other steps")
    if part.script is None:
        raise ValueError(f"{part.preview} is a multisig key (SLIP-132); write the wallet as "
                         "a descriptor instead: wsh(sortedmulti(k,xpub…/<0;1>/*,…))")
    if part.script == "tr" or not part.extended:
        raise ValueError(f"{key.strip()[:12]}… is not an extended public key (xpub, ypub, zpub, "
                         "tpub, upub or vpub)")
    return check_descriptor(_TEMPLATES[part.script].format(part.text + "/<0;1>/*"), network)


def check_descriptor(text: str, network: str) -> str:
    """The canonical public descriptor (no checksum) of `text`, or ValueError
    saying what is wrong. A bare extended public key is turned into its
    descriptor (see `xpub_descriptor`)."""
    network_kind(network)
    text = text.strip()
    if "(" not in text and "#" not in text:
        return xpub_descriptor(text, network)
    body, _, checksum = text.partition("#")
    if checksum:
        _verify_checksum(body, checksum)
    keys = _shape(body)
    parts = [split_key(k, network) for k in keys]
    _check_parts(parts)
    normalized = body
    for raw, part in zip(keys, parts):
        normalized = normalized.replace(raw, part.text, 1)
    return _bdk_canonical(normalized, network)


def branches(descriptor: str) -> tuple[Branch, ...]:
    """The branches of a canonical descriptor: `<0;1>` gives receive (`/0/*`)
    and change (`/1/*`); a `/1/*` descriptor alone is change; others receive."""
    text = descriptor.partition("#")[0].strip()
    parsed = bdk.Descriptor(text, _kind_of(text))
    ranged = parsed.has_wildcard()
    if parsed.is_multipath():
        singles = [_strip(str(d)) for d in parsed.to_single_descriptors()]
        return tuple(Branch(d, ranged, i == 0) for i, d in enumerate(singles))
    steps = set(_BRANCH_STEP.findall(text))
    return (Branch(_strip(str(parsed)), ranged, not (ranged and steps == {"1"})),)


def derive(branch_descriptor: str, network: str, start: int, stop: int) -> list[tuple[str, str]]:
    """(address, scriptPubKey hex) for indexes start..stop-1 of a single-branch
    descriptor; a non-ranged descriptor has index 0 only."""
    if not 0 <= start <= stop <= 2**31:
        raise ValueError(f"derivation range {start}..{stop} is outside 0..2^31")
    prepared, ranged = _prepared(branch_descriptor, network)
    if not ranged:
        if start > 0 or stop == 0:
            return []
        addr = bdk.Descriptor(prepared, network_kind(network)).derive_address(
            0, _BDK_NETWORKS[network])
        return [(str(addr), addr.script_pubkey().to_bytes().hex())]
    workers = min(os.cpu_count() or 1, 4, max(1, (stop - start) // _PARALLEL_MIN))
    if workers == 1:
        return _derive_range(prepared, network, start, stop)
    size = -(-(stop - start) // workers)
    spans = [(a, min(a + size, stop)) for a in range(start, stop, size)]

    def job(span: tuple[int, int]) -> list[tuple[str, str]]:
        return _derive_range(prepared, network, span[0], span[1])

    with ThreadPoolExecutor(len(spans)) as pool:  # bdk calls release the GIL
        parts = list(pool.map(job, spans))
    return [item for part in parts for item in part]


# -- checking -----------------------------------------------------------------
def _verify_checksum(body: str, checksum: str) -> None:
    try:
        expected = descriptor_checksum(body)
    except ValueError as e:
        raise ValueError(f"{e}; copy the descriptor again from the wallet that exported it") from None
    if checksum != expected:
        raise ValueError(f"the checksum #{checksum[:8]} does not match the descriptor: it was "
                         "changed or mistyped after it was exported; copy it again from the "
                         "wallet software")


def _call(text: str) -> tuple[str, list[str]] | None:
    """`name(a,b,…)` → (name, [a, b, …]), splitting at top-level commas only."""
    m = re.fullmatch(r"([a-z_]+)\((.*)\)", text, re.S)
    if m is None:
        return None
    args, depth, start = [], 0, 0
    inner = m.group(2)
    for i, ch in enumerate(inner):
        depth += (ch in "([{<") - (ch in ")]}>")
        if depth < 0:
            return None
        if ch == "," and depth == 0:
            args.append(inner[start:i])
            start = i + 1
    if depth != 0:
        return None
    return m.group(1), [*args, inner[start:]]


def _shape(body: str) -> list[str]:
    """The key expressions of an accepted descriptor shape, in order."""
    call = _call(body)
    if call is None:
        raise ValueError(f"`{body[:24]}…` is not a descriptor; expected one of {_ACCEPTED}")
    name, args = call
    if name == "tr" and len(args) > 1:
        raise ValueError("taproot script trees are not supported; use tr(KEY) (key path only)")
    if name in _SINGLE and len(args) == 1 and _call(args[0]) is None:
        return args
    inner = _call(args[0]) if len(args) == 1 else None
    if name == "sh" and inner is not None:
        if inner[0] == "wpkh" and len(inner[1]) == 1 and _call(inner[1][0]) is None:
            return inner[1]
        if inner[0] == "wsh" and len(inner[1]) == 1:
            inner = _call(inner[1][0])
    if name in ("sh", "wsh") and inner is not None and inner[0] in _MULTI:
        return _multi_keys(inner[1])
    raise ValueError(f"`{name}(…)` descriptors of this shape are not supported; "
                     f"use one of {_ACCEPTED}")


def _multi_keys(args: list[str]) -> list[str]:
    k, keys = args[0].strip(), args[1:]
    if not k.isdigit() or not 1 <= int(k) <= len(keys):
        raise ValueError(f"multisig threshold {k!r} must be a number from 1 to the number of "
                         f"keys ({len(keys)})")
    if len(keys) > 20:
        raise ValueError(f"{len(keys)} keys: a multisig descriptor takes at most 20")
    return keys


def _check_parts(parts: list[KeyPart]) -> None:
    seen: set[str] = set()
    multipath = {p.multipath for p in parts}
    if len(multipath) > 1:
        raise ValueError("either every key ends in /<0;1>/* or none does")
    ranged = {p.ranged for p in parts}
    if len(ranged) > 1:
        raise ValueError("either every key ends in /* (ranged) or none does")
    for p in parts:
        if p.identity in seen:
            raise ValueError(f"the key {p.preview} appears twice; each cosigner's key is listed once")
        seen.add(p.identity)


def _bdk_canonical(text: str, network: str) -> str:
    try:
        parsed = bdk.Descriptor(text, network_kind(network))
    except Exception as e:  # bdk omits the input from its messages; say which kind
        kind = type(e).__name__
        raise ValueError(f"the descriptor is not valid ({kind}): check that public keys are "
                         "compressed in segwit descriptors and x-only (64 hex) or xpubs in "
                         "tr()") from None
    return _strip(str(parsed))


def _strip(text: str) -> str:
    return text.partition("#")[0]


def network_kind(network: str) -> Any:
    """bdk's NetworkKind: xpubs are mainnet keys, tpubs serve every test network."""
    return bdk.NetworkKind.MAIN if check_network(network) == "bitcoin" else bdk.NetworkKind.TEST


def _kind_of(text: str) -> Any:
    return bdk.NetworkKind.TEST if "tpub" in text else bdk.NetworkKind.MAIN


# -- deriving -----------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _prepared(branch: str, network: str) -> tuple[str, bool]:
    """The branch with each key's fixed unhardened steps derived once (`xpub/0/*`
    → `[…/0]xpub'/*`): the addresses are the same and each index then costs one
    public derivation per key instead of two."""
    text = _strip(branch.strip())
    kind = network_kind(network)
    parsed = bdk.Descriptor(text, kind)
    if parsed.is_multipath():
        raise ValueError("derive takes one branch; split the descriptor with branches()")

    def step(m: re.Match[str]) -> str:
        key = bdk.DescriptorPublicKey.from_string((m.group(1) or "") + m.group(2))
        return str(key.derive(bdk.DerivationPath("m" + m.group(3)))) + "/*"

    return _RANGED_KEY.sub(step, text), parsed.has_wildcard()


def _derive_range(prepared: str, network: str, start: int, stop: int) -> list[tuple[str, str]]:
    # A single-descriptor wallet derives faster than Descriptor.derive_address
    # (whose multisig path is ~3x slower); revealing from 0 is one FFI call.
    net = _BDK_NETWORKS[network]
    wallet = bdk.Wallet.create_single(bdk.Descriptor(prepared, network_kind(network)), net,
                                      bdk.Persister.new_in_memory(), 0)
    ext = bdk.KeychainKind.EXTERNAL
    if start == 0:
        infos = wallet.reveal_addresses_to(ext, stop - 1) if stop else []
    else:
        infos = [wallet.peek_address(ext, i) for i in range(start, stop)]
    return [(str(i.address), i.address.script_pubkey().to_bytes().hex()) for i in infos]
