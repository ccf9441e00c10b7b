"""The regulator's view of a report: each ratio or coverage rule the preset (or
`rules`) turns on, its limit and how the period measured against it, in plain
words. Built from the report's own figures, so it can be re-derived from the JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..settings import Settings
from .summary import pct

__all__ = ["regulator_view", "PRESET_NAMES"]

PRESET_NAMES = {
    "jp-fsa": "Japan FSA (Payment Services Act; Cabinet Office Order Art. 27)",
    "hk-sfc": "Hong Kong SFC (VATP guidelines)",
    "bahrain-cbb": "Central Bank of Bahrain (crypto-asset module)",
    "nydfs": "New York DFS (custody guidance 2023)",
    "none": "no preset (the configured rules only)",
}
_HOT_TITLE = {
    "jp-fsa": "Online customer crypto at most {limit} of all customer crypto, in {fiat}, "
              "crypto assets combined (stablecoins excluded)",
    "hk-sfc": "Online client assets at most {limit} of client assets (98% cold)",
}


def _hot(settings: Settings, report: dict[str, Any]) -> dict[str, Any] | None:
    limits = report["limits"]["hot_ratio"]
    if limits is None:
        return None
    r = report["exposure"]["hot_ratio"]
    limit = limits["critical"] or limits["warning"]
    title = _HOT_TITLE.get(settings.rules.preset, "Online customer assets at most {limit} of "
                           "customer assets ({fiat} value, combined)")
    return {"id": "hot_ratio", "title": title.format(limit=pct(limit), fiat=report["fiat"]),
            "limit": limit, "warning": limits["warning"],
            "worst": r["max"]["value"] if r["max"] else None,
            "mean": r["mean"], "latest": r["latest"]["value"] if r["latest"] else None,
            "cycles_above": r["above"]["critical" if limits["critical"] else "warning"],
            "cycles_above_warning": r["above"]["warning"],
            "met": r["above"]["critical" if limits["critical"] else "warning"] == 0,
            "indicative": report["indicative"]}


def _per_asset(report: dict[str, Any], key: str, short_key: str | None,
               in_scope_only: bool) -> dict[str, Any]:
    out = {}
    for sym, a in report["exposure"]["assets"].items():
        if in_scope_only and not a["in_scope"]:
            continue
        latest = a["latest"] or {}
        worst = a["worst"][key]
        out[sym] = {"latest": latest.get(key), "worst": worst["value"] if worst else None,
                    "worst_at": worst["at"] if worst else None,
                    **{k: latest.get(k) for k in ("L", "C", "O", "N", "G")}}
        if short_key is not None:
            out[sym]["cycles_short"] = a[short_key]
    return out


def regulator_view(settings: Settings, report: dict[str, Any]) -> dict[str, Any]:
    rules, checks = settings.rules, []
    if (hot := _hot(settings, report)) is not None:
        checks.append(hot)
    if rules.asset_hot_ratio is not None:
        assets = _per_asset(report, "hot_ratio", None, False)
        for sym, a in assets.items():
            t = rules.asset_hot_ratio.for_asset(sym)
            lim = t.critical if t.critical is not None else t.warning
            a["limit"] = None if lim is None else f"{lim.normalize():f}"
            a["met"] = lim is None or a["worst"] is None or Decimal(a["worst"]) <= lim
        checks.append({"id": "asset_hot_ratio", "title": "Online share of each asset at most "
                       "its limit (N ÷ L per asset)", "assets": assets,
                       "met": all(a["met"] for a in assets.values())})
    if rules.guarantee_coverage is not None:
        scoped = rules.scope_classes is not None
        assets = _per_asset(report, "guarantee_coverage", "cycles_guarantee_short", scoped)
        checks.append({"id": "guarantee_coverage", "title": "Guarantee crypto (the exchange's "
                       "own, cold) at least the online customer crypto, per asset, by quantity "
                       "(G ≥ N)", "assets": assets,
                       "met": all(a["cycles_short"] == 0 for a in assets.values())})
    if rules.reserve_coverage is not None:
        assets = _per_asset(report, "reserve_coverage", "cycles_reserve_short", False)
        checks.append({"id": "reserve_coverage", "title": "Customer wallets hold at least what "
                       "the ledger owes customers, per asset (O + C ≥ L)", "assets": assets,
                       "met": all(a["cycles_short"] == 0 for a in assets.values())})
    return {"preset": rules.preset, "name": PRESET_NAMES.get(rules.preset, rules.preset),
            "checks": checks, "met": all(c["met"] for c in checks)}
