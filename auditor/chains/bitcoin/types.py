"""What every Bitcoin backend answers, and the protocol they implement.

A backend (Esplora REST, an Electrum server, Bitcoin Core's JSON-RPC) knows the
chain tip, block hashes by height and, per output script, the coins. None of
them answers "balance at height H", so a backend reports, per script, the coins
it holds now *and* the coins spent recently (above `since`, or in the
mempool) with the height that created them: from that the client computes the
settled view at S (created ≤ S, not spent ≤ S) and the watch view (DESIGN.md,
"Two views of every chain").

Amounts are satoshis (`int`). Heights: a coin created or spent in the mempool
has height 0. Hashes and txids are lowercase hex in display (RPC) order.

A backend never returns a partial or guessed answer: trouble of any kind
(connection, timeout, HTTP error, a page missing, JSON that does not match the
documented shape, a value that is not an exact satoshi amount) raises
`BackendError` with a message that names the backend by `label` only (never
a URL path, user or password).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["BackendError", "Tip", "ScriptRef", "Coin", "ScriptState", "TxDetail", "Backend"]


class BackendError(Exception):
    """The backend could not give a complete, well-formed answer."""


@dataclass(frozen=True)
class Tip:
    height: int
    hash: str  # 64 lowercase hex, display order
    timestamp: int  # unix seconds of the tip block's header time


@dataclass(frozen=True)
class ScriptRef:
    """One output script to read. `descriptor` is the single-branch public
    descriptor it was derived from (no `<0;1>`, no checksum) and `index` its
    derivation index, when it comes from a ranged descriptor; both None for a
    configured plain address. bitcoind groups refs by descriptor for
    `scantxoutset`; the others use `script` (Electrum: its scripthash) or
    `address` (Esplora)."""

    address: str
    script: str  # scriptPubKey, lowercase hex
    descriptor: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class Coin:
    txid: str
    vout: int
    value: int  # satoshis
    height: int  # block that created it; 0 = created by a mempool transaction
    spent_height: int | None = None  # None: unspent (also not spent in the mempool); 0: spent in the mempool
    spent_by: str | None = None  # txid of the spending transaction, when spent


@dataclass(frozen=True)
class ScriptState:
    """Everything a backend knows of one script that the views need.

    `coins`: every coin of the script unspent at the backend's tip (confirmed
    or created in the mempool), plus every coin spent in a block above the
    `since` given to `scan`, or spent in the mempool, with `spent_height` and
    `spent_by` set. Coins spent at heights ≤ `since` may be left out.
    `used`: the script has any history (confirmed or mempool); a backend that
    only sees unspent coins (bitcoind's scantxoutset) sets it from `coins`.
    """

    script: str
    used: bool
    coins: tuple[Coin, ...] = ()


@dataclass(frozen=True)
class TxDetail:
    """One transaction with what transfer ingestion needs: every input with the
    output it spends (script and value, so fees and senders are known) and
    every output. `height` 0, `block_hash` "" and `timestamp` 0 for a mempool
    transaction; otherwise the block's height, hash and header time. A
    coinbase transaction has no inputs."""

    txid: str
    height: int  # 0 = mempool
    block_hash: str  # "" for the mempool
    timestamp: int  # unix seconds of the block header; 0 for the mempool
    inputs: tuple[tuple[str, int, str, int], ...]  # (prev txid, vout, script hex, value sat)
    outputs: tuple[tuple[str, int], ...]  # (script hex, value sat)


@runtime_checkable
class Backend(Protocol):
    """One server of one Bitcoin chain. Every method raises `BackendError`
    for any trouble and returns before `deadline` (a `time.monotonic()` value)
    or raises."""

    label: str  # scheme://host:port, safe to log

    def tip(self, deadline: float) -> Tip: ...

    def block_hash(self, height: int, deadline: float) -> str: ...

    def scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        """States keyed by `ScriptRef.script`, one for every ref given."""
        ...

    def transactions(self, txids: Sequence[str], deadline: float) -> dict[str, TxDetail]:
        """One `TxDetail` per txid given (keyed by txid), each checked to be the
        transaction asked for, with the value and script of every input's
        previous output. Any trouble (a txid the server does not know, a
        malformed or inconsistent answer, the deadline) raises `BackendError`
        naming the backend by `label` only, never a partial answer. A txid
        that is not 64 lowercase hex digits is the caller's bug: ValueError."""
        ...

    def close(self) -> None: ...
