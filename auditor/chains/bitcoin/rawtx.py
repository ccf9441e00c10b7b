"""Strict parsing of raw Bitcoin transactions and block headers.

Servers send raw bytes (Electrum's `blockchain.transaction.get`, headers); the
auditor needs only the txid, the outpoints spent and the outputs created. The
parser follows Bitcoin Core's deserialization rules (BIP 144 for segwit) and
rejects anything Core would not read: truncated data, trailing bytes,
non-canonical lengths, a witness flag with no witness, amounts outside
0..21 million BTC. The txid is computed here, so a caller can check that a
server sent the transaction it was asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["RawTx", "Header", "parse_tx", "parse_tx_hex", "parse_header", "parse_header_hex", "sha256d",
           "merkle_branch_root"]

MAX_MONEY = 21_000_000 * 100_000_000
_HEADER_SIZE = 80
_MAX_TX_SIZE = 4_000_000  # a transaction cannot outweigh a block
_COMPACT = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}  # width, smallest canonical value


@dataclass(frozen=True, slots=True)
class RawTx:
    txid: str  # display order (reversed double-SHA256 of the non-witness serialization)
    inputs: tuple[tuple[str, int], ...]  # (previous txid in display order, output index)
    outputs: tuple[tuple[str, int], ...]  # (scriptPubKey hex, value in satoshis)


@dataclass(frozen=True, slots=True)
class Header:
    hash: str  # display order
    prev_hash: str  # display order
    timestamp: int  # unix seconds
    merkle_root: str = ""  # display order


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class _Reader:
    """A cursor over bytes; every read checks the bytes are there."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ValueError(f"data is truncated: {n} bytes wanted at offset {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def compact(self) -> int:
        """Bitcoin's CompactSize, canonical encodings only (as Core reads them)."""
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        width, least = _COMPACT[first]
        value = int.from_bytes(self.take(width), "little")
        if value < least:
            raise ValueError(f"non-canonical length encoding at offset {self.pos - width - 1}")
        return value

    def count(self, min_item_size: int) -> int:
        """A count of items that must still fit in the remaining bytes."""
        n = self.compact()
        if n * min_item_size > len(self.data) - self.pos:
            raise ValueError(f"count {n} at offset {self.pos} is larger than the data left")
        return n

    def var_bytes(self) -> bytes:
        return self.take(self.count(1))


def _read_inputs(r: _Reader) -> tuple[tuple[str, int], ...]:
    inputs = []
    for _ in range(r.count(41)):  # 32 + 4 + 1 + 4: the smallest input
        prev = r.take(32)[::-1].hex()
        vout = r.u32()
        r.var_bytes()  # scriptSig
        r.take(4)  # sequence
        inputs.append((prev, vout))
    return tuple(inputs)


def _read_outputs(r: _Reader) -> tuple[tuple[str, int], ...]:
    outputs = []
    for _ in range(r.count(9)):  # 8 + 1: the smallest output
        value = int.from_bytes(r.take(8), "little", signed=True)
        if not 0 <= value <= MAX_MONEY:
            raise ValueError(f"output value {value} is outside 0..{MAX_MONEY} satoshis")
        outputs.append((r.var_bytes().hex(), value))
    return tuple(outputs)


def _read_witnesses(r: _Reader, n_inputs: int) -> None:
    items = 0
    for _ in range(n_inputs):
        for _ in range(r.count(1)):
            r.var_bytes()
            items += 1
    if items == 0:
        raise ValueError("segwit serialization with no witness data (Core rejects a superfluous witness record)")


def parse_tx(raw: bytes) -> RawTx:
    """Parse one serialized transaction (legacy or BIP 144 segwit); ValueError
    if the bytes are not exactly one well-formed transaction."""
    if len(raw) > _MAX_TX_SIZE:
        raise ValueError(f"transaction of {len(raw)} bytes is larger than a block")
    r = _Reader(raw)
    r.take(4)  # version
    segwit = len(raw) > 5 and raw[4] == 0
    if segwit:
        if raw[5] != 1:
            raise ValueError(f"unknown segwit flag {raw[5]} (a transaction without inputs is invalid)")
        r.take(2)
    body_start = r.pos
    inputs = _read_inputs(r)
    outputs = _read_outputs(r)
    body_end = r.pos
    if not inputs or not outputs:
        raise ValueError("a transaction needs at least one input and one output")
    if segwit:
        _read_witnesses(r, len(inputs))
    r.take(4)  # locktime
    if r.pos != len(raw):
        raise ValueError(f"{len(raw) - r.pos} unexpected bytes after the transaction")
    stripped = raw[:4] + raw[body_start:body_end] + raw[-4:] if segwit else raw
    return RawTx(txid=sha256d(stripped)[::-1].hex(), inputs=inputs, outputs=outputs)


def _unhex(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) * 2 != len(text) or not text:  # fromhex skips spaces: not valid here
        raise ValueError(f"{what} is not a hexadecimal string")
    return raw


def parse_tx_hex(text: str) -> RawTx:
    return parse_tx(_unhex(text, "transaction"))


def parse_header(raw: bytes) -> Header:
    """An 80-byte block header: its hash, the previous block's hash and its time."""
    if len(raw) != _HEADER_SIZE:
        raise ValueError(f"a block header is {_HEADER_SIZE} bytes, got {len(raw)}")
    return Header(
        hash=sha256d(raw)[::-1].hex(),
        prev_hash=raw[4:36][::-1].hex(),
        timestamp=int.from_bytes(raw[68:72], "little"),
        merkle_root=raw[36:68][::-1].hex(),
    )


def parse_header_hex(text: str) -> Header:
    return parse_header(_unhex(text, "block header"))


def merkle_branch_root(txid: str, branch: list[str], pos: int) -> str:
    """The merkle root (display order) that `txid` at position `pos` of its block
    leads to through `branch` (sibling hashes in display order, deepest first, as
    Electrum's `blockchain.transaction.get_merkle` gives them). ValueError when
    the branch is malformed or too short for `pos`."""
    if not 0 <= pos < 1 << len(branch):
        raise ValueError(f"position {pos} does not fit a branch of {len(branch)} hashes")
    node = _unhex(txid, "txid")[::-1]
    for depth, sibling in enumerate(branch):
        other = _unhex(sibling, "a merkle branch hash")[::-1]
        if len(other) != 32 or len(node) != 32:
            raise ValueError("a merkle branch hash is not 32 bytes")
        node = sha256d(other + node) if (pos >> depth) & 1 else sha256d(node + other)
    return node[::-1].hex()
