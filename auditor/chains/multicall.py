"""Hand-written ABI encoding for Multicall3 `aggregate3` and ERC-20 `balanceOf`.

Pure functions on hex strings and bytes: no web3 contract objects on the poll
path (CHAINS.md: hand encoding is ~4x faster than web3's encoder).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    offsets = []
    position = 32 * len(calls)
    heads: dict[int, tuple[str, str, int]] = {}  # by calldata length: all ours are 36 bytes
    for target, data in calls:
        head = heads.get(len(data))
        if head is None:
            pad = "0" * (-len(data) % 64)
            head = heads[len(data)] = (_TRUE + _word(96) + _word(len(data) // 2), pad,
                                       128 + (len(data) + len(pad)) // 2)
        elements.append(target[2:].lower().rjust(64, "0") + head[0] + data + head[1])
        offsets.append(_word(position))
        position += head[2]
    return "0x" + AGGREGATE3 + _word(32) + _word(len(calls)) + "".join(offsets) + "".join(elements)


def decode_aggregate3(data: bytes, expected: int) -> list[tuple[bool, bytes]]:
    """The (success, returnData) list aggregate3 returned. ValueError if malformed."""
    end = len(data)
    word = int.from_bytes  # hot loop: no helper call per word
    if end < 64:
        raise ValueError(_bad(end))
    array = word(data[0:32], "big")
    if array > end - 32:
        raise ValueError(_bad(end))
    count = word(data[array:array + 32], "big")
    if count != expected:
        raise ValueError(f"aggregate3 returned {count} results for {expected} calls")
    base = array + 32
    if base + 32 * count > end:
        raise ValueError(_bad(end))
    results = []
    for i in range(base, base + 32 * count, 32):
        element = base + word(data[i:i + 32], "big")
        if element + 64 > end:
            raise ValueError(_bad(end))
        success = word(data[element:element + 32], "big")
        start = element + word(data[element + 32:element + 64], "big")
        if success > 1 or start + 32 > end:
            raise ValueError(_bad(end))
        stop = start + 32 + word(data[start:start + 32], "big")
        if stop > end:
            raise ValueError(_bad(end))
        results.append((success == 1, data[start + 32:stop]))
    return results


def _bad(size: int) -> str:
    return f"aggregate3 answer is truncated or malformed ({size} bytes)"


def decode_uint256(data: bytes) -> int:
    """A uint256 return value; exactly 32 bytes (an address without code returns none)."""
    if len(data) != 32:
        raise ValueError(f"returned {len(data)} bytes, not 32")
    return int.from_bytes(data, "big")
