"""`auditor sanctions update`: fetch the URL lists into the cache the cycles read.

Each URL list is downloaded to a temporary file next to the cache (bounded
size, an overall time limit), parsed, and only then written to the cache
atomically with the fetch time: a failed or garbage download keeps the
previous copy. A URL may carry an API key, so it is named only by the list's
label (`scheme://host:port/…file`) and httpx's own error texts, which can
contain the URL, are never shown. Builtin and file lists are only read, to
say whether they load.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import httpx

from .notify.http import USER_AGENT  # importing it redacts httpx's URL log lines
from .sanctions_lists import (
    ListError,
    ParsedList,
    cache_path,
    parse_plain,
    read_cache,
    read_list,
    write_cache,
)
from .sanctions_sdn import parse_sdn_file
from .settings import SanctionsList, SanctionsSettings
from .times import rfc3339

__all__ = ["MAX_BYTES", "Refresh", "refresh_lists", "update_lists"]

# The SDN advanced XML is about 100 MB and grows; a plain list is kilobytes.
MAX_BYTES = {"sdn-xml": 1 << 30, "plain": 64 << 20}
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Refresh:
    label: str
    ok: bool
    message: str  # what happened, safe to print (no URL)


class _Failed(Exception):
    """A download or parse failed; the message is safe to show."""


def update_lists(settings: SanctionsSettings, cache_dir: Path | None, now: datetime
                 ) -> list[tuple[str, str]]:
    """(label, what happened) per configured list; see `refresh_lists`."""
    return [(r.label, r.message) for r in refresh_lists(settings, cache_dir, now)]


def refresh_lists(settings: SanctionsSettings, cache_dir: Path | None, now: datetime, *,
                  timeout: float = DEFAULT_TIMEOUT) -> list[Refresh]:
    """Fetch every URL list (its as-of becomes `now`); check that the others load.
    `timeout`: seconds allowed per list."""
    cache = cache_dir if cache_dir is not None else settings.cache_dir
    out: list[Refresh] = []
    with httpx.Client(follow_redirects=True, max_redirects=5,
                      headers={"User-Agent": USER_AGENT}) as client:
        for lst in settings.lists:
            if lst.url is None:
                out.append(_check_local(lst, cache))
            elif cache is None:
                out.append(Refresh(lst.label, False, "failed: no cache directory; set "
                                                     "sanctions.cache_dir"))
            else:
                out.append(_refresh_url(client, lst, cache, now, timeout))
    return out


def _check_local(lst: SanctionsList, cache: Path | None) -> Refresh:
    try:
        parsed, as_of = read_list(lst, cache)
    except ListError as e:
        return Refresh(lst.label, False, f"failed: {e}")
    what = "the shipped snapshot" if lst.source == "builtin" else "a file"
    return Refresh(lst.label, True, f"{what}, nothing to fetch: {_counts(parsed)}, as of "
                                    f"{rfc3339(as_of)}")


def _refresh_url(client: httpx.Client, lst: SanctionsList, cache: Path, now: datetime,
                 timeout: float) -> Refresh:
    target = cache_path(cache, lst)
    previous: tuple[ParsedList, datetime] | None = None
    try:
        previous = read_cache(target, lst.label)
    except ListError:
        pass
    try:
        cache.mkdir(parents=True, exist_ok=True)
        parsed, digest, size = _fetch_and_parse(client, lst, cache, timeout)
    except (_Failed, ListError) as e:
        kept = (f"kept the copy fetched at {rfc3339(previous[1])}" if previous else
                "no earlier copy: screening goes without this list until an update succeeds")
        return Refresh(lst.label, False, f"failed: {e}; {kept}")
    except OSError as e:
        return Refresh(lst.label, False, f"failed: cannot write to {cache}: {e.strerror or e}")
    write_cache(target, lst.label, lst.format, parsed, now, digest, size)
    return Refresh(lst.label, True, f"fetched {_size(size)}: {_counts(parsed)}"
                                    f"{_change(previous, parsed)}")


def _fetch_and_parse(client: httpx.Client, lst: SanctionsList, cache: Path, timeout: float
                     ) -> tuple[ParsedList, str, int]:
    fd, name = tempfile.mkstemp(dir=cache, prefix=".download-", suffix=".part")
    tmp = Path(name)
    try:
        with open(fd, "wb") as f:
            digest, size = _download(client, lst, f, timeout)
        if lst.format == "sdn-xml":
            return parse_sdn_file(tmp, lst.label), digest, size
        try:
            text = tmp.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise _Failed("the answer is not UTF-8 text: not a plain list of addresses") from None
        return parse_plain(text, lst.label), digest, size
    finally:
        tmp.unlink(missing_ok=True)


def _download(client: httpx.Client, lst: SanctionsList, f: IO[bytes], timeout: float
              ) -> tuple[str, int]:
    assert lst.url is not None
    limit = MAX_BYTES[lst.format]
    deadline = time.monotonic() + timeout
    h, size = hashlib.sha256(), 0
    failure: str | None = None
    try:
        with client.stream("GET", lst.url.reveal(), timeout=httpx.Timeout(timeout)) as r:
            if r.status_code != 200:
                failure = f"HTTP {r.status_code}"
            else:
                for chunk in r.iter_bytes(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        failure = f"the answer is larger than {_size(limit)}"
                        break
                    if time.monotonic() > deadline:
                        failure = f"the download took longer than {timeout:g}s"
                        break
                    h.update(chunk)
                    f.write(chunk)
    except httpx.TimeoutException:
        failure = f"no answer within {timeout:g}s"
    except httpx.HTTPError as e:  # its text may name the URL: only the type goes out
        failure = f"request failed ({type(e).__name__})"
    if failure is not None:
        raise _Failed(failure)
    return h.hexdigest(), size


def _counts(parsed: ParsedList) -> str:
    other = f", {parsed.ignored} of other chains not screened" if parsed.ignored else ""
    published = f", published {parsed.published.date()}" if parsed.published else ""
    return (f"{len(parsed.ethereum)} Ethereum and {len(parsed.bitcoin)} Bitcoin addresses"
            f"{other}{published}")


def _change(previous: tuple[ParsedList, datetime] | None, parsed: ParsedList) -> str:
    if previous is None:
        return ""
    old = previous[0].ethereum | previous[0].bitcoin
    new = parsed.ethereum | parsed.bitcoin
    added, removed = len(new - old), len(old - new)
    if not added and not removed:
        return f" (unchanged since {rfc3339(previous[1])})"
    return f" (+{added} −{removed} since {rfc3339(previous[1])})"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
