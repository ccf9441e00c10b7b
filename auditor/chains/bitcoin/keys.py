"""One key expression of a descriptor (`[origin]xpub…/0/*`, a hex public key):
checked for private material, network and derivability, and normalized
(SLIP-132 ypub/zpub/upub/vpub/Ypub/Zpub/Upub/Vpub versions become xpub/tpub:
in a descriptor the script type is written out, so the version adds nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .addresses import check_network, describe_networks
from .codec import b58decode_check, b58encode_check

__all__ = ["PRIVATE_PREFIXES", "KeyPart", "safe_preview", "split_key"]

_MAIN = ("bitcoin",)
_TEST = ("testnet", "signet", "regtest")
# version → (name, networks, script of a bare key; None: SLIP-132 multisig)
_PUBLIC: dict[int, tuple[str, tuple[str, ...], str | None]] = {
    0x0488B21E: ("xpub", _MAIN, "pkh"), 0x049D7CB2: ("ypub", _MAIN, "sh_wpkh"),
    0x04B24746: ("zpub", _MAIN, "wpkh"), 0x0295B43F: ("Ypub", _MAIN, None),
    0x02AA7ED3: ("Zpub", _MAIN, None),
    0x043587CF: ("tpub", _TEST, "pkh"), 0x044A5262: ("upub", _TEST, "sh_wpkh"),
    0x045F1CF6: ("vpub", _TEST, "wpkh"), 0x024289EF: ("Upub", _TEST, None),
    0x02575483: ("Vpub", _TEST, None),
}
_PRIVATE = {0x0488ADE4, 0x049D7878, 0x04B2430C, 0x0295B005, 0x02AA7A99,
            0x04358394, 0x044A4E28, 0x045F18BC, 0x024285B5, 0x02575048}
PRIVATE_PREFIXES = ("xprv", "yprv", "zprv", "Yprv", "Zprv", "tprv", "uprv", "vprv", "Uprv", "Vprv")
_XPUB = {_MAIN: 0x0488B21E, _TEST: 0x043587CF}
_KEY = re.compile(r"(?:\[(?P<origin>[^\]]*)\])?(?P<body>[^/\[\]]*)(?P<path>/.*)?", re.S)
_ORIGIN = re.compile(r"[0-9a-fA-F]{8}(/\d+['hH]?)*")
_HEX = re.compile(r"[0-9a-fA-F]+")
_LOOKS_WIF = re.compile(r"[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}")
_HARDENED = re.compile(r"(\d+|\*)['hH]")
_PRIVATE_KEY = ("{} is a private key; the auditor is watch-only: use the public key "
                "(the xpub or public descriptor your wallet exports) instead, and treat "
                "this private key as exposed")


@dataclass(frozen=True)
class KeyPart:
    text: str  # normalized: origin + xpub/tpub or hex key + steps
    preview: str  # safe to show: the first characters of the key
    identity: str  # the key and its steps, for duplicate detection
    extended: bool
    script: str | None  # bare-key script: pkh | sh_wpkh | wpkh | hex; None: SLIP-132 multisig
    ranged: bool
    multipath: bool


def split_key(text: str, network: str) -> KeyPart:
    """Check and normalize one key expression; ValueError says what is wrong."""
    check_network(network)
    m = _KEY.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"`{text.strip()[:16]}…` is not a key expression; write "
                         "[fingerprint/path]xpub…/<0;1>/*")
    origin, body, path = m.group("origin"), m.group("body"), m.group("path") or ""
    preview = safe_preview(body)
    if body.startswith(PRIVATE_PREFIXES):
        raise ValueError(_PRIVATE_KEY.format(preview))
    if origin is not None and not _ORIGIN.fullmatch(origin):
        raise ValueError(f"the key origin [{origin}] must be the 8-hex-digit master fingerprint "
                         "and the path, e.g. [d34db33f/84h/0h/0h]")
    prefix = f"[{origin}]" if origin is not None else ""
    if _HEX.fullmatch(body):
        return _hex_key(prefix, body, path)
    key, script = _extended(body, network, preview)
    ranged, multipath = _steps(path, preview)
    return KeyPart(prefix + key + path, preview, key + path, True, script, ranged, multipath)


def safe_preview(text: str) -> str:
    """The start of a key as messages may show it: 4 characters of anything that
    could be private key material, 12 otherwise."""
    looks_private = text.startswith(PRIVATE_PREFIXES) or _LOOKS_WIF.fullmatch(text) \
        or _HEX.fullmatch(text)
    return text[:4] + "…" if looks_private else text[:12] + "…"


def _hex_key(prefix: str, body: str, path: str) -> KeyPart:
    preview = safe_preview(body)
    compressed = len(body) == 66 and body[:2] in ("02", "03")
    if not (compressed or len(body) == 64 or (len(body) == 130 and body[:2] == "04")):
        raise ValueError(f"{preview} is not a public key: a hex public key is 66 hex digits "
                         "(02/03…), 130 (04…) or 64 (x-only, tr() only)")
    if path:
        raise ValueError(f"{preview} is a plain public key: it has no derivation steps; "
                         "remove the /… after it or use an xpub")
    lower = body.lower()
    return KeyPart(prefix + lower, preview, lower, False, "hex", False, False)


def _extended(body: str, network: str, preview: str) -> tuple[str, str | None]:
    """The xpub/tpub form of an extended public key, and its bare-key script."""
    try:
        payload = b58decode_check(body)
    except ValueError as e:
        raise ValueError(f"{preview} is not a valid public key: {e}; expected an xpub or tpub "
                         "(or a hex public key)") from None
    version = int.from_bytes(payload[:4], "big")
    if version in _PRIVATE or (payload[:1] in (b"\x80", b"\xef") and len(payload) in (33, 34)):
        raise ValueError(_PRIVATE_KEY.format(body[:4] + "…"))
    known = _PUBLIC.get(version)
    if known is None or len(payload) != 78:
        raise ValueError(f"{preview} is not an extended public key (unknown version "
                         f"{payload[:4].hex()}); expected an xpub or tpub")
    name, networks, script = known
    if network not in networks:
        raise ValueError(f"{preview} is a {describe_networks(networks)} key ({name}), but "
                         f"this chain's network is {network}; use the {network} wallet's key "
                         "or fix the chain's `network`")
    converted = b58encode_check(_XPUB[networks].to_bytes(4, "big") + payload[4:])
    return converted, script


def _steps(path: str, preview: str) -> tuple[bool, bool]:
    """(ranged, multipath) of the steps after an extended key."""
    steps = path.split("/")[1:]
    ranged = multipath = False
    for i, step in enumerate(steps):
        if _HARDENED.fullmatch(step):
            raise ValueError(f"the hardened step /{step} after {preview} cannot be derived from "
                             "a public key; give the xpub exported at the hardened path (the "
                             "account xpub) and only unhardened steps after it, e.g. /<0;1>/*")
        if step == "*":
            if i != len(steps) - 1:
                raise ValueError(f"`*` must be the last step after {preview}")
            ranged = True
        elif step.startswith("<"):
            if step != "<0;1>" or multipath:
                raise ValueError(f"/{step} after {preview}: only one /<0;1>/ (receive;change) "
                                 "step is supported")
            multipath = True
        elif not step.isdigit() or int(step) >= 2**31:
            raise ValueError(f"/{step} after {preview} is not a derivation step; use numbers "
                             "below 2^31, <0;1> and a final *")
    return ranged, multipath
