"""Hand-encoded calldata and strict decoding of the Safe views and storage words.

Strict: an answer of the wrong length, an offset that is not the one the ABI
gives, or an address word with its upper 12 bytes set is an `RpcFailure`,
never a guess. (A provider that lies or truncates must not produce a Safe
state that looks plausible.)
"""

from __future__ import annotations

from typing import Any

from eth_utils.crypto import keccak

from .ethereum_rpc import RpcFailure, hex_bytes

__all__ = ["ZERO_ADDRESS", "call_data", "storage_word", "slot_address", "decode_uint",
           "decode_address_list", "decode_modules_page", "MAX_LIST"]

ZERO_ADDRESS = "0x" + "00" * 20
MAX_LIST = 10_000  # more owners than this is not a Safe answer, it is garbage
_SENTINELS = (ZERO_ADDRESS, "0x" + "00" * 19 + "01")


def call_data(signature: str, *words: int) -> str:
    """Calldata of a call whose arguments are all static words (address, uint)."""
    args = b"".join(w.to_bytes(32, "big") for w in words)
    return "0x" + (keccak(text=signature)[:4] + args).hex()


def storage_word(value: Any, what: str) -> bytes:
    """An `eth_getStorageAt` answer: exactly one 32-byte word."""
    data = hex_bytes(value, what)
    if len(data) != 32:
        raise RpcFailure(f"{what}: storage answer is {len(data)} bytes, not 32")
    return data


def slot_address(word: bytes) -> str:
    """A slot holding an address as lowercase hex; a dirty word stays whole (66 chars)."""
    if any(word[:12]):
        return "0x" + word.hex()
    return "0x" + word[12:].hex()


def decode_uint(data: bytes, what: str) -> int:
    if len(data) != 32:
        raise RpcFailure(f"{what}: answer is {len(data)} bytes, not 32")
    return int.from_bytes(data, "big")


def _address(word: bytes, what: str) -> str:
    if any(word[:12]):
        raise RpcFailure(f"{what}: an address word has its upper 12 bytes set")
    return "0x" + word[12:].hex()


def _array(data: bytes, offset: int, what: str, limit: int = MAX_LIST) -> tuple[str, ...]:
    """The address[] whose length word is at `offset`, ending exactly at the end of `data`."""
    if len(data) < offset + 32:
        raise RpcFailure(f"{what}: answer truncated ({len(data)} bytes)")
    count = int.from_bytes(data[offset:offset + 32], "big")
    if count > limit:
        raise RpcFailure(f"{what}: claims {count} entries (at most {limit} expected)")
    end = offset + 32 + 32 * count
    if len(data) != end:
        raise RpcFailure(f"{what}: answer is {len(data)} bytes, {end} expected for {count} entries")
    return tuple(_address(data[i:i + 32], what) for i in range(offset + 32, end, 32))


def decode_address_list(data: bytes, what: str) -> tuple[str, ...]:
    """`address[]` as the only return value (getOwners)."""
    if len(data) < 64:
        raise RpcFailure(f"{what}: answer truncated ({len(data)} bytes)")
    if int.from_bytes(data[:32], "big") != 32:
        raise RpcFailure(f"{what}: array offset is not 32")
    return _array(data, 32, what)


def decode_modules_page(data: bytes, page: int, what: str) -> tuple[tuple[str, ...], bool]:
    """`(address[] array, address next)` of getModulesPaginated: (modules, whole list read).

    The list is whole when `next` is SENTINEL (or zero, an uninitialised list)."""
    if len(data) < 96:
        raise RpcFailure(f"{what}: answer truncated ({len(data)} bytes)")
    if int.from_bytes(data[:32], "big") != 64:
        raise RpcFailure(f"{what}: array offset is not 64")
    following = _address(data[32:64], what)
    modules = _array(data, 64, what, limit=page)
    return modules, following in _SENTINELS
