"""Reading sanctions lists: address formats, plain lists, the builtin snapshot, the cache.

A list becomes a `ParsedList`: the Ethereum-format addresses (lowercase
`0x…`) and Bitcoin-format addresses (bech32 lowercased, base58 as written)
it holds. Lists mix chains (the USDT list has Tron `T…` addresses): an
entry is sorted by its format, and one that is neither Ethereum nor Bitcoin
is counted as ignored. A list that cannot be read, or reads as something
other than a list (an HTML error page, JSON, a truncated file), raises
`ListError`: it is never taken as an empty list.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import InputError
from .settings import SanctionsList
from .times import parse_time, rfc3339

__all__ = [
    "BUILTIN_AS_OF",
    "BUILTIN_FILES",
    "CACHE_VERSION",
    "CHAINALYSIS_ORACLE",
    "ListError",
    "ParsedList",
    "Sorter",
    "address_kind",
    "btc_key",
    "builtin_files",
    "cache_path",
    "parse_plain",
    "read_cache",
    "read_list",
    "write_cache",
]

CHAINALYSIS_ORACLE = "0x40C57923924B5c5c5455c48D93317139ADDaC8fb"  # the same on every EVM chain
BUILTIN_AS_OF = datetime(2024, 9, 27, tzinfo=UTC)  # the snapshot date in data/sanctions/README.md
BUILTIN_FILES = ("sanctioned_addresses_ETH.txt", "sanctioned_addresses_XBT.txt",
                 "sanctioned_addresses_USDT.txt", "sanctioned_addresses_USDC.txt")
CACHE_VERSION = 1
Kind = Literal["ethereum", "bitcoin"]

_ETH = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_BASE58 = re.compile(r"[13mn2][1-9A-HJ-NP-Za-km-z]{25,34}\Z")
_BECH32 = re.compile(r"(?:bc|tb|bcrt)1[02-9ac-hj-np-z]{6,87}\Z")
_BECH32_HRP = ("bc1", "tb1", "bcrt1")
# One token of the characters addresses of any chain use (Monero, XRP, `bitcoincash:q…`):
# anything else on a line (spaces, commas, quotes, tags) means the file is not a plain list.
_TOKEN = re.compile(r"[0-9A-Za-z:._-]{8,140}\Z")


class ListError(InputError):
    """A list could not be read or is not a list. The message names no URL."""


@dataclass(frozen=True)
class ParsedList:
    ethereum: frozenset[str]  # lowercase 0x addresses
    bitcoin: frozenset[str]  # bech32 lowercase, base58 as written
    entries: int  # addresses read, duplicates and ignored ones included
    ignored: int  # entries neither Ethereum nor Bitcoin (Tron, Monero, …)
    published: datetime | None = None  # the SDN list's DateOfIssue

    @property
    def count(self) -> int:
        return len(self.ethereum) + len(self.bitcoin)


def btc_key(address: str) -> str:
    """The form a Bitcoin address is compared in: bech32 is case-insensitive (BIP 173),
    base58 is not."""
    head = address[:5].lower()
    return address.lower() if head.startswith(_BECH32_HRP) else address


def address_kind(entry: str) -> tuple[Kind | None, str]:
    """(chain type, comparison key) of a listed address, (None, entry) if neither."""
    if _ETH.match(entry):
        return "ethereum", entry.lower()
    key = btc_key(entry)
    if _BECH32.match(key) or _BASE58.match(key):
        return "bitcoin", key
    return None, entry


class Sorter:
    """Collects entries into a ParsedList, sorting them by address format."""

    def __init__(self, kinds: Iterable[Kind] = ("ethereum", "bitcoin")) -> None:
        self.kinds = frozenset(kinds)
        self.ethereum: set[str] = set()
        self.bitcoin: set[str] = set()
        self.entries = 0
        self.ignored = 0

    def add(self, entry: str, kinds: frozenset[str] | None = None) -> None:
        """`kinds`: the chain types this entry may count for (by the asset it is listed under)."""
        self.entries += 1
        kind, key = address_kind(entry)
        if kind is None or kind not in (kinds if kinds is not None else self.kinds):
            self.ignored += 1
        elif kind == "ethereum":
            self.ethereum.add(key)
        else:
            self.bitcoin.add(key)

    def result(self, published: datetime | None = None) -> ParsedList:
        return ParsedList(frozenset(self.ethereum), frozenset(self.bitcoin), self.entries,
                          self.ignored, published)


def parse_plain(text: str, what: str) -> ParsedList:
    """One address per line; blank lines and `#` comments allowed. Anything else is an error."""
    sorter = Sorter()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _TOKEN.match(line):
            raise ListError(f"{what}: line {number} is not an address ({_show(line)}); a plain "
                            "list holds one address per line (is it an error page, or "
                            "`format: sdn-xml`?)")
        sorter.add(line)
    parsed = sorter.result()
    if parsed.count == 0:
        raise ListError(f"{what}: holds no Ethereum or Bitcoin address ({parsed.entries} "
                        "entries); an empty or truncated list is refused, not taken as empty")
    return parsed


def _show(line: str) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in line[:24])
    return repr(printable + ("…" if len(line) > 24 else ""))


def builtin_files() -> dict[str, str]:
    """The shipped list files' texts by file name."""
    folder = resources.files("auditor") / "data" / "sanctions"
    return {name: (folder / name).read_text(encoding="utf-8") for name in BUILTIN_FILES}


@functools.cache
def _builtin() -> ParsedList:
    sorter = Sorter()
    try:
        files = builtin_files()
    except OSError as e:
        raise ListError(f"builtin: the shipped list is missing ({e.strerror or e}); reinstall "
                        "custody-auditor") from None
    for name, text in files.items():
        part = parse_plain(text, f"builtin {name}")
        sorter.ethereum |= part.ethereum
        sorter.bitcoin |= part.bitcoin
        sorter.entries += part.entries
        sorter.ignored += part.ignored
    return sorter.result()


# Parsed files by (path, inode, mtime, size, format): a cycle re-reads a list only when it changed
# (an SDN XML file is tens of megabytes; the screen is rebuilt every cycle).
_memo: dict[tuple[str, int, int, int, str], tuple[ParsedList, datetime]] = {}
_MEMO_MAX = 16


def _memoised(path: Path, fmt: str, label: str,
              read: Callable[[], tuple[ParsedList, datetime]]) -> tuple[ParsedList, datetime]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return read()  # the reader says what is missing and how to fix it
    except OSError as e:
        raise ListError(f"{label}: cannot read {path}: {e.strerror or e}") from None
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size, fmt)
    hit = _memo.get(key)
    if hit is None:
        hit = read()
        if len(_memo) >= _MEMO_MAX:
            _memo.pop(next(iter(_memo)))
        _memo[key] = hit
    return hit


def _read_file(path: Path, fmt: str, label: str) -> tuple[ParsedList, datetime]:
    from .sanctions_sdn import parse_sdn_file

    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if fmt == "sdn-xml":
            return parse_sdn_file(path, label), mtime
        return parse_plain(path.read_text(encoding="utf-8-sig"), label), mtime
    except UnicodeDecodeError:
        raise ListError(f"{label}: {path} is not UTF-8 text; a plain list is one address "
                        "per line") from None
    except OSError as e:
        raise ListError(f"{label}: cannot read {path}: {e.strerror or e}; create the file or "
                        "fix the path under sanctions.lists") from None


def cache_path(cache_dir: Path, lst: SanctionsList) -> Path:
    """Where a URL list's fetched copy lives: named by a hash (the URL may carry a key)."""
    assert lst.url is not None
    digest = hashlib.sha256(f"{lst.format}\n{lst.url.reveal()}".encode()).hexdigest()[:24]
    return cache_dir / f"list-{digest}.json"


def write_cache(path: Path, label: str, fmt: str, parsed: ParsedList, fetched_at: datetime,
                sha256: str, size: int) -> None:
    """Atomically: a reader sees the old copy or the new one, never half a file."""
    doc = {"version": CACHE_VERSION, "label": label, "format": fmt,
           "fetched_at": rfc3339(fetched_at), "sha256": sha256, "bytes": size,
           "published": rfc3339(parsed.published) if parsed.published else None,
           "entries": parsed.entries, "ignored": parsed.ignored,
           "ethereum": sorted(parsed.ethereum), "bitcoin": sorted(parsed.bitcoin)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".list-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cache(path: Path, label: str) -> tuple[ParsedList, datetime]:
    """(the list, when it was fetched). ListError if absent or damaged."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ListError(f"{label}: not fetched yet; run `auditor sanctions update` (lists "
                        "from URLs are read from its cache, never fetched during a cycle)"
                        ) from None
    except (OSError, ValueError) as e:
        raise ListError(f"{label}: the cached copy {path.name} is unreadable "
                        f"({type(e).__name__}); run `auditor sanctions update`") from None
    try:
        return _from_cache(doc)
    except (KeyError, TypeError, ValueError):
        raise ListError(f"{label}: the cached copy {path.name} is damaged; run `auditor "
                        "sanctions update`") from None


def _from_cache(doc: Any) -> tuple[ParsedList, datetime]:
    if doc["version"] != CACHE_VERSION:
        raise ValueError("version")
    sorter = Sorter()
    for kind in ("ethereum", "bitcoin"):
        for entry in doc[kind]:
            if not isinstance(entry, str) or address_kind(entry) != (kind, entry):
                raise ValueError(kind)
    sorter.ethereum, sorter.bitcoin = set(doc["ethereum"]), set(doc["bitcoin"])
    sorter.entries, sorter.ignored = int(doc["entries"]), int(doc["ignored"])
    if not sorter.ethereum and not sorter.bitcoin:
        raise ValueError("empty")
    published = parse_time(doc["published"]) if doc.get("published") else None
    return sorter.result(published), parse_time(doc["fetched_at"])


def read_list(lst: SanctionsList, cache_dir: Path | None) -> tuple[ParsedList, datetime]:
    """(the list, its as-of time): builtin → the snapshot date; a file → its modification
    time; a URL → the time `auditor sanctions update` fetched it (read from the cache)."""
    if lst.source == "builtin":
        return _builtin(), BUILTIN_AS_OF
    if lst.url is not None:
        if cache_dir is None:
            raise ListError(f"{lst.label}: no cache directory for lists from URLs; set "
                            "sanctions.cache_dir")
        cached = cache_path(cache_dir, lst)
        return _memoised(cached, "cache", lst.label, lambda: read_cache(cached, lst.label))
    path = lst.path if lst.path is not None else Path(lst.source)
    return _memoised(path, lst.format, lst.label, lambda: _read_file(path, lst.format, lst.label))
