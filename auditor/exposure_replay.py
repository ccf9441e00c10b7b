"""Stored exposure JSON → `Exposure` objects again, for re-running the rules (backtest).

Pure. The stored poll JSON holds whole-unit decimal strings; they go back to
int base units through `units.parse_amount` with the asset's configured
decimals, and prices back to `Price`. The combined `hot_ratio` is recomputed
for the scope given (another preset may count other asset classes), the way
`exposure.compute_exposure` does: unknown when any in-scope asset lacks N, L
or a fresh price.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import units
from .exposure import AssetExposure, Exposure, price_is_fresh, safe_ratio, scope_values
from .model import Price
from .settings import AssetSettings
from .store_codec import parse_time

__all__ = ["exposure_from_json", "prices_from_json"]

_AMOUNTS = ("hot", "warm", "deposit", "cold", "online", "guarantee", "proprietary", "liabilities")


@functools.lru_cache(maxsize=65536)
def _parsed(text: str, decimals: int) -> int:
    # cold, guarantee and ledger figures repeat from cycle to cycle: parse each once
    return units.parse_amount(text, decimals)


@functools.lru_cache(maxsize=4096)
def _time(text: str) -> datetime:
    return parse_time(text)  # one price time is shared by the assets of a cycle


def _amount(text: object, decimals: int) -> int | None:
    if text is None:
        return None
    if type(text) is str:
        return _parsed(text, decimals)
    return units.parse_amount(text, decimals)  # type: ignore[arg-type]


def _price(sym: str, a: Mapping[str, Any], taken_at: datetime) -> Price | None:
    if a.get("price") is None:
        return None
    as_of = a.get("price_as_of")
    return Price(asset=sym, value=units.parse_decimal(a["price"]),
                 source=str(a.get("price_source") or "stored"),
                 as_of=_time(as_of) if as_of else taken_at, round_id=a.get("price_round"))


def prices_from_json(exposure: Mapping[str, Any], taken_at: datetime) -> dict[str, Price | None]:
    """The cycle's price per asset (as_of: the stored one, else the cycle's time)."""
    return {sym: _price(sym, a, taken_at) for sym, a in exposure.get("assets", {}).items()}


def exposure_from_json(exposure: Mapping[str, Any], assets: Mapping[str, AssetSettings],
                       scope_classes: frozenset[str] | None, taken_at: datetime,
                       price_max_age: int | None) -> Exposure:
    """Rebuild the Exposure of a stored cycle. Assets no longer configured are skipped."""
    per_asset: dict[str, AssetExposure] = {}
    for sym, a in exposure.get("assets", {}).items():
        cfg = assets.get(sym)
        if cfg is None:
            continue
        d = cfg.decimals
        amounts = {k: _amount(a.get(k), d) for k in _AMOUNTS}
        price = _price(sym, a, taken_at)
        n, owed = amounts["online"], amounts["liabilities"]
        per_asset[sym] = AssetExposure(
            asset=sym, cls=str(a.get("class") or cfg.cls), decimals=d, **amounts,
            price=price, hot_ratio=None if n is None or owed is None else safe_ratio(n, owed),
            price_ok=price_is_fresh(price, taken_at, price_max_age),
            in_scope=scope_classes is None or cfg.cls in scope_classes)
    online_value, customer_value = scope_values(per_asset.values())
    hot_ratio = None
    if online_value is not None and customer_value is not None:
        hot_ratio = safe_ratio(online_value, customer_value)
    complete = {s: ae.liabilities is not None and ae.online is not None and ae.price_ok
                for s, ae in per_asset.items()}
    return Exposure(fiat=str(exposure.get("fiat") or ""), basis=exposure.get("basis", "liabilities"),
                    online_value=online_value, customer_value=customer_value,
                    hot_ratio=hot_ratio, assets=per_asset, complete=complete)
