"""The `prices` and `liabilities` sections: which source, and its keys.

prices: `static` (a mapping), `chainlink` (feeds read at a chain's settled
block), `http` (a JSON endpoint, one dotted path per asset), optionally
cross-checked by a second source under `check` within `max_deviation`.
liabilities: a csv or json export (`path`) or an SQL query (`url`, `query`).
Each source accepts only its own keys; URLs are secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

from .config_ctx import Ctx
from .config_yaml import join
from .settings import (
    AssetSettings,
    ChainSettings,
    LiabilitiesSettings,
    PriceSettings,
    Secret,
    redact_url,
)

__all__ = ["PRICE_SOURCES", "read_liabilities", "read_prices", "sql_source"]

PRICE_SOURCES = ("static", "chainlink", "http")
_COMMON = ("source", "max_age")
_KEYS = {"static": ("static",), "chainlink": ("chain", "feeds", "fiat_feed"),
         "http": ("url", "paths", "as_of_path", "timeout")}
_DOTTED = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


def read_prices(ctx: Ctx, raw: Any, assets: Mapping[str, AssetSettings], *,
                chains: Mapping[str, ChainSettings] | None = None,
                chain_names: set[str] | None = None, fiat: str | None = None
                ) -> PriceSettings | None:
    """`chains`: the valid chains (None: not checked); `chain_names`: every declared one."""
    env = _Env(assets, chains, chain_names, fiat)
    ps = _source(ctx, "prices", {} if raw is None else raw, env, top=True)
    return ps


class _Env:
    def __init__(self, assets: Mapping[str, AssetSettings],
                 chains: Mapping[str, ChainSettings] | None, chain_names: set[str] | None,
                 fiat: str | None) -> None:
        self.assets, self.chains, self.fiat = assets, chains, fiat
        self.chain_names = chain_names if chain_names is not None else set(chains or ())


def _source(ctx: Ctx, path: str, raw: Any, env: _Env, *, top: bool,
            default_max_age: int = 600) -> PriceSettings | None:
    source = raw.get("source", "static") if isinstance(raw, dict) else "static"
    every = tuple(k for keys in _KEYS.values() for k in keys)
    own = _KEYS.get(source, every) if isinstance(source, str) else every
    extra = ("check", "max_deviation") if top else ()
    if isinstance(raw, dict):
        raw = dict(raw)
        for key in [k for k in raw if k in every and k not in own]:
            owner = next(s for s, keys in _KEYS.items() if key in keys)
            ctx.error(join(path, key), f"`{key}` belongs to `source: {owner}`, not "
                                       f"`source: {source}`; remove it or change `source`")
            del raw[key]
        if not top and "check" in raw:
            ctx.error(join(path, "check"), "a check source cannot have its own `check`; "
                                           "remove it")
            del raw["check"]
    m = ctx.mapping(path, raw, keys=(*_COMMON, *own, *extra),
                    secrets=("url",) if source == "http" else ())
    if m is None:
        return None
    errors = ctx.error_count()
    if ctx.choice(join(path, "source"), source, PRICE_SOURCES) is None:
        return None
    max_age: int | None = default_max_age
    if "max_age" in m:
        max_age = ctx.duration(join(path, "max_age"), m["max_age"], minimum=1)
    static: dict[str, Decimal] = {}
    fields: dict[str, Any] = {}
    if source == "static":
        static = _static_prices(ctx, join(path, "static"), m.get("static") or {}, env.assets) or {}
    elif source == "chainlink":
        fields = _chainlink(ctx, path, m, env)
    else:
        fields = _http(ctx, path, m, env)
    if top:
        fields.update(_check(ctx, path, m, env, max_age or 600))
    if max_age is None or ctx.error_count() != errors:
        return None
    # ctx.choice above checked that `source` is one of PRICE_SOURCES
    known = cast(Literal["static", "chainlink", "http"], source)
    return PriceSettings(source=known, static=static, max_age=max_age, **fields)


def _check(ctx: Ctx, path: str, m: Mapping[str, Any], env: _Env, max_age: int) -> dict[str, Any]:
    if "check" not in m:
        if "max_deviation" in m:
            ctx.error(join(path, "max_deviation"), "only means something with `check` (a "
                      "second price source); add `check: {source: …}` or remove it")
        return {}
    check = _source(ctx, join(path, "check"), m["check"], env, top=False, default_max_age=max_age)
    if "max_deviation" not in m:
        ctx.error(path, "`check` needs `max_deviation`: how far apart the two sources may "
                        "be, e.g. `max_deviation: \"2%\"`")
        return {}
    dev = ctx.percent(join(path, "max_deviation"), m["max_deviation"], at_most_one=True)
    return {"check": check, "max_deviation": dev}


def _assets_mapping(ctx: Ctx, path: str, raw: Any, env: _Env, what: str,
                    example: str, placeholder: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        ctx.error(path, f"expected a mapping of asset to {what}, e.g. {example}")
        return {}
    out: dict[str, Any] = {}
    for sym, value in raw.items():
        if env.assets and sym not in env.assets:
            ctx.error(join(path, sym), f"unknown asset `{sym}`; declare it under `assets` or "
                                       "remove this entry")
        else:
            out[str(sym)] = value
    for sym in env.assets:
        if sym not in raw:
            ctx.warn(path, f"no {what} for {sym}: its value is unknown and hot_ratio will be "
                           f"null; add {sym}: {placeholder}")
    return out


def _chainlink(ctx: Ctx, path: str, m: Mapping[str, Any], env: _Env) -> dict[str, Any]:
    from .config_chains import eth_address  # config_chains imports this module's neighbour

    chain = ctx.text(join(path, "chain"), m["chain"]) if "chain" in m else None
    if "chain" not in m:
        ctx.error(path, "`chain` is required with `source: chainlink`: the name of the "
                        "ethereum chain (under `chains`) the feeds live on")
    elif chain is not None and env.chains is not None and chain not in env.chain_names:
        ctx.error(join(path, "chain"), f"unknown chain `{chain}`; use one of the names under "
                                       f"`chains` ({', '.join(sorted(env.chain_names)) or 'none'})")
    elif chain is not None and env.chains is not None and chain in env.chains \
            and env.chains[chain].type != "ethereum":
        ctx.error(join(path, "chain"), f"chain `{chain}` is not `type: ethereum`; Chainlink "
                                       "feeds are read from an EVM chain")
    feeds: dict[str, str] = {}
    raw = _assets_mapping(ctx, join(path, "feeds"), m.get("feeds"), env, "feed",
                          '{ETH: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"}',
                          '"<its asset/USD feed address>"')
    for sym, value in raw.items():
        address = eth_address(ctx, join(join(path, "feeds"), sym), value)
        if address is not None:
            feeds[sym] = address
    fiat_feed = None
    if "fiat_feed" in m:
        fiat_feed = eth_address(ctx, join(path, "fiat_feed"), m["fiat_feed"])
    elif env.fiat != "USD":
        ctx.error(path, f"`fiat_feed` is required: Chainlink feeds are in USD and prices are "
                        f"in {env.fiat or 'exchange.fiat'}; give the {env.fiat or 'fiat'}/USD "
                        "feed's address (e.g. JPY/USD), or set `exchange.fiat: USD`")
    return {"chain": chain, "feeds": feeds, "fiat_feed": fiat_feed}


def _http(ctx: Ctx, path: str, m: Mapping[str, Any], env: _Env) -> dict[str, Any]:
    from .config_sections import check_url

    url: Secret | None = None
    label = None
    if "url" not in m:
        ctx.error(path, "`url` is required with `source: http`: the JSON endpoint, e.g. "
                        "url: \"${PRICE_URL}\"")
    else:
        text = ctx.text(join(path, "url"), m["url"])
        if text is not None and check_url(ctx, join(path, "url"), text, ("http", "https")):
            url, label = Secret(text), redact_url(text)
    paths: dict[str, str] = {}
    raw = _assets_mapping(ctx, join(path, "paths"), m.get("paths"), env, "path",
                          '{ETH: "ethereum.jpy"}', '"<dotted path>"')
    for sym, value in raw.items():
        p = _dotted(ctx, join(join(path, "paths"), sym), value)
        if p is not None:
            paths[sym] = p
    as_of_path = _dotted(ctx, join(path, "as_of_path"), m["as_of_path"]) if "as_of_path" in m else None
    timeout = ctx.duration(join(path, "timeout"), m.get("timeout", "10s"), minimum=1) or 10
    return {"url": url, "url_label": label, "paths": paths, "as_of_path": as_of_path,
            "timeout": timeout}


def _dotted(ctx: Ctx, path: str, value: Any) -> str | None:
    return ctx.text(path, value, pattern=_DOTTED,
                    hint="write a dotted path into the JSON answer, e.g. ethereum.jpy "
                         "(list items by number: data.0.price)")


def _static_prices(ctx: Ctx, path: str, raw: Any, assets: Mapping[str, AssetSettings]
                   ) -> dict[str, Decimal] | None:
    if not isinstance(raw, dict):
        ctx.error(path, 'expected a mapping of asset to price, e.g. {ETH: "450000"}')
        return None
    out: dict[str, Decimal] = {}
    ok = True
    for sym, value in raw.items():
        p = join(path, sym)
        if assets and sym not in assets:
            ctx.error(p, f"unknown asset `{sym}`; declare it under `assets` or remove this "
                         "price")
            ok = False
            continue
        d = ctx.decimal(p, value, positive=True)
        if d is None:
            ok = False
        else:
            out[sym] = d
    for sym in assets:
        if sym not in out and sym not in raw:
            ctx.warn(path, f"no price for {sym}: its value is unknown and "
                           f"hot_ratio will be null; add {sym}: \"<price in fiat>\"")
    return out if ok else None


def read_liabilities(ctx: Ctx, raw: Any) -> LiabilitiesSettings | None:
    source = raw.get("source", "csv") if isinstance(raw, dict) else "csv"
    own = ("url", "query") if source == "sql" else ("path",)
    m = ctx.mapping("liabilities", raw, keys=("source", "max_age", *own), secrets=("url",),
                    required=("url", "query") if source == "sql" else ("path",))
    if m is None:
        return None
    errors = ctx.error_count()
    if ctx.choice("liabilities.source", source, ("csv", "json", "sql")) is None:
        return None
    max_age = _max_age(ctx, m)
    if source == "sql":
        sql = sql_source(ctx, m, "liabilities")
        if sql is None or ctx.error_count() != errors:
            return None
        return LiabilitiesSettings(source="sql", path=Path(), max_age=max_age, **sql)
    text = ctx.text("liabilities.path", m["path"]) if "path" in m else None
    if text is None or ctx.error_count() != errors:
        return None
    path = ctx.resolve_path(text)
    if not path.exists():
        ctx.warn("liabilities.path", f"{path} does not exist yet; until it does every cycle "
                                     "fires stale_data `liabilities`")
    return LiabilitiesSettings(source=source, path=Path(path), max_age=max_age)  # type: ignore[arg-type]


def _max_age(ctx: Ctx, m: Mapping[str, Any]) -> int | None:
    if "max_age" not in m:
        return 3600
    if m["max_age"] is None or m["max_age"] is False or m["max_age"] == "off":
        return None
    return ctx.duration("liabilities.max_age", m["max_age"], minimum=1)


def sql_source(ctx: Ctx, m: Mapping[str, Any], section: str) -> dict[str, Any] | None:
    """`url` (a secret SQLAlchemy URL, shown only as its label) and `query` of a
    `source: sql` section (`liabilities`, `withdrawals`); None after reporting a problem."""
    from .ledger_sql import dsn_label

    url = ctx.text(f"{section}.url", m["url"]) if "url" in m else None
    query = ctx.text(f"{section}.query", m["query"]) if "query" in m else None
    label = None
    if url is not None:
        try:
            label = dsn_label(url)
        except ValueError as e:
            ctx.error(f"{section}.url", f"{e} (the URL itself is a secret and not shown)")
        except ImportError:
            ctx.error(f"{section}.url", "`source: sql` needs SQLAlchemy 2: pip install "
                                        "'sqlalchemy>=2' and the database's driver")
    if url is None or query is None or label is None:
        return None
    return {"url": Secret(url), "url_label": label, "query": query}
