"""Bitcoin wire formats the simulator needs, written out so they can check
bitcoinlib rather than trust it: raw transactions (BIP 144 witness
serialization), txid/wtxid, merkle roots, block headers, coinbases with the
BIP 141 witness commitment, and addresses (base58check, BIP 173 bech32 and
BIP 350 bech32m) ⇄ scriptPubKey.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from io import BytesIO

__all__ = ["NETWORKS", "sha256d", "hash160", "TxIn", "ParsedTx", "parse_tx", "build_coinbase",
           "merkle_root", "block_header", "address_to_script", "script_to_address", "script_type",
           "bech32_encode", "bech32_decode", "base58check_encode", "base58check_decode", "push_data",
           "serialize_tx", "varint"]

# name: (p2pkh version byte, p2sh version byte, bech32 human-readable part)
NETWORKS: dict[str, tuple[int, int, str]] = {
    "bitcoin": (0x00, 0x05, "bc"),
    "testnet": (0x6F, 0xC4, "tb"),
    "signet": (0x6F, 0xC4, "tb"),
    "regtest": (0x6F, 0xC4, "bcrt"),
}


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


# ---------------------------------------------------------------- transactions

def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def _read(s: BytesIO, n: int) -> bytes:
    b = s.read(n)
    if len(b) != n:
        raise ValueError("raw transaction ends early")
    return b


def _readvarint(s: BytesIO) -> int:
    first = _read(s, 1)[0]
    if first < 0xFD:
        return first
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(_read(s, size), "little")


def _varbytes(s: BytesIO) -> bytes:
    return _read(s, _readvarint(s))


def push_data(data: bytes) -> bytes:
    """A minimal script push of `data` (≤ 75 bytes: one length byte)."""
    if len(data) > 75:
        raise ValueError("push_data handles pushes of at most 75 bytes")
    return bytes([len(data)]) + data


@dataclass(frozen=True)
class TxIn:
    prev_txid: str  # display order
    vout: int
    script_sig: bytes
    sequence: int
    witness: tuple[bytes, ...]


@dataclass(frozen=True)
class ParsedTx:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[tuple[int, bytes], ...]  # (value, scriptPubKey)
    locktime: int
    txid: str
    wtxid: str
    size: int
    weight: int

    @property
    def vsize(self) -> int:
        return (self.weight + 3) // 4

    @property
    def coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prev_txid == "00" * 32 and self.inputs[0].vout == 0xFFFFFFFF


def parse_tx(raw: bytes) -> ParsedTx:
    """Parse a raw transaction strictly (trailing bytes are an error) and compute its
    txid from the witness-stripped serialization, independently of whoever built it."""
    s = BytesIO(raw)
    version = struct.unpack("<i", _read(s, 4))[0]
    n_in = _readvarint(s)
    segwit = False
    if n_in == 0:
        if _read(s, 1) != b"\x01":
            raise ValueError("bad segwit flag")
        segwit = True
        n_in = _readvarint(s)
    ins = []
    for _ in range(n_in):
        prev = _read(s, 32)[::-1].hex()
        vout = struct.unpack("<I", _read(s, 4))[0]
        ins.append((prev, vout, _varbytes(s), struct.unpack("<I", _read(s, 4))[0]))
    outs = []
    for _ in range(_readvarint(s)):
        value = struct.unpack("<q", _read(s, 8))[0]
        outs.append((value, _varbytes(s)))
    witnesses: list[tuple[bytes, ...]] = [()] * n_in
    if segwit:
        witnesses = [tuple(_varbytes(s) for _ in range(_readvarint(s))) for _ in range(n_in)]
        if not any(witnesses):
            raise ValueError("witness serialization with only empty witnesses (BIP 144 forbids it)")
    locktime = struct.unpack("<I", _read(s, 4))[0]
    if s.read(1):
        raise ValueError("trailing bytes after the raw transaction")
    stripped = serialize_tx(version, ins, outs, locktime, None)
    txid = sha256d(stripped)[::-1].hex()
    wtxid = sha256d(raw)[::-1].hex() if segwit else txid
    inputs = tuple(TxIn(p, v, sc, sq, w) for (p, v, sc, sq), w in zip(ins, witnesses))
    return ParsedTx(version, inputs, tuple(outs), locktime, txid, wtxid, len(raw),
                    len(stripped) * 3 + len(raw))


def serialize_tx(version: int, ins: list[tuple[str, int, bytes, int]], outs: list[tuple[int, bytes]],
               locktime: int, witnesses: list[tuple[bytes, ...]] | None) -> bytes:
    parts = [struct.pack("<i", version)]
    if witnesses is not None:
        parts.append(b"\x00\x01")
    parts.append(varint(len(ins)))
    for prev, vout, script_sig, seq in ins:
        parts += [bytes.fromhex(prev)[::-1], struct.pack("<I", vout), varint(len(script_sig)), script_sig,
                  struct.pack("<I", seq)]
    parts.append(varint(len(outs)))
    for value, script in outs:
        parts += [struct.pack("<q", value), varint(len(script)), script]
    for w in witnesses or ():
        parts.append(varint(len(w)) + b"".join(varint(len(item)) + item for item in w))
    parts.append(struct.pack("<I", locktime))
    return b"".join(parts)


def _script_num(n: int) -> bytes:
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out and out[-1] & 0x80:
        out.append(0)
    return bytes(out)


def build_coinbase(height: int, extranonce: int, payouts: list[tuple[int, bytes]],
                   wtxids: list[str]) -> bytes:
    """A coinbase paying `payouts`, with the BIP 34 height and the BIP 141 witness
    commitment to the block's other transactions (`wtxids`, display order)."""
    script_sig = push_data(_script_num(height) or b"\x00") + push_data(struct.pack("<Q", extranonce)) + push_data(
        b"/btcsim/")
    reserved = b"\x00" * 32
    leaves = ["00" * 32] + wtxids  # the coinbase's own wtxid counts as zero
    commitment = sha256d(merkle_root(leaves) + reserved)
    outs = list(payouts) + [(0, b"\x6a\x24\xaa\x21\xa9\xed" + commitment)]
    return serialize_tx(2, [("00" * 32, 0xFFFFFFFF, script_sig, 0xFFFFFFFF)], outs, 0, [(reserved,)])


def merkle_root(txids: list[str]) -> bytes:
    """The merkle root (internal byte order) of txids given in display order."""
    level = [bytes.fromhex(t)[::-1] for t in txids]
    if not level:
        raise ValueError("a block has at least its coinbase")
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def block_header(version: int, prev_hash: str, merkle: bytes, timestamp: int, bits: int, nonce: int) -> bytes:
    return (struct.pack("<i", version) + bytes.fromhex(prev_hash)[::-1] + merkle
            + struct.pack("<III", timestamp, bits, nonce))


# ---------------------------------------------------------------- addresses

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def base58check_encode(payload: bytes) -> str:
    data = payload + sha256d(payload)[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


def base58check_decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58.find(ch)
        if i < 0:
            raise ValueError("not base58")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    data = b"\x00" * (len(text) - len(text.lstrip("1"))) + body
    if len(data) < 5 or sha256d(data[:-4])[:4] != data[-4:]:
        raise ValueError("bad base58 checksum")
    return data[:-4]


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for v in data:
        acc = (acc << frombits) | v
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (tobits - bits)) & maxv)
    elif not pad and (bits >= frombits or (acc << (tobits - bits)) & maxv):
        raise ValueError("bad bech32 padding")
    return out


def bech32_encode(hrp: str, witver: int, program: bytes) -> str:
    data = [witver] + _convertbits(program, 8, 5, True)
    const = 1 if witver == 0 else _BECH32M_CONST
    pm = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ const
    return hrp + "1" + "".join(_BECH32[d] for d in data + [(pm >> 5 * (5 - i)) & 31 for i in range(6)])


def bech32_decode(hrp: str, addr: str) -> tuple[int, bytes]:
    if addr.lower() != addr and addr.upper() != addr:
        raise ValueError("mixed case bech32")
    addr = addr.lower()
    pos = addr.rfind("1")
    if addr[:pos] != hrp or len(addr) - pos < 8:
        raise ValueError("wrong bech32 prefix")
    data = [_BECH32.find(c) for c in addr[pos + 1:]]
    if -1 in data:
        raise ValueError("not bech32")
    witver = data[0]
    const = 1 if witver == 0 else _BECH32M_CONST
    if _polymod(_hrp_expand(hrp) + data) != const:
        raise ValueError("bad bech32 checksum")
    program = bytes(_convertbits(data[1:-6], 5, 8, False))
    if witver > 16 or not 2 <= len(program) <= 40 or (witver == 0 and len(program) not in (20, 32)):
        raise ValueError("bad witness program")
    return witver, program


def address_to_script(address: str, network: str = "regtest") -> str:
    """The scriptPubKey (hex) of an address of `network`; ValueError if it is not one."""
    p2pkh, p2sh, hrp = NETWORKS[network]
    try:
        if address.lower().startswith(hrp + "1"):
            witver, program = bech32_decode(hrp, address)
            op = 0 if witver == 0 else 0x50 + witver
            return (bytes([op, len(program)]) + program).hex()
        payload = base58check_decode(address)
    except ValueError as exc:
        raise ValueError(f"{address} is not a {network} address ({exc})") from None
    if len(payload) == 21 and payload[0] == p2pkh:
        return "76a914" + payload[1:].hex() + "88ac"
    if len(payload) == 21 and payload[0] == p2sh:
        return "a914" + payload[1:].hex() + "87"
    raise ValueError(f"{address} is not a {network} address")


def script_type(script: bytes) -> str:
    """Esplora's `scriptpubkey_type` names."""
    n = len(script)
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "p2pkh"
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "p2sh"
    if n == 22 and script[:2] == b"\x00\x14":
        return "v0_p2wpkh"
    if n == 34 and script[:2] == b"\x00\x20":
        return "v0_p2wsh"
    if n == 34 and script[:2] == b"\x51\x20":
        return "v1_p2tr"
    if n and script[0] == 0x6A:
        return "op_return"
    return "unknown"


def script_to_address(script: bytes, network: str = "regtest") -> str | None:
    p2pkh, p2sh, hrp = NETWORKS[network]
    kind = script_type(script)
    if kind == "p2pkh":
        return base58check_encode(bytes([p2pkh]) + script[3:23])
    if kind == "p2sh":
        return base58check_encode(bytes([p2sh]) + script[2:22])
    if kind in ("v0_p2wpkh", "v0_p2wsh"):
        return bech32_encode(hrp, 0, script[2:])
    if kind == "v1_p2tr":
        return bech32_encode(hrp, 1, script[2:])
    return None
