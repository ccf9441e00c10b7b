"""The regulator's arithmetic: settled holdings + prices + ledger → Exposure.

Pure: no I/O, no clock (`now` is an argument). Per asset, in the asset's base
units (DESIGN.md "Exposure"):

- C: settled holdings of `role: customer` wallets with `tier: cold`
- O: settled holdings of customer wallets with tier hot, warm or deposit
- L: the ledger's liabilities; without a ledger L := O + C (basis "holdings")
- N: online customer crypto = max(O, L − C, 0)
- G: settled holdings of `role: guarantee` wallets
- proprietary: shown, counted nowhere

Unknown is never zero: an amount whose wallet's chain was unreadable, a
liability the ledger does not list, or a missing price is `None`, and every
figure derived from it is `None` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Literal

from . import units
from .model import Liabilities, Price
from .settings import AssetSettings, WalletSettings

__all__ = ["AssetExposure", "Exposure", "compute_exposure", "exposure_json", "price_is_fresh", "safe_ratio",
           "scope_values"]

_TIERS = ("hot", "warm", "deposit", "cold")


@dataclass(frozen=True)
class AssetExposure:
    """One asset's figures. Amounts are int base units of `decimals`; None = unknown."""

    asset: str
    cls: str
    decimals: int
    hot: int | None
    warm: int | None
    deposit: int | None
    cold: int | None  # C
    online: int | None  # N
    guarantee: int | None  # G
    proprietary: int | None
    liabilities: int | None  # L
    price: Price | None  # as given, even when stale (see price_ok)
    hot_ratio: Decimal | None  # N ÷ L
    price_ok: bool = False  # a price is present and not older than the price max age
    in_scope: bool = True  # counted in the combined hot_ratio

    @property
    def customer_online(self) -> int | None:
        """O = customer hot + warm + deposit."""
        return _sum_known((self.hot, self.warm, self.deposit))

    @property
    def customer_holdings(self) -> int | None:
        """O + C: what customer wallets hold."""
        return _sum_known((self.customer_online, self.cold))


@dataclass(frozen=True)
class Exposure:
    fiat: str
    basis: Literal["liabilities", "holdings"]
    online_value: Decimal | None  # Σ N·price over the scope
    customer_value: Decimal | None  # Σ L·price over the scope
    hot_ratio: Decimal | None
    assets: dict[str, AssetExposure]
    missing: tuple[str, ...] = ()  # why hot_ratio is None, readable
    complete: dict[str, bool] = field(default_factory=dict)  # every input of the asset present


def price_is_fresh(price: Price | None, now: datetime, max_age: int | None) -> bool:
    """A price counts when present and, with a max age, not older than it."""
    if price is None:
        return False
    if max_age is None:
        return True
    return (now - price.as_of).total_seconds() <= max_age


def compute_exposure(
    wallets: Sequence[WalletSettings],
    assets: Mapping[str, AssetSettings],
    settled: Mapping[tuple[str, str], int | None] | None,
    prices: Mapping[str, Price | None],
    liabilities: Liabilities | None,
    scope_classes: frozenset[str] | None,
    now: datetime,
    price_max_age: int | None,
    fiat: str,
) -> Exposure:
    """Exposure of every configured asset.

    `settled[(wallet, asset)]` is the settled-view total in the asset's base
    units; a pair that is absent (or None) means the wallet's chain was
    unreadable, which makes that tier's sum unknown.

    Combined `hot_ratio` = Σ N·price ÷ Σ L·price over the assets in scope
    (`scope_classes` None: every asset). It is None, with a reason in
    `missing`, when any in-scope asset lacks N, L or a fresh price (an asset
    is never dropped from the sum). When Σ L·price is 0 the ratio is 0 if
    Σ N·price is 0 too (nothing owed, nothing online), and None otherwise
    (coins online against no liabilities: the ratio is undefined, and
    `commingling` is the rule that speaks to it).
    """
    settled = settled or {}
    basis: Literal["liabilities", "holdings"] = "holdings" if liabilities is None else "liabilities"
    per_asset: dict[str, AssetExposure] = {}
    missing: list[str] = []
    complete: dict[str, bool] = {}
    for sym, a in assets.items():
        in_scope = scope_classes is None or a.cls in scope_classes
        ae, unreadable = _asset_exposure(sym, a, wallets, settled, prices, liabilities,
                                         now, price_max_age, in_scope)
        per_asset[sym] = ae
        complete[sym] = not unreadable and ae.liabilities is not None and ae.price_ok
        if in_scope:
            missing.extend(_reasons(ae, unreadable, liabilities, now, price_max_age))
    online_value, customer_value = scope_values(per_asset.values())
    hot_ratio: Decimal | None = None
    if not missing and online_value is not None and customer_value is not None:
        hot_ratio = safe_ratio(online_value, customer_value)
        if hot_ratio is None:
            missing.append("customer liabilities in scope are worth 0 while coins are online")
    return Exposure(fiat=fiat, basis=basis, online_value=online_value,
                    customer_value=customer_value, hot_ratio=hot_ratio, assets=per_asset,
                    missing=tuple(dict.fromkeys(missing)), complete=complete)


def _asset_exposure(
    sym: str, a: AssetSettings, wallets: Sequence[WalletSettings],
    settled: Mapping[tuple[str, str], int | None], prices: Mapping[str, Price | None],
    liabilities: Liabilities | None, now: datetime, price_max_age: int | None, in_scope: bool,
) -> tuple[AssetExposure, list[str]]:
    """The asset's figures and the chains whose wallets holding it were unreadable."""
    sums: dict[str, int | None] = {t: 0 for t in (*_TIERS, "guarantee", "proprietary")}
    unreadable: list[str] = []
    for w in wallets:
        if sym not in w.assets:
            continue
        key = w.tier if w.role == "customer" else w.role
        amount = settled.get((w.name, sym))
        if amount is None:
            unreadable.append(w.chain)
        prev = sums[key]
        sums[key] = None if prev is None or amount is None else prev + amount
    cold = sums["cold"]
    online = _sum_known((sums["hot"], sums["warm"], sums["deposit"]))
    if liabilities is None:
        owed = _sum_known((online, cold))
    else:
        owed = liabilities.amounts.get(sym)
    n = None if online is None or cold is None or owed is None else max(online, owed - cold, 0)
    price = prices.get(sym)
    ae = AssetExposure(
        asset=sym, cls=a.cls, decimals=a.decimals, hot=sums["hot"], warm=sums["warm"],
        deposit=sums["deposit"], cold=cold, online=n, guarantee=sums["guarantee"],
        proprietary=sums["proprietary"], liabilities=owed, price=price,
        hot_ratio=None if n is None or owed is None else safe_ratio(n, owed),
        price_ok=price_is_fresh(price, now, price_max_age), in_scope=in_scope,
    )
    return ae, list(dict.fromkeys(unreadable))


def _reasons(ae: AssetExposure, unreadable: list[str], liabilities: Liabilities | None,
             now: datetime, price_max_age: int | None) -> list[str]:
    reasons = [f"chain {c} unreadable" for c in unreadable]
    if liabilities is not None and ae.liabilities is None:
        reasons.append(f"liabilities of {ae.asset} missing")
    if ae.price is None:
        reasons.append(f"price of {ae.asset} missing")
    elif not ae.price_ok:
        age = int((now - ae.price.as_of).total_seconds())
        reasons.append(f"price of {ae.asset} stale ({age}s old, max {price_max_age}s)")
    return reasons


def scope_values(assets: Iterable[AssetExposure]) -> tuple[Decimal | None, Decimal | None]:
    """(Σ N·price, Σ L·price) over the in-scope assets; None if any term is unknown."""
    online = Decimal(0)
    owed = Decimal(0)
    for ae in assets:
        if not ae.in_scope:
            continue
        if ae.online is None or ae.liabilities is None or not ae.price_ok or ae.price is None:
            return None, None
        with localcontext(units.EXACT):
            online += units.value_of(ae.online, ae.decimals, ae.price.value)
            owed += units.value_of(ae.liabilities, ae.decimals, ae.price.value)
    return online, owed


def safe_ratio(num: Decimal | int, den: Decimal | int) -> Decimal | None:
    """num ÷ den; 0 ÷ 0 is 0 (nothing owed, nothing online), x ÷ 0 is unknown."""
    if den == 0:
        return Decimal(0) if num == 0 else None
    return units.ratio(num, den)


def _sum_known(parts: tuple[int | None, ...]) -> int | None:
    if any(p is None for p in parts):
        return None
    return sum(p for p in parts if p is not None)


def _amount(amount: int | None, decimals: int) -> str | None:
    return None if amount is None else units.format_amount(amount, decimals)


def _dec(d: Decimal | None) -> str | None:
    return None if d is None else units.format_decimal(d)


def exposure_json(e: Exposure) -> dict[str, object]:
    """DESIGN.md's poll `exposure` object: exact whole-unit strings, null when unknown."""
    return {
        "fiat": e.fiat,
        "basis": e.basis,
        "online_value": _dec(e.online_value),
        "customer_value": _dec(e.customer_value),
        "hot_ratio": units.format_ratio(e.hot_ratio),
        "assets": {sym: _asset_json(ae) for sym, ae in e.assets.items()},
    }


def _asset_json(ae: AssetExposure) -> dict[str, object]:
    d = ae.decimals
    return {
        "class": ae.cls,
        "hot": _amount(ae.hot, d),
        "warm": _amount(ae.warm, d),
        "deposit": _amount(ae.deposit, d),
        "cold": _amount(ae.cold, d),
        "online": _amount(ae.online, d),
        "guarantee": _amount(ae.guarantee, d),
        "proprietary": _amount(ae.proprietary, d),
        "liabilities": _amount(ae.liabilities, d),
        "price": _dec(ae.price.value) if ae.price is not None else None,
        # Where the price came from, so a stored cycle shows its evidence:
        # "static", "http:scheme://host:port", "chainlink:0xfeed[/0xfiatfeed]@block".
        "price_source": ae.price.source if ae.price is not None else None,
        "price_as_of": _time(ae.price.as_of) if ae.price is not None else None,
        "price_round": ae.price.round_id if ae.price is not None else None,
        "hot_ratio": units.format_ratio(ae.hot_ratio),
    }


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
