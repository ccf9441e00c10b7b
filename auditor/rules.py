"""Pure rules: exposure + watch history + inputs → one `Evaluation` per rule.

One function per rule (split by meaning into `rules_ratio`, `rules_flow`
(with `rules_drain`, `rules_cold`), `rules_transfers` and `rules_stale`);
`evaluate_all` runs them in a fixed order. No I/O, no clock.
Rule ids are public interface (DESIGN.md "Rules").
"""

from __future__ import annotations

from collections.abc import Callable

from .model import Evaluation
from .rules_base import ChainStatus, InputStatus, RuleInput, WalletAsset
from .rules_flow import GAS_ALLOWANCE, cold_outflow, config_changed, hot_drain, native_asset
from .rules_ratio import (
    asset_hot_ratio,
    commingling,
    guarantee_coverage,
    hot_floor,
    hot_ratio,
    reserve_coverage,
)
from .rules_records import daily_record
from .rules_stale import stale_data
from .rules_transfers import (
    large_outflow,
    reconcile,
    sanctioned_counterparty,
    unknown_destination,
    unmatched_outflow,
)

__all__ = [
    "ChainStatus",
    "InputStatus",
    "RuleInput",
    "WalletAsset",
    "EVENT_RULES",
    "STATE_RULES",
    "RATIO_RULES",
    "RULES",
    "GAS_ALLOWANCE",
    "evaluate_all",
    "native_asset",
    "hot_ratio",
    "asset_hot_ratio",
    "guarantee_coverage",
    "reserve_coverage",
    "commingling",
    "hot_floor",
    "hot_drain",
    "cold_outflow",
    "config_changed",
    "stale_data",
    "daily_record",
    "large_outflow",
    "unmatched_outflow",
    "unknown_destination",
    "sanctioned_counterparty",
    "reconcile",
]

# Event rules never resolve by evaluation; a person resolves them.
EVENT_RULES: frozenset[str] = frozenset({
    "hot_drain", "large_outflow", "cold_outflow", "unmatched_outflow", "unknown_destination",
    "sanctioned_counterparty", "safe_changed", "config_changed", "delivery_failed",
})
# State rules resolve by themselves when a covered subject has no finding.
STATE_RULES: frozenset[str] = frozenset({
    "hot_ratio", "asset_hot_ratio", "guarantee_coverage", "reserve_coverage", "commingling",
    "hot_floor", "stale_data", "daily_record",
})
# Rules whose value and threshold are ratios (fractions), formatted with units.format_ratio.
RATIO_RULES: frozenset[str] = frozenset({
    "hot_ratio", "asset_hot_ratio", "guarantee_coverage", "reserve_coverage", "commingling",
    "hot_drain",
})

RULES: tuple[Callable[[RuleInput], Evaluation], ...] = (
    hot_ratio,
    asset_hot_ratio,
    guarantee_coverage,
    reserve_coverage,
    commingling,
    hot_floor,
    hot_drain,
    cold_outflow,
    config_changed,
    stale_data,
    daily_record,
    # the transfer rules: silent unless `inp.transfers` is set (transfers tracked)
    large_outflow,
    unmatched_outflow,
    unknown_destination,
    sanctioned_counterparty,
)


def evaluate_all(inp: RuleInput) -> list[Evaluation]:
    """Every rule of this module, in a fixed order, one evaluation per rule. The
    transfer rules return an empty evaluation when their inputs are absent
    (`transfers` None, no `withdrawals`, a rule off). The reconciliation of
    `inp.reconcile_chains` joins the `stale_data` evaluation."""
    out = [rule(inp) for rule in RULES]
    extra = reconcile(inp)
    if extra.findings or extra.covered:
        out = [_join(e, extra) if e.rule == extra.rule else e for e in out]
    return out


def _join(a: Evaluation, b: Evaluation) -> Evaluation:
    return Evaluation(a.rule, a.findings + b.findings, a.covered | b.covered,
                      a.covers_all, a.consumed | b.consumed)
