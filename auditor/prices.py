"""Price sources: fiat per whole unit of each asset, as exact Decimals.

`fetch_prices` reads the configured source (static, chainlink or http) and,
when `prices.check` is set, a second source, and returns every asset's
price or the reason it has none. A price is None, never an old one reused,
when its source failed, it is older than `max_age`, or the two sources are
further apart than `max_deviation`; the service turns each reason into
`stale_data` `prices:ASSET` and `hot_ratio` is then null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext

from . import units
from .model import BlockRef, Price
from .prices_chainlink import chainlink_prices
from .prices_http import http_prices
from .rules_base import InputStatus
from .settings import ChainSettings, PriceSettings

__all__ = ["PriceReading", "fetch_prices", "load_prices"]


@dataclass(frozen=True)
class PriceReading:
    """Every asset's price (None: unknown) and, for each None, why."""

    prices: dict[str, Price | None]
    problems: dict[str, str] = field(default_factory=dict)

    def statuses(self) -> dict[str, InputStatus]:
        """`stale_data` inputs per asset; staleness is already folded into None."""
        return {a: (InputStatus("ok", None, p.as_of) if p is not None
                    else InputStatus("missing", self.problems.get(a) or f"no price for {a}"))
                for a, p in self.prices.items()}


def fetch_prices(ps: PriceSettings, assets: Iterable[str], now: datetime, *,
                 chains: Mapping[str, ChainSettings] | None = None,
                 blocks: Mapping[str, BlockRef] | None = None,
                 deadline: float | None = None) -> PriceReading:
    """Prices of `assets` at `now`.

    `blocks[chain]` is the settled block the chain client read this cycle:
    Chainlink feeds are read there and nowhere else (a chain not read this
    cycle leaves its feeds' assets without a price). `deadline` is a
    `time.monotonic()` bound for the network reads.
    """
    names = list(assets)
    got, problems = _one_source(ps, names, now, chains or {}, blocks or {}, deadline)
    if ps.check is not None:
        checked, check_problems = _one_source(ps.check, names, now, chains or {}, blocks or {},
                                              deadline)
        got, problems = _cross_check(got, problems, checked, check_problems,
                                     ps.max_deviation or Decimal(0))
    prices: dict[str, Price | None] = {a: got.get(a) for a in names}
    return PriceReading(prices, {a: problems.get(a) or f"no price for {a}"
                                 for a, p in prices.items() if p is None})


def load_prices(ps: PriceSettings, assets: Iterable[str], now: datetime, *,
                chains: Mapping[str, ChainSettings] | None = None,
                blocks: Mapping[str, BlockRef] | None = None,
                deadline: float | None = None) -> dict[str, Price | None]:
    """One Price per asset, or None when the source has none for it (see fetch_prices).

    Static prices are configuration, not market data: they are as fresh as
    the cycle and carry source "static" so reports say so.
    """
    return fetch_prices(ps, assets, now, chains=chains, blocks=blocks, deadline=deadline).prices


def _one_source(ps: PriceSettings, assets: list[str], now: datetime,
                chains: Mapping[str, ChainSettings], blocks: Mapping[str, BlockRef],
                deadline: float | None) -> tuple[dict[str, Price], dict[str, str]]:
    """One source's fresh prices and the reasons for the rest."""
    if ps.source == "static":
        return ({a: Price(asset=a, value=ps.static[a], source="static", as_of=now)
                 for a in assets if a in ps.static},
                {a: f"prices.static has no price for {a}" for a in assets if a not in ps.static})
    if ps.source == "http":
        got, problems = http_prices(ps, assets, now, deadline)
        missing = {a: f"prices.paths has no path for {a}" for a in assets if a not in ps.paths}
    else:
        got, problems = _chainlink(ps, assets, chains, blocks, deadline)
        missing = {a: f"prices.feeds has no feed for {a}" for a in assets if a not in ps.feeds}
    problems = {**missing, **problems}
    for asset, price in list(got.items()):
        age = int((now - price.as_of).total_seconds())
        if age > ps.max_age:
            del got[asset]
            problems[asset] = (f"the price of {asset} from {price.source} is {age}s old "
                               f"(max {ps.max_age}s, as of {price.as_of.isoformat()}); "
                               "the source is not updating")
    return got, problems


def _chainlink(ps: PriceSettings, assets: list[str], chains: Mapping[str, ChainSettings],
               blocks: Mapping[str, BlockRef], deadline: float | None
               ) -> tuple[dict[str, Price], dict[str, str]]:
    chain = chains.get(ps.chain or "")
    block = blocks.get(ps.chain or "")
    if chain is None or block is None:
        why = (f"chain {ps.chain} was not read this cycle, so there is no settled block to "
               "read the Chainlink feeds at")
        return {}, {a: why for a in assets if a in ps.feeds}
    return chainlink_prices(chain, ps.feeds, ps.fiat_feed, block, assets, deadline)


def _cross_check(got: dict[str, Price], problems: dict[str, str], checked: dict[str, Price],
                 check_problems: dict[str, str], max_deviation: Decimal
                 ) -> tuple[dict[str, Price], dict[str, str]]:
    """Keep a price only when the check source has one within max_deviation of it."""
    kept: dict[str, Price] = {}
    out = dict(problems)
    for asset, p1 in got.items():
        p2 = checked.get(asset)
        if p2 is None:
            out[asset] = (f"the check source has no price for {asset} "
                          f"({check_problems.get(asset, 'no reason given')}), so the price "
                          f"{units.format_decimal(p1.value)} from {p1.source} is unconfirmed")
            continue
        with localcontext(units.EXACT):
            apart = abs(p1.value - p2.value) > max_deviation * p2.value
            deviation = abs(p1.value - p2.value) / p2.value
        if apart:
            out[asset] = (f"the sources disagree on {asset}: {units.format_decimal(p1.value)} "
                          f"({p1.source}) vs {units.format_decimal(p2.value)} ({p2.source}), "
                          f"{units.format_ratio(deviation * 100)}% apart "
                          f"(max {units.format_decimal(max_deviation * 100)}%)")
            continue
        kept[asset] = p1
    return kept, out
