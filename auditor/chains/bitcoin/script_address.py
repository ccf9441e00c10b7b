"""The address of an output script (the reverse of `addresses.address_script`).

Transfers name their counterparties by address, because that is what
sanctions lists, withdrawal requests and allowlists hold. Every standard
output type has one: P2PKH and P2SH in base58check (`codec.b58encode_check`),
segwit programs in bech32 (v0, BIP 173) or bech32m (v1–16, BIP 350).
Anything else (bare public keys, bare multisig, OP_RETURN, non-standard
scripts) has no address and is named `script:<hex>` so it can still be shown
and listed. Pure functions, no I/O.
"""

from __future__ import annotations

from .addresses import check_network
from .codec import BECH32_CONST, BECH32M_CONST, b58encode_check

__all__ = ["script_address", "script_name", "SCRIPT_PREFIX"]

SCRIPT_PREFIX = "script:"
_BASE58_VERSIONS = {"bitcoin": (0x00, 0x05), "testnet": (0x6F, 0xC4), "signet": (0x6F, 0xC4),
                    "regtest": (0x6F, 0xC4)}
_HRP = {"bitcoin": "bc", "testnet": "tb", "signet": "tb", "regtest": "bcrt"}
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _segwit_address(hrp: str, version: int, program: bytes) -> str:
    data = [version] + _to_5bit(program)
    const = BECH32_CONST if version == 0 else BECH32M_CONST
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    chk = _polymod(expanded + data + [0] * 6) ^ const
    checksum = [(chk >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def script_address(script: str, network: str) -> str | None:
    """The address of `script` (scriptPubKey, lowercase hex) on `network`, or None
    when the script type has no address."""
    check_network(network)
    raw = bytes.fromhex(script)
    n = len(raw)
    if n == 25 and raw[:3] == b"\x76\xa9\x14" and raw[23:] == b"\x88\xac":
        return b58encode_check(bytes([_BASE58_VERSIONS[network][0]]) + raw[3:23])
    if n == 23 and raw[:2] == b"\xa9\x14" and raw[22] == 0x87:
        return b58encode_check(bytes([_BASE58_VERSIONS[network][1]]) + raw[2:22])
    if 4 <= n <= 42 and (raw[0] == 0 or 0x51 <= raw[0] <= 0x60) and raw[1] == n - 2:
        version = 0 if raw[0] == 0 else raw[0] - 0x50
        if version == 0 and n - 2 not in (20, 32):
            return None  # BIP 141: a v0 program of another length cannot be spent
        return _segwit_address(_HRP[network], version, raw[2:])
    return None


def script_name(script: str, network: str) -> str:
    """The address of `script`, or `script:<hex>` when it has none."""
    return script_address(script, network) or SCRIPT_PREFIX + script
