"""What every rule reads (`RuleInput`) and the exact comparisons they share.

Pure: no I/O, no clock. Thresholds compare exactly (cross-multiplied in
`units.EXACT`, never through a rounded quotient); a value exactly at a
threshold is not a breach. Ceilings fire above, floors below, and a rule
reports the worst level reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Literal

from . import units
from .exposure import Exposure, price_is_fresh
from .model import Liabilities, Price, ProviderProblem, Severity
from .settings import ApprovalsSettings, AssetSettings, RuleSettings, Threshold, WalletSettings

if TYPE_CHECKING:
    from .flows import Classified
    from .settings import Settings

__all__ = [
    "WalletAsset",
    "ChainStatus",
    "InputStatus",
    "RuleInput",
    "ceiling_level",
    "floor_level",
    "pct",
    "whole",
]

WalletAsset = tuple[str, str]  # (wallet name, asset symbol)


@dataclass(frozen=True)
class ChainStatus:
    """How one chain was read this cycle, for `stale_data`.

    `head_age_s`: now − the tip block's timestamp (None: unknown).
    `head_advanced`: False when the head block has not changed for longer
    than `max_head_age` across cycles (the caller compares with earlier
    cycles); None when there is no earlier head to compare with.
    """

    ok: bool
    error: str | None = None
    problems: tuple[ProviderProblem, ...] = ()
    head_age_s: int | None = None
    max_head_age: int = 120
    head_advanced: bool | None = None


@dataclass(frozen=True)
class InputStatus:
    """A non-chain input (the ledger, one price): ok, missing or stale."""

    state: Literal["ok", "missing", "stale"]
    reason: str | None = None
    as_of: datetime | None = None

    @classmethod
    def from_liabilities(cls, liabilities: Liabilities | None, error: str | None,
                         settings: Settings, now: datetime) -> InputStatus | None:
        """The ledger's status; None when no ledger is configured."""
        if settings.liabilities is None:
            return None
        if error is not None or liabilities is None:
            return cls("missing", error or "the ledger could not be read")
        max_age = settings.liabilities.max_age
        age = int((now - liabilities.as_of).total_seconds())
        if max_age is not None and age > max_age:
            return cls("stale", f"the ledger is {age}s old (max {max_age}s)", liabilities.as_of)
        return cls("ok", None, liabilities.as_of)

    @classmethod
    def from_price(cls, asset: str, price: Price | None, now: datetime,
                   max_age: int | None) -> InputStatus:
        if price is None:
            return cls("missing", f"no price for {asset}")
        if not price_is_fresh(price, now, max_age):
            age = int((now - price.as_of).total_seconds())
            return cls("stale", f"the price of {asset} is {age}s old (max {max_age}s)", price.as_of)
        return cls("ok", None, price.as_of)


@dataclass(frozen=True)
class RuleInput:
    """Everything the rules see in one cycle. Amounts are asset base units.

    `watch_now`/`prev_watch`/`watch_history` hold watch-view totals per
    (wallet, asset); a pair whose chain was unreadable is absent, never 0.
    `watch_history` is oldest first and ends before `now`. `prev_*` is the
    last cycle that read that chain. `price_status` None: derived from the
    exposure (a missing or stale price of an in-scope asset).
    """

    now: datetime
    exchange_id: str
    rules: RuleSettings
    wallets: Sequence[WalletSettings]
    assets: Mapping[str, AssetSettings]
    exposure: Exposure | None = None
    prices: Mapping[str, Price | None] = field(default_factory=dict)
    watch_now: Mapping[WalletAsset, int] = field(default_factory=dict)
    nonces_now: Mapping[str, int] = field(default_factory=dict)
    watch_history: Sequence[tuple[datetime, Mapping[WalletAsset, int]]] = ()
    prev_watch: Mapping[WalletAsset, int] | None = None
    prev_nonces: Mapping[str, int] | None = None
    approvals: ApprovalsSettings = ApprovalsSettings()
    used_approvals: frozenset[str] = frozenset()
    config_digest_changed: list[str] | None = None
    chain_status: Mapping[str, ChainStatus] = field(default_factory=dict)
    liabilities_status: InputStatus | None = None
    price_status: Mapping[str, InputStatus] | None = None
    last_ok_cycle_at: datetime | None = None
    poll_every: int = 60
    # daily_record: business dates that have a record (None: not tracked, the rule is
    # silent), when the store's first cycle was taken, and the schedule's cut-off
    record_dates: frozenset[str] | None = None
    first_cycle_at: datetime | None = None
    records_timezone: str = "UTC"
    records_cutoff: str = "00:00"
    # Transfers (rules_transfers, and hot_drain/cold_outflow on tracked chains):
    # `transfers` are those first ingested this cycle, classified (flows.classify);
    # None: transfers are not tracked this cycle and the transfer rules are silent.
    transfers: tuple[Classified, ...] | None = None
    # chains whose transfers were ingested up to this cycle's watch block; None with
    # `transfers` set: every chain. hot_drain judges these chains' wallets by transfers,
    # the other chains' by balances.
    tracked_chains: frozenset[str] | None = None
    # chains with transfer ingestion at all, also while it fails or lags behind the watch
    # block (those transfers arrive in a later cycle, and an approval must not be used up
    # by the balance check first); None: `tracked_chains`. cold_outflow judges these
    # chains' cold wallets by transfers, the other chains' by balances and nonces.
    transfer_chains: frozenset[str] | None = None
    # classified transfers of tracked chains within the longest hot_drain window
    # (this cycle's may be repeated here): what hot_drain counts as outflows
    window_transfers: tuple[Classified, ...] = ()
    withdrawals_configured: bool = False  # unmatched_outflow applies, unknown_destination not
    # chains whose ingestion covered exactly the blocks between `prev_watch` and
    # `watch_now`: reconciled (stale_data `chain:wallet/asset`) and cold wallets'
    # balance/nonce falls checked beyond what the transfers show
    reconcile_chains: frozenset[str] = frozenset()

    def tracks(self, chain: str) -> bool:
        """Whether `chain`'s transfers are ingested up to this cycle's watch block."""
        return self.transfers is not None and (self.tracked_chains is None
                                               or chain in self.tracked_chains)

    def ingests(self, chain: str) -> bool:
        """Whether `chain`'s transfers are ingested at all (see `transfer_chains`)."""
        if self.transfer_chains is None:
            return self.tracks(chain)
        return self.transfers is not None and chain in self.transfer_chains

    def in_scope(self, asset: str) -> bool:
        scope = self.rules.scope_classes
        a = self.assets.get(asset)
        return a is not None and (scope is None or a.cls in scope)


def _gt(a: Decimal | int, b: Decimal | int, factor: Decimal) -> bool:
    """a > b × factor, exactly."""
    with localcontext(units.EXACT):
        return Decimal(a) > Decimal(b) * factor


def _lt(a: Decimal | int, b: Decimal | int, factor: Decimal) -> bool:
    """a < b × factor, exactly."""
    with localcontext(units.EXACT):
        return Decimal(a) < Decimal(b) * factor


def ceiling_level(num: Decimal | int, den: Decimal | int, t: Threshold,
                  offset: Decimal = Decimal(0)) -> tuple[Severity, Decimal] | None:
    """Worst level whose ceiling num ÷ den − offset is above: num > den × (limit + offset).

    Returns (severity, limit) or None. With den 0 any positive num is above.
    """
    for sev, limit in (("critical", t.critical), ("warning", t.warning)):
        if limit is None:
            continue
        with localcontext(units.EXACT):
            factor = limit + offset
        if _gt(num, den, factor):
            return sev, limit  # type: ignore[return-value]
    return None


def floor_level(num: Decimal | int, den: Decimal | int, t: Threshold,
                scale: Decimal = Decimal(1)) -> tuple[Severity, Decimal] | None:
    """Worst level whose floor num ÷ den is below: num < den × limit × scale.

    Returns (severity, limit × scale). Coverage of nothing (den 0) never breaches.
    """
    for sev, limit in (("critical", t.critical), ("warning", t.warning)):
        if limit is None:
            continue
        with localcontext(units.EXACT):
            floor = limit * scale
        if _lt(num, den, floor):
            return sev, floor  # type: ignore[return-value]
    return None


def pct(r: Decimal | None, vs: Decimal | None = None) -> str:
    """A ratio for a human: 0.0523 → "5.23%" (rounded for display only).

    With `vs` (the limit shown next to it), more digits are shown until the
    two read differently, so a breach by one wei never reads "100% (need 100%)".
    """
    if r is None:
        return "n/a"
    with localcontext(units.EXACT):
        for places in range(2, 31):
            q = Decimal(1).scaleb(-places)
            shown = units.format_decimal((r * 100).quantize(q))
            if vs is None or r == vs or shown != units.format_decimal((vs * 100).quantize(q)):
                break
        return shown + "%"


def whole(amount: int, decimals: int) -> str:
    """Base units as exact whole-unit text."""
    return units.format_amount(amount, decimals)
