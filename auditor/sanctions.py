"""Sanctions screening: the configured lists as one exact-match screen, and the on-chain oracle.

`load_screen` reads every configured list (the builtin snapshot, files, and
URL lists from the cache `auditor sanctions update` writes: a cycle never
fetches) into a `Screen`. A list that cannot be read is reported as a
problem and left out; it is never screened as an empty list. `Screen.match`
is exact per chain type: `0x` addresses compare case-insensitively, Bitcoin
addresses exactly (bech32 in lowercase). `stale_lists` names the lists
older than `max_age` (a `stale_data` warning, subject `sanctions:LIST`).
`oracle_sanctioned` asks the Chainalysis sanctions oracle (`isSanctioned`)
at a given block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from . import units
from .chains.ethereum_rpc import RpcConnection, RpcFailure, hex_bytes
from .sanctions_fetch import Refresh, refresh_lists, update_lists
from .sanctions_lists import (
    BUILTIN_AS_OF,
    CHAINALYSIS_ORACLE,
    ListError,
    ParsedList,
    address_kind,
    btc_key,
    read_list,
)
from .settings import ChainSettings, SanctionsList, SanctionsSettings
from .times import rfc3339

__all__ = [
    "BUILTIN_AS_OF",
    "CHAINALYSIS_ORACLE",
    "IS_SANCTIONED",
    "ListError",
    "ListInfo",
    "Refresh",
    "Screen",
    "load_screen",
    "oracle_sanctioned",
    "refresh_lists",
    "stale_lists",
    "update_lists",
]

IS_SANCTIONED = "0xdf592f7d"  # isSanctioned(address)
_ORACLE_BATCH = 200  # eth_calls per JSON-RPC batch: providers cap batches (100–1000)


@dataclass(frozen=True)
class ListInfo:
    label: str
    as_of: datetime  # builtin: the snapshot date; file: modification time; URL: fetch time
    count: int  # distinct Ethereum and Bitcoin addresses screened
    source: str  # "builtin", the file path, or the URL's label (never the URL)
    ethereum: int = 0
    bitcoin: int = 0
    ignored: int = 0  # entries of other chains (Tron, Monero, …), not screened
    published: datetime | None = None  # an SDN list's DateOfIssue
    kind: Literal["builtin", "file", "url"] = "file"


class Screen:
    """Exact lookups of counterparties in the loaded lists."""

    def __init__(self, lists: Iterable[tuple[ListInfo, ParsedList]] = ()) -> None:
        self.lists: dict[str, ListInfo] = {}
        eth: dict[str, list[str]] = {}
        btc: dict[str, list[str]] = {}
        for info, parsed in lists:
            self.lists[info.label] = info
            for key in parsed.ethereum:
                eth.setdefault(key, []).append(info.label)
            for key in parsed.bitcoin:
                btc.setdefault(key, []).append(info.label)
        # One tuple per address, built once: a lookup is a dict probe and no allocation.
        self._eth = {k: tuple(v) for k, v in eth.items()}
        self._btc = {k: tuple(v) for k, v in btc.items()}

    def match(self, chain_type: str, address: str) -> tuple[str, ...]:
        """Labels of the lists holding `address` on a chain of `chain_type`, in config order."""
        if chain_type == "ethereum":
            return self._eth.get(address.lower(), ())
        if chain_type == "bitcoin":
            return self._btc.get(btc_key(address), ())
        return ()

    def __len__(self) -> int:
        return len(self._eth) + len(self._btc)


def _info(lst: SanctionsList, parsed: ParsedList, as_of: datetime) -> ListInfo:
    kind: Literal["builtin", "file", "url"] = (
        "builtin" if lst.source == "builtin" else "url" if lst.url is not None else "file")
    source = {"builtin": "builtin", "url": lst.label}.get(kind, str(lst.path or lst.source))
    return ListInfo(label=lst.label, as_of=as_of, count=parsed.count, source=source,
                    ethereum=len(parsed.ethereum), bitcoin=len(parsed.bitcoin),
                    ignored=parsed.ignored, published=parsed.published, kind=kind)


def load_screen(settings: SanctionsSettings, cache_dir: Path | None = None
                ) -> tuple[Screen, list[tuple[str, str]]]:
    """(the screen of every readable list, problems as (list label, message)).

    `cache_dir` defaults to `settings.cache_dir`. No I/O but local files."""
    cache = cache_dir if cache_dir is not None else settings.cache_dir
    loaded: list[tuple[ListInfo, ParsedList]] = []
    problems: list[tuple[str, str]] = []
    for lst in settings.lists:
        try:
            parsed, as_of = read_list(lst, cache)
        except ListError as e:
            problems.append((lst.label, str(e)))
            continue
        loaded.append((_info(lst, parsed, as_of), parsed))
    return Screen(loaded), problems


_FIX = {"builtin": "configure a current list (a file or URL) under sanctions.lists",
        "url": "run `auditor sanctions update` (a cron job or timer, daily)",
        "file": "replace the file with a current list"}


def stale_lists(screen: Screen, max_age: int, now: datetime) -> list[tuple[str, str]]:
    """(label, message) of each list older than `max_age` seconds at `now`. Pure."""
    out = []
    for label, info in screen.lists.items():
        age = int((now - info.as_of).total_seconds())
        if age > max_age:
            out.append((label, f"sanctions list {label} is {_age(age)} old (as of "
                               f"{rfc3339(info.as_of)}; sanctions.max_age is "
                               f"{units.format_duration(max_age)}); {_FIX[info.kind]}"))
    return out


def _age(seconds: int) -> str:
    for unit, n in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * n:
            return f"{seconds // n} {unit}"
    return f"{seconds} seconds"


def oracle_sanctioned(chain: ChainSettings, oracle: str, addresses: Sequence[str], block: int,
                      deadline: float) -> set[str]:
    """The `addresses` (as given) the oracle says are sanctioned at `block`.

    One `eth_call` of `isSanctioned(address)` per distinct address, in JSON-RPC
    batches, through the chain's first endpoint. Raises RpcFailure on any trouble,
    including an empty answer (no oracle contract at that address on that chain):
    an oracle that cannot answer never means "not sanctioned"."""
    if not chain.rpc:
        raise RpcFailure(f"chain {chain.name} has no rpc endpoint for the sanctions oracle")
    for a in addresses:
        if address_kind(a)[0] != "ethereum":
            raise ValueError(f"{a[:12]!r}… is not an Ethereum address")
    distinct = sorted({a.lower() for a in addresses})
    listed: set[str] = set()
    conn = RpcConnection(chain.rpc[0])
    try:
        for i in range(0, len(distinct), _ORACLE_BATCH):
            chunk = distinct[i:i + _ORACLE_BATCH]
            calls = [("eth_call", [{"to": oracle, "data": IS_SANCTIONED + a[2:].rjust(64, "0")},
                                   hex(block)]) for a in chunk]
            for address, result in zip(chunk, conn.batch(calls, deadline)):
                if _oracle_bool(result, oracle, block):
                    listed.add(address)
    finally:
        conn.close()
    return {a for a in addresses if a.lower() in listed}


def _oracle_bool(result: object, oracle: str, block: int) -> bool:
    data = hex_bytes(result, "isSanctioned")
    if len(data) != 32 or int.from_bytes(data, "big") > 1:
        what = "no data (is there an oracle contract at that address on this chain?)" \
            if not data else f"{len(data)} bytes that are not a bool"
        raise RpcFailure(f"sanctions oracle {oracle} at block {block} answered {what}; check "
                         "sanctions.oracle")
    return data[-1] == 1
