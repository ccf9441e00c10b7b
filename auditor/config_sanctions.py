"""The `sanctions` section: which lists screen counterparties, their age limit, the oracle.

`lists` entries are `builtin` (the shipped OFAC-derived snapshot), a file
path or an http(s) URL, or a mapping `{source, format, label}`. The format
defaults from the name (`.xml` → `sdn-xml`, else `plain`). URLs are secrets
(they may carry a key): a URL list is labelled `scheme://host:port/<file>`
unless it is given a `label`, and no message shows more of it. Labels name
the list in `stale_data` subjects (`sanctions:LABEL`), so they are unique.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from .config_ctx import Ctx
from .config_yaml import index, join
from .sanctions_lists import CHAINALYSIS_ORACLE
from .settings import ChainSettings, SanctionsList, SanctionsSettings, Secret, redact_url

__all__ = ["CHAINALYSIS_ORACLE", "DEFAULT_MAX_AGE", "FORMATS", "read_sanctions"]

DEFAULT_MAX_AGE = 7 * 86400
FORMATS = ("plain", "sdn-xml")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
_BUILTIN = SanctionsList(source="builtin", label="builtin")


def read_sanctions(ctx: Ctx, raw: Any, chains: Mapping[str, ChainSettings], *,
                   store_dir: Path | None = None, chain_names: set[str] | None = None
                   ) -> SanctionsSettings:
    """The section (defaults for what is absent or wrong; every problem goes to `ctx`).

    `chains`: the valid chains; `chain_names`: every declared one (a reference to a
    declared but invalid chain is not reported again). `store_dir`: the directory of
    the store, where `cache_dir` defaults to `sanctions/`."""
    default_cache = store_dir / "sanctions" if store_dir is not None else None
    if raw is None:
        return SanctionsSettings(lists=(_BUILTIN,), max_age=DEFAULT_MAX_AGE,
                                 cache_dir=default_cache, configured=False)
    m = ctx.mapping("sanctions", raw, keys=("lists", "max_age", "cache_dir", "oracle"))
    if m is None:
        return SanctionsSettings(lists=(_BUILTIN,), cache_dir=default_cache)
    lists = _lists(ctx, m["lists"]) if "lists" in m else (_BUILTIN,)
    max_age = DEFAULT_MAX_AGE
    if "max_age" in m:
        max_age = ctx.duration("sanctions.max_age", m["max_age"], minimum=60) or DEFAULT_MAX_AGE
    cache_dir = default_cache
    if "cache_dir" in m:
        text = ctx.text("sanctions.cache_dir", m["cache_dir"])
        cache_dir = ctx.resolve_path(text) if text else default_cache
    oracle, oracle_chain = None, None
    if m.get("oracle") is not None:
        oracle, oracle_chain = _oracle(ctx, m["oracle"], chains, chain_names)
    return SanctionsSettings(lists=lists, max_age=max_age, cache_dir=cache_dir, oracle=oracle,
                             oracle_chain=oracle_chain)


def _lists(ctx: Ctx, raw: Any) -> tuple[SanctionsList, ...]:
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        ctx.error("sanctions.lists", "expected a list of sources, e.g. [builtin, "
                                     "\"/etc/auditor/sdn_advanced.xml\"]")
        return (_BUILTIN,)
    if not raw:
        ctx.warn("sanctions.lists", "no sanctions lists: counterparties are not screened and "
                                    "`sanctioned_counterparty` never fires; list at least "
                                    "`builtin`")
    out: list[SanctionsList] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        path = index("sanctions.lists", i)
        lst = _entry(ctx, path, item)
        if lst is None:
            continue
        if lst.label in seen:
            ctx.error(path, f"a second list labelled `{lst.label}` (the first is {seen[lst.label]}); "
                            "remove the duplicate or give one a `label:`")
            continue
        seen[lst.label] = path
        out.append(lst)
    return tuple(out)


def _entry(ctx: Ctx, path: str, item: Any) -> SanctionsList | None:
    fmt: str | None = None
    label: str | None = None
    if isinstance(item, dict):
        m = ctx.mapping(path, item, keys=("source", "format", "label"), required=("source",),
                        secrets=("source",))
        if m is None or "source" not in m:
            return None
        if "format" in m:
            fmt = ctx.choice(join(path, "format"), m["format"], FORMATS)
            if fmt is None:
                return None
        if "label" in m:
            label = ctx.text(join(path, "label"), m["label"], pattern=_LABEL,
                             hint="use letters, digits and . _ : / - (it names the list in "
                                  "alerts, e.g. ofac-sdn)")
            if label is None:
                return None
        item, path = m["source"], join(path, "source")
    if item == "builtin":
        if fmt == "sdn-xml":
            ctx.error(path, "the builtin list is a plain list; remove `format: sdn-xml`")
            return None
        return SanctionsList(source="builtin", label=label or "builtin")
    source = ctx.text(path, item)
    if source is None:
        return None
    if source.strip().lower() in ("builtin", "built-in", "built_in"):
        ctx.error(path, f"{source!r}: write `builtin` (lowercase) for the shipped list")
        return None
    if "://" in source:
        return _url_list(ctx, path, source, fmt, label)
    return _file_list(ctx, path, source, fmt, label)


def _format_of(name: str, fmt: str | None) -> Literal["plain", "sdn-xml"]:
    if fmt is None:
        fmt = "sdn-xml" if name.lower().endswith(".xml") else "plain"
    return cast(Literal["plain", "sdn-xml"], fmt)


def _url_list(ctx: Ctx, path: str, url: str, fmt: str | None, label: str | None
              ) -> SanctionsList | None:
    from .config_sections import check_url

    if not check_url(ctx, path, url, ("http", "https")):
        return None
    name = PurePosixPath(urlsplit(url).path).name
    shown = redact_url(url) + (f"/{name}" if name else "")
    return SanctionsList(source=shown, label=label or shown, format=_format_of(name, fmt),
                         url=Secret(url))


def _file_list(ctx: Ctx, path: str, text: str, fmt: str | None, label: str | None
               ) -> SanctionsList | None:
    file = ctx.resolve_path(text)
    if file.is_dir():
        ctx.error(path, f"{file} is a directory; give the list file itself")
        return None
    if not file.exists():
        ctx.warn(path, f"{file} does not exist (yet); until it does, this list is missing "
                       "from screening and `stale_data` fires")
    return SanctionsList(source=str(file), label=label or file.name,
                         format=_format_of(file.name, fmt), path=file)


def _oracle(ctx: Ctx, raw: Any, chains: Mapping[str, ChainSettings],
            chain_names: set[str] | None) -> tuple[str | None, str | None]:
    from .config_chains import eth_address

    m = ctx.mapping("sanctions.oracle", raw, keys=("chain", "address"), required=("chain",))
    if m is None or "chain" not in m:
        return None, None
    names = chain_names if chain_names is not None else set(chains)
    chain = ctx.text("sanctions.oracle.chain", m["chain"])
    if chain is not None and chain not in names:
        ctx.error("sanctions.oracle.chain", f"unknown chain `{chain}`; use one of the names "
                  f"under `chains` ({', '.join(sorted(names)) or 'none'})")
        chain = None
    elif chain is not None and chain in chains and chains[chain].type != "ethereum":
        ctx.error("sanctions.oracle.chain", f"chain `{chain}` is not `type: ethereum`; the "
                                            "sanctions oracle is a contract on an EVM chain")
        chain = None
    address = eth_address(ctx, "sanctions.oracle.address", m.get("address", CHAINALYSIS_ORACLE))
    if chain is None or address is None:
        return None, None
    return address, chain
