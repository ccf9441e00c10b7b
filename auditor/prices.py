"""Price sources: fiat per whole unit of each asset, as exact Decimals."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .model import Price
from .settings import PriceSettings

__all__ = ["load_prices"]


def load_prices(ps: PriceSettings, assets: Iterable[str], now: datetime) -> dict[str, Price | None]:
    """One Price per asset, or None when the source has none for it.

    Static prices are configuration, not market data: they are as fresh as
    the cycle and carry source "static" so reports say so.
    """
    out: dict[str, Price | None] = {}
    for asset in assets:
        value = ps.static.get(asset)
        out[asset] = Price(asset=asset, value=value, source="static", as_of=now) if value is not None else None
    return out
