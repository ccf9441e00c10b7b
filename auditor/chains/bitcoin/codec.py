"""Bitcoin's text encodings: base58check, bech32/bech32m (BIP 173/350) and
the output descriptor checksum (BIP 380). Pure functions, no I/O.

Addresses are decoded here rather than by bdk so that a refusal can say
exactly what is wrong (a typo, the wrong network, a private key pasted in
place of an address), and because a 100,000-address deposit fleet is checked
at every config load.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "b58decode_check",
    "b58encode_check",
    "bech32_decode",
    "descriptor_checksum",
]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {c: i for i, c in enumerate(_BECH32)}
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def b58decode_check(text: str) -> bytes:
    """The payload of a base58check string. ValueError if a character is not
    base58 or the 4-byte checksum does not match."""
    bad = next((c for c in text if c not in _B58_INDEX), None)
    if bad is not None:
        raise ValueError(f"the character {bad!r} is not used in base58 (0, O, I and l never are)")
    n = 0
    for c in text:
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    raw = b"\0" * (len(text) - len(text.lstrip("1"))) + body
    if len(raw) < 5 or _sha256d(raw[:-4])[:4] != raw[-4:]:
        raise ValueError("its checksum does not match (a character is mistyped or missing)")
    return raw[:-4]


def b58encode_check(payload: bytes) -> str:
    raw = payload + _sha256d(payload)[:4]
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + "".join(reversed(out))


def _xor_table(generator: tuple[int, ...]) -> tuple[int, ...]:
    """For each 5-bit value shifted out, the XOR of the generator terms it selects
    (one lookup per character instead of five tests: config loads check 100k addresses)."""
    out = []
    for top in range(32):
        x = 0
        for i, g in enumerate(generator):
            if (top >> i) & 1:
                x ^= g
        out.append(x)
    return tuple(out)


_BECH32_XOR = _xor_table((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3))


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ v) ^ _BECH32_XOR[chk >> 25]
    return chk


def _convert_bits(data: list[int], frombits: int, tobits: int) -> bytes | None:
    """5-bit groups → bytes; None if the padding is not zero bits (< 5 of them)."""
    acc = bits = 0
    out = bytearray()
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return bytes(out)


def bech32_decode(text: str) -> tuple[str, int, bytes, int]:
    """A segwit address → (hrp, witness version, program, checksum constant).
    `text` must be all lowercase. ValueError says what is wrong."""
    if len(text) > 90:
        raise ValueError("it is longer than the 90 characters of a bech32 address")
    pos = text.rfind("1")
    hrp, rest = text[:pos], text[pos + 1:]
    if pos < 1 or len(rest) < 7:
        raise ValueError("it has no data part after the `1` separator")
    bad = next((c for c in rest if c not in _BECH32_INDEX), None)
    if bad is not None:
        raise ValueError(f"the character {bad!r} is not used in bech32 (1, b, i and o never are)")
    data = [_BECH32_INDEX[c] for c in rest]
    const = _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data)
    if const not in (BECH32_CONST, BECH32M_CONST):
        raise ValueError("its checksum does not match (a character is mistyped or missing)")
    program = _convert_bits(data[1:-6], 5, 8)
    if program is None or not 2 <= len(program) <= 40 or data[0] > 16:
        raise ValueError("its witness program is malformed")
    return hrp, data[0], program, const


# BIP 380: the characters a descriptor may contain, in the order the checksum uses.
_DESC_CHARSET = ("0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
                 "ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ")
_DESC_INDEX = {c: i for i, c in enumerate(_DESC_CHARSET)}
_DESC_XOR = _xor_table((0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD))


def _desc_polymod(symbols: list[int]) -> int:
    chk = 1
    for value in symbols:
        chk = ((chk & 0x7FFFFFFFF) << 5 ^ value) ^ _DESC_XOR[chk >> 35]
    return chk


def descriptor_checksum(text: str) -> str:
    """The 8-character BIP 380 checksum of a descriptor (without `#`).
    ValueError if `text` has a character descriptors cannot contain."""
    symbols: list[int] = []
    groups: list[int] = []
    for c in text:
        v = _DESC_INDEX.get(c)
        if v is None:
            raise ValueError(f"the character {c!r} cannot appear in a descriptor")
        symbols.append(v & 31)
        groups.append(v >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    checksum = _desc_polymod(symbols + [0] * 8) ^ 1
    return "".join(_BECH32[(checksum >> (5 * (7 - i))) & 31] for i in range(8))
