"""State rules on the exposure: ratios, coverage, commingling, hot floor.

Each returns an `Evaluation` whose `covered` lists the subjects whose inputs
were known this cycle, so an open alert on such a subject resolves when the
breach is gone, and never when the figures were unknown.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from . import units
from .exposure import AssetExposure
from .model import Evaluation, Finding
from .rules_base import RuleInput, ceiling_level, floor_level, pct, whole

__all__ = [
    "hot_ratio",
    "asset_hot_ratio",
    "guarantee_coverage",
    "reserve_coverage",
    "commingling",
    "hot_floor",
]


def hot_ratio(inp: RuleInput) -> Evaluation:
    """Combined Σ N·price ÷ Σ L·price above its ceiling (subject "combined")."""
    t, e = inp.rules.hot_ratio, inp.exposure
    if t is None:
        return Evaluation("hot_ratio", covers_all=True)
    if e is None or e.hot_ratio is None or e.online_value is None or e.customer_value is None:
        return Evaluation("hot_ratio")  # unknown: neither fires nor resolves
    covered = frozenset({"combined"})
    level = ceiling_level(e.online_value, e.customer_value, t)
    if level is None:
        return Evaluation("hot_ratio", covered=covered)
    sev, limit = level
    basis = " (indicative: no ledger, holdings used)" if e.basis == "holdings" else ""
    f = Finding(
        "hot_ratio", "combined", sev,
        f"Online customer crypto is {pct(e.hot_ratio, limit)} of customer crypto (limit {pct(limit)})"
        f"{basis}: move coins to cold storage",
        value=e.hot_ratio, threshold=limit,
        details={"online_value": units.format_decimal(e.online_value),
                 "customer_value": units.format_decimal(e.customer_value),
                 "fiat": e.fiat, "basis": e.basis},
    )
    return Evaluation("hot_ratio", (f,), covered)


def asset_hot_ratio(inp: RuleInput) -> Evaluation:
    """Per asset N ÷ L above its ceiling; covered where N and L are known."""
    rule, e = inp.rules.asset_hot_ratio, inp.exposure
    if rule is None:
        return Evaluation("asset_hot_ratio", covers_all=True)
    if e is None:
        return Evaluation("asset_hot_ratio")
    findings: list[Finding] = []
    covered: set[str] = set()
    for sym, ae in e.assets.items():
        if ae.online is None or ae.liabilities is None:
            continue
        covered.add(sym)
        level = ceiling_level(ae.online, ae.liabilities, rule.for_asset(sym))
        if level is None:
            continue
        sev, limit = level
        findings.append(Finding(
            "asset_hot_ratio", sym, sev,
            f"Online customer {sym} is {pct(ae.hot_ratio, limit)} of customer {sym} "
            f"({whole(ae.online, ae.decimals)} of {whole(ae.liabilities, ae.decimals)}, "
            f"limit {pct(limit)}): move {sym} to cold storage",
            value=ae.hot_ratio, threshold=limit, details=_amounts(ae),
        ))
    return Evaluation("asset_hot_ratio", tuple(findings), frozenset(covered))


def guarantee_coverage(inp: RuleInput) -> Evaluation:
    """Per in-scope asset, guarantee G below N × floor, by quantity."""
    rule, e = inp.rules.guarantee_coverage, inp.exposure
    if rule is None:
        return Evaluation("guarantee_coverage", covers_all=True)
    if e is None:
        return Evaluation("guarantee_coverage")
    findings: list[Finding] = []
    covered: set[str] = set()
    for sym, ae in e.assets.items():
        if not inp.in_scope(sym) or ae.guarantee is None or ae.online is None:
            continue
        covered.add(sym)
        level = floor_level(ae.guarantee, ae.online, rule.threshold, 1 - rule.tolerance)
        if level is None:
            continue
        sev, floor = level
        with localcontext(units.EXACT):
            short = units.to_decimal(ae.online, ae.decimals) * floor - units.to_decimal(
                ae.guarantee, ae.decimals)
        findings.append(Finding(
            "guarantee_coverage", sym, sev,
            f"Guarantee {sym} {whole(ae.guarantee, ae.decimals)} covers "
            f"{pct(units.ratio(ae.guarantee, ae.online), floor)} of online customer {sym} "
            f"{whole(ae.online, ae.decimals)} (need {pct(floor)}): add "
            f"{units.format_decimal(short)} {sym} of the exchange's own to the guarantee wallet",
            value=units.ratio(ae.guarantee, ae.online), threshold=floor, details=_amounts(ae),
        ))
    return Evaluation("guarantee_coverage", tuple(findings), frozenset(covered))


def reserve_coverage(inp: RuleInput) -> Evaluation:
    """Per asset, customer holdings O + C below L × floor × (1 − tolerance).

    Needs a ledger: with basis "holdings" L is O + C by definition, so the
    rule has nothing to say and covers nothing (an alert raised while the
    ledger was readable does not resolve because the ledger went away).
    """
    rule, e = inp.rules.reserve_coverage, inp.exposure
    if rule is None:
        return Evaluation("reserve_coverage", covers_all=True)
    if e is None or e.basis != "liabilities":
        return Evaluation("reserve_coverage")
    findings: list[Finding] = []
    covered: set[str] = set()
    for sym, ae in e.assets.items():
        held = ae.customer_holdings
        if held is None or ae.liabilities is None:
            continue
        covered.add(sym)
        level = floor_level(held, ae.liabilities, rule.threshold, 1 - rule.tolerance)
        if level is None:
            continue
        sev, floor = level
        findings.append(Finding(
            "reserve_coverage", sym, sev,
            f"Customer wallets hold {pct(units.ratio(held, ae.liabilities), floor)} of the {sym} the "
            f"ledger owes ({whole(held, ae.decimals)} of {whole(ae.liabilities, ae.decimals)}, "
            f"need {pct(floor)}): find the missing {whole(ae.liabilities - held, ae.decimals)} "
            f"{sym} and check the ledger",
            value=units.ratio(held, ae.liabilities), threshold=floor, details=_amounts(ae),
        ))
    return Evaluation("reserve_coverage", tuple(findings), frozenset(covered))


def commingling(inp: RuleInput) -> Evaluation:
    """Per asset, customer holdings O + C above L × (1 + threshold). Needs a ledger."""
    t, e = inp.rules.commingling, inp.exposure
    if t is None:
        return Evaluation("commingling", covers_all=True)
    if e is None or e.basis != "liabilities":
        return Evaluation("commingling")
    findings: list[Finding] = []
    covered: set[str] = set()
    for sym, ae in e.assets.items():
        held = ae.customer_holdings
        if held is None or ae.liabilities is None:
            continue
        covered.add(sym)
        level = ceiling_level(held, ae.liabilities, t, offset=Decimal(1))
        if level is None:
            continue
        sev, limit = level
        excess = units.ratio(held, ae.liabilities)
        value = None if excess is None else excess - 1
        findings.append(Finding(
            "commingling", sym, sev,
            f"Customer wallets hold {pct(value, limit)} more {sym} than the ledger owes "
            f"({whole(held, ae.decimals)} vs {whole(ae.liabilities, ae.decimals)}, limit "
            f"{pct(limit)}): move the exchange's own {whole(held - ae.liabilities, ae.decimals)} "
            f"{sym} to a proprietary wallet",
            value=value, threshold=limit, details=_amounts(ae),
        ))
    return Evaluation("commingling", tuple(findings), frozenset(covered))


def hot_floor(inp: RuleInput) -> Evaluation:
    """Per configured asset, online customer holdings O below the floor (whole units)."""
    rule, e = inp.rules.hot_floor, inp.exposure
    if rule is None:
        return Evaluation("hot_floor", covers_all=True)
    if e is None:
        return Evaluation("hot_floor")
    findings: list[Finding] = []
    covered: set[str] = set()
    for sym, ae in e.assets.items():
        online = ae.customer_online
        if online is None:
            continue
        covered.add(sym)  # an asset without a floor covers too: a floor removed resolves
        floor = rule.assets.get(sym)
        have = units.to_decimal(online, ae.decimals)
        if floor is None or not have < floor:
            continue
        findings.append(Finding(
            "hot_floor", sym, rule.severity,
            f"Online {sym} is {units.format_decimal(have)} (floor {units.format_decimal(floor)}): "
            f"withdrawals will stall; top up the hot wallet from cold storage",
            value=have, threshold=floor, details=_amounts(ae),
        ))
    return Evaluation("hot_floor", tuple(findings), frozenset(covered))


def _amounts(ae: AssetExposure) -> dict[str, object]:
    """The asset's figures as whole-unit strings, for an alert's details."""
    def fmt(v: int | None) -> str | None:
        return None if v is None else whole(v, ae.decimals)

    return {"asset": ae.asset, "online": fmt(ae.online), "cold": fmt(ae.cold),
            "held": fmt(ae.customer_holdings), "guarantee": fmt(ae.guarantee),
            "liabilities": fmt(ae.liabilities)}
