"""Bitcoin addresses: which network they belong to, their canonical text and
their output script. Pure Python (see codec.py for why not bdk)."""

from __future__ import annotations

import re

from .codec import BECH32_CONST, BECH32M_CONST, b58decode_check, bech32_decode

__all__ = ["NETWORKS", "address_script", "check_address", "check_network", "describe_networks"]

NETWORKS = ("bitcoin", "testnet", "signet", "regtest")
_MAIN = ("bitcoin",)
_TEST = ("testnet", "signet", "regtest")
_HRPS = {"bc": _MAIN, "tb": ("testnet", "signet"), "bcrt": ("regtest",)}
_BASE58 = {0x00: ("p2pkh", _MAIN), 0x05: ("p2sh", _MAIN),
           0x6F: ("p2pkh", _TEST), 0xC4: ("p2sh", _TEST)}
_WIF_VERSIONS = (0x80, 0xEF)
_PRIVATE_LOOK = re.compile(r"^([5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}|(0x)?[0-9a-fA-F]{64})$")
_WATCHED = "only P2PKH, P2SH, P2WPKH, P2WSH and P2TR addresses are watched"


def check_network(network: str) -> str:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; use one of {' | '.join(NETWORKS)}")
    return network


def describe_networks(networks: tuple[str, ...]) -> str:
    """How to name the networks an address or key belongs to."""
    if networks == _MAIN:
        return "mainnet (bitcoin)"
    if len(networks) == 1:
        return networks[0]
    return ", ".join(networks[:-1]) + " or " + networks[-1]


def check_address(address: str, network: str) -> str:
    """The canonical form of a valid address of `network` (bech32 lowercased,
    base58 unchanged); ValueError saying what is wrong otherwise."""
    canonical, networks, _ = _decode(address)
    if check_network(network) not in networks:
        raise ValueError(f"{canonical} is a {describe_networks(networks)} address, but this "
                         f"chain's network is {network}; give an address of {network} or fix "
                         "the chain's `network`")
    return canonical


def address_script(address: str, network: str) -> str:
    """The scriptPubKey (lowercase hex) of a valid address of `network`."""
    check_address(address, network)
    return _decode(address)[2].hex()


def _show(text: str) -> str:
    """The input as messages may quote it: never what could be a private key."""
    return text[:4] + "…" if _PRIVATE_LOOK.match(text) or len(text) > 90 else text


def _decode(text: str) -> tuple[str, tuple[str, ...], bytes]:
    """(canonical text, networks it belongs to, scriptPubKey)."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected an address, got nothing")
    if text != text.strip() or " " in text:
        raise ValueError(f"{text.strip()!r} contains spaces; write the address alone")
    if text.startswith("0x"):
        raise ValueError(f"{_show(text)} is an Ethereum address or hex string, not a Bitcoin address")
    lower = text.lower()
    hrp = lower[:max(lower.rfind("1"), 0)]
    if hrp in _HRPS:
        return _decode_segwit(text, lower)
    if hrp.isalpha() and _is_bech32(lower):
        raise ValueError(f"{lower} has the prefix {hrp}1, which no Bitcoin network uses "
                         "(bc1 mainnet, tb1 testnet/signet, bcrt1 regtest)")
    return _decode_base58(text)


def _is_bech32(lower: str) -> bool:
    try:
        bech32_decode(lower)
    except ValueError:
        return False
    return True


def _decode_segwit(text: str, lower: str) -> tuple[str, tuple[str, ...], bytes]:
    if text not in (lower, text.upper()):
        raise ValueError(f"{text} mixes upper and lower case, which bech32 forbids; "
                         "write it all lowercase")
    try:
        hrp, version, program, const = bech32_decode(lower)
    except ValueError as e:
        raise ValueError(f"{lower} is not a valid Bitcoin address: {e}") from None
    networks = _HRPS[hrp]
    if const != (BECH32_CONST if version == 0 else BECH32M_CONST):
        raise ValueError(f"{lower} is not a valid Bitcoin address: segwit v{version} uses "
                         f"{'bech32' if version == 0 else 'bech32m'} checksums (BIP 350)")
    if version == 0 and len(program) not in (20, 32):
        raise ValueError(f"{lower} is not a valid Bitcoin address: a v0 witness program is "
                         "20 or 32 bytes")
    if version > 1 or (version == 1 and len(program) != 32):
        raise ValueError(f"{lower} is a segwit v{version} address of {len(program)} bytes, not a "
                         f"type the auditor reads; {_WATCHED}")
    op = 0 if version == 0 else 0x50 + version
    return lower, networks, bytes([op, len(program)]) + program


def _decode_base58(text: str) -> tuple[str, tuple[str, ...], bytes]:
    try:
        payload = b58decode_check(text)
    except ValueError as e:
        raise ValueError(f"{_show(text)} is not a valid Bitcoin address: {e}") from None
    version = payload[0]
    if len(payload) == 78:
        raise ValueError(f"{text[:4]}… is an extended key, not an address; an xpub goes under "
                         "the wallet's `descriptors` (a private key never goes in the config)")
    if version in _WIF_VERSIONS and len(payload) in (33, 34):
        raise ValueError(f"{_show(text)} is a WIF private key, not an address; the auditor is "
                         "watch-only: give the address (and treat this key as exposed)")
    kind = _BASE58.get(version)
    if kind is None or len(payload) != 21:
        raise ValueError(f"{_show(text)} is not a Bitcoin address (unknown base58 version "
                         f"{version}); {_WATCHED}")
    h = payload[1:]
    script = (b"\x76\xa9\x14" + h + b"\x88\xac") if kind[0] == "p2pkh" else (b"\xa9\x14" + h + b"\x87")
    return text, kind[1], script
