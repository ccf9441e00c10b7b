"""Ratio, coverage, commingling and floor rules: exact thresholds, coverage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from auditor import rules, units
from auditor.exposure import Exposure, compute_exposure
from auditor.model import Liabilities, Price
from auditor.settings import (
    AssetRatioRule,
    AssetSettings,
    CoverageRule,
    Deployment,
    DrainWindow,
    HotDrainRule,
    HotFloorRule,
    RuleSettings,
    StaleDataRule,
    Threshold,
    WalletSettings,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
D = Decimal

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
}
WALLETS = (
    WalletSettings("eth-hot", "ethereum", "hot", "customer", (), ("ETH", "USDC")),
    WalletSettings("eth-cold", "ethereum", "cold", "customer", (), ("ETH", "USDC")),
    WalletSettings("eth-guar", "ethereum", "cold", "guarantee", (), ("ETH", "USDC")),
)


def rule_settings(**over: Any) -> RuleSettings:
    base: dict[str, Any] = dict(
        preset="jp-fsa", scope_classes=frozenset({"crypto"}),
        hot_ratio=Threshold(D("0.04"), D("0.05")), asset_hot_ratio=None,
        guarantee_coverage=CoverageRule(Threshold(critical=D(1))),
        reserve_coverage=CoverageRule(Threshold(critical=D(1)), D("0.0001")),
        commingling=Threshold(warning=D("0.005")), hot_floor=None,
        hot_drain=HotDrainRule(D(1000000), (DrainWindow(600, D("0.2"), "critical"),)),
        stale_data=StaleDataRule(180),
    )
    return RuleSettings(**(base | over))


def exposure(hot: int, cold: int, owed: int | None, guar: int = 10**6 * ETH,
             usdc: tuple[int, int, int] = (0, 0, 0)) -> Exposure:
    settled = {("eth-hot", "ETH"): hot, ("eth-cold", "ETH"): cold, ("eth-guar", "ETH"): guar,
               ("eth-hot", "USDC"): usdc[0], ("eth-cold", "USDC"): usdc[1],
               ("eth-guar", "USDC"): usdc[2]}
    liab = None if owed is None else Liabilities({"ETH": owed, "USDC": usdc[0] + usdc[1]}, NOW, "t")
    prices = {a: Price(a, D("450000"), "static", NOW) for a in ASSETS}
    return compute_exposure(WALLETS, ASSETS, settled, prices, liab, frozenset({"crypto"}), NOW,
                            600, "JPY")


def run(rule: Any, e: Exposure | None, **over: Any) -> Any:
    return rule(rules.RuleInput(now=NOW, exchange_id="ex", rules=rule_settings(**over),
                                wallets=WALLETS, assets=ASSETS, exposure=e))


def severities(ev: Any) -> dict[str, str]:
    return {f.subject: f.severity for f in ev.findings}


@pytest.mark.parametrize(("hot", "expected"), [
    (4 * ETH - 1, None), (4 * ETH, None), (4 * ETH + 1, "warning"),
    (5 * ETH, "warning"), (5 * ETH + 1, "critical"),
])
def test_hot_ratio_compares_exactly_and_reports_worst_level(hot: int, expected: str | None) -> None:
    ev = run(rules.hot_ratio, exposure(hot, 100 * ETH - hot, 100 * ETH))
    assert severities(ev).get("combined") == expected
    assert ev.covered == {"combined"}


def test_hot_ratio_finding_says_what_to_do_with_values() -> None:
    ev = run(rules.hot_ratio, exposure(52 * ETH // 10, 100 * ETH - 52 * ETH // 10, 100 * ETH))
    (f,) = ev.findings
    assert f.value == D("0.052") and f.threshold == D("0.05")
    assert f.summary == ("Online customer crypto is 5.2% of customer crypto (limit 5%): "
                         "move coins to cold storage")


def test_hot_ratio_unknown_neither_fires_nor_resolves() -> None:
    e = replace(exposure(50 * ETH, 50 * ETH, 100 * ETH), hot_ratio=None, online_value=None)
    ev = run(rules.hot_ratio, e)
    assert ev.findings == () and ev.covered == frozenset() and not ev.covers_all


@pytest.mark.parametrize(("hot", "expected"), [
    (10 * ETH - 1, None), (10 * ETH, None), (10 * ETH + 1, "critical"),
])
def test_asset_hot_ratio_per_asset_threshold(hot: int, expected: str | None) -> None:
    ev = run(rules.asset_hot_ratio, exposure(hot, 100 * ETH - hot, 100 * ETH),
             asset_hot_ratio=AssetRatioRule(Threshold(critical=D("0.1"))))
    assert severities(ev).get("ETH") == expected
    assert ev.covered == {"ETH", "USDC"}


def test_asset_hot_ratio_uses_the_asset_override() -> None:
    rule = AssetRatioRule(Threshold(critical=D("0.1")), {"USDC": Threshold(critical=D("0.5"))})
    ev = run(rules.asset_hot_ratio, exposure(0, 100 * ETH, 100 * ETH, usdc=(40, 60, 0)),
             asset_hot_ratio=rule)
    assert severities(ev) == {}


@pytest.mark.parametrize(("guar", "expected"), [
    (5 * ETH - 1, "critical"), (5 * ETH, None), (5 * ETH + 1, None),
])
def test_guarantee_coverage_by_quantity(guar: int, expected: str | None) -> None:
    ev = run(rules.guarantee_coverage, exposure(5 * ETH, 95 * ETH, 100 * ETH, guar=guar))
    assert severities(ev).get("ETH") == expected
    if expected:
        assert ev.findings[0].value == units.ratio(guar, 5 * ETH)
        assert ev.findings[0].threshold == 1


def test_coverage_summary_shows_a_one_wei_shortfall() -> None:
    ev = run(rules.guarantee_coverage, exposure(13 * ETH + 5, 400 * ETH, 400 * ETH, guar=13 * ETH))
    (f,) = ev.findings
    assert "covers 99.99999999999999996% of online" in f.summary
    assert "(need 100%): add 0.000000000000000005 ETH" in f.summary


def test_guarantee_coverage_nothing_online_is_no_breach() -> None:
    ev = run(rules.guarantee_coverage, exposure(0, 100 * ETH, 100 * ETH, guar=0))
    assert ev.findings == () and "ETH" in ev.covered


def test_guarantee_coverage_skips_stablecoins_under_jp_fsa() -> None:
    ev = run(rules.guarantee_coverage, exposure(0, 100 * ETH, 100 * ETH, usdc=(500, 0, 0)))
    assert "USDC" not in ev.covered and severities(ev) == {}


@pytest.mark.parametrize(("held", "expected"), [
    (9999 * ETH - 1, "critical"), (9999 * ETH, None), (9999 * ETH + 1, None),
])
def test_reserve_coverage_with_tolerance(held: int, expected: str | None) -> None:
    ev = run(rules.reserve_coverage, exposure(held // 2, held - held // 2, 10000 * ETH))
    assert severities(ev).get("ETH") == expected
    if expected:
        assert ev.findings[0].threshold == D("0.9999")


def test_reserve_and_commingling_need_a_ledger() -> None:
    e = exposure(1 * ETH, 2 * ETH, None)
    for rule in (rules.reserve_coverage, rules.commingling):
        ev = run(rule, e)
        assert ev.findings == () and ev.covered == frozenset()


@pytest.mark.parametrize(("held", "expected"), [
    (1005 * ETH - 1, None), (1005 * ETH, None), (1005 * ETH + 1, "warning"),
    (1020 * ETH, "warning"), (1020 * ETH + 1, "critical"),
])
def test_commingling_above_ledger(held: int, expected: str | None) -> None:
    ev = run(rules.commingling, exposure(held - 900 * ETH, 900 * ETH, 1000 * ETH),
             commingling=Threshold(D("0.005"), D("0.02")))
    assert severities(ev).get("ETH") == expected
    if expected == "warning" and held == 1005 * ETH + 1:
        assert ev.findings[0].value == units.ratio(5 * ETH + 1, 1000 * ETH)


@pytest.mark.parametrize(("hot", "expected"), [
    (5 * ETH - 1, "critical"), (5 * ETH, None), (5 * ETH + 1, None),
])
def test_hot_floor_below_floor(hot: int, expected: str | None) -> None:
    ev = run(rules.hot_floor, exposure(hot, 100 * ETH, 100 * ETH),
             hot_floor=HotFloorRule({"ETH": D("5")}, "critical"))
    assert severities(ev).get("ETH") == expected
    assert ev.covered == {"ETH", "USDC"}


def test_rule_off_covers_all_so_old_alerts_resolve() -> None:
    ev = run(rules.asset_hot_ratio, exposure(50 * ETH, 50 * ETH, 100 * ETH))
    assert ev.covers_all and ev.findings == ()


def test_without_exposure_nothing_is_covered() -> None:
    for rule in (rules.hot_ratio, rules.guarantee_coverage, rules.reserve_coverage,
                 rules.commingling):
        ev = run(rule, None)
        assert ev.covered == frozenset() and not ev.covers_all


def test_evaluate_all_returns_one_evaluation_per_rule() -> None:
    inp = rules.RuleInput(now=NOW, exchange_id="ex", rules=rule_settings(), wallets=WALLETS,
                          assets=ASSETS, exposure=exposure(ETH, 99 * ETH, 100 * ETH))
    names = [e.rule for e in rules.evaluate_all(inp)]
    assert len(names) == len(set(names)) == 15
    assert set(names) <= rules.EVENT_RULES | rules.STATE_RULES
    assert rules.EVENT_RULES.isdisjoint(rules.STATE_RULES)
