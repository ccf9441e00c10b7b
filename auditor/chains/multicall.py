"""Hand-written ABI encoding for Multicall3 `aggregate3` and ERC-20 `balanceOf`.

Pure functions on hex strings and bytes: no web3 contract objects on the poll
path (CHAINS.md: hand encoding is ~4x faster than web3's encoder).
"""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "AGGREGATE3",
    "GET_ETH_BALANCE",
    "BALANCE_OF",
    "address_call",
    "encode_aggregate3",
    "decode_aggregate3",
    "decode_uint256",
]

AGGREGATE3 = "82ad56cb"  # aggregate3((address,bool,bytes)[])
GET_ETH_BALANCE = "4d2301cc"  # getEthBalance(address)
BALANCE_OF = "70a08231"  # balanceOf(address)
_TRUE = "0" * 63 + "1"


def _word(n: int) -> str:
    return format(n, "064x")


def address_call(selector: str, address: str) -> str:
    """Calldata (hex, no 0x) for `selector(address)`; `address` is 0x-prefixed hex."""
    return selector + address[2:].lower().rjust(64, "0")


def encode_aggregate3(calls: Sequence[tuple[str, str]]) -> str:
    """0x calldata of aggregate3 for (target 0x address, calldata hex without 0x) pairs.

    Every call allows failure: one bad token must not lose the whole chunk;
    the caller checks each sub-call's success instead.
    """
    elements = []
    for target, data in calls:
        size = len(data) // 2
        padded = data + "0" * (-len(data) % 64)
        elements.append(target[2:].lower().rjust(64, "0") + _TRUE + _word(96) + _word(size) + padded)
    offsets = []
    position = 32 * len(calls)
    for element in elements:
        offsets.append(_word(position))
        position += len(element) // 2
    return "0x" + AGGREGATE3 + _word(32) + _word(len(calls)) + "".join(offsets) + "".join(elements)


def decode_aggregate3(data: bytes, expected: int) -> list[tuple[bool, bytes]]:
    """The (success, returnData) list aggregate3 returned. ValueError if malformed."""
    end = len(data)

    def word(at: int) -> int:
        if at < 0 or at + 32 > end:
            raise ValueError(f"aggregate3 answer truncated ({end} bytes)")
        return int.from_bytes(data[at:at + 32], "big")

    array = word(0)
    count = word(array)
    if count != expected:
        raise ValueError(f"aggregate3 returned {count} results for {expected} calls")
    base = array + 32
    results = []
    for i in range(count):
        element = base + word(base + 32 * i)
        success = word(element)
        if success > 1:
            raise ValueError("aggregate3 answer has a malformed success flag")
        start = element + word(element + 32)
        size = word(start)
        if start + 32 + size > end:
            raise ValueError(f"aggregate3 answer truncated ({end} bytes)")
        results.append((success == 1, data[start + 32:start + 32 + size]))
    return results


def decode_uint256(data: bytes) -> int:
    """A uint256 return value; exactly 32 bytes (an address without code returns none)."""
    if len(data) != 32:
        raise ValueError(f"returned {len(data)} bytes, not 32")
    return int.from_bytes(data, "big")
