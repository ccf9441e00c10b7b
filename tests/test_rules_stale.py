"""stale_data: chains, providers, ledger, prices and cycles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor import rules
from auditor.exposure import compute_exposure
from auditor.model import Liabilities, Price, ProviderProblem
from auditor.settings import (
    AssetSettings,
    Deployment,
    DrainWindow,
    HotDrainRule,
    LiabilitiesSettings,
    RuleSettings,
    StaleDataRule,
    WalletSettings,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
D = Decimal
ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
}
WALLETS = (WalletSettings("eth-hot", "ethereum", "hot", "customer", (), ("ETH", "USDC")),)
SETTINGS = RuleSettings(
    preset="jp-fsa", scope_classes=frozenset({"crypto"}), hot_ratio=None, asset_hot_ratio=None,
    guarantee_coverage=None, reserve_coverage=None, commingling=None, hot_floor=None,
    hot_drain=HotDrainRule(D(1), (DrainWindow(600, D("0.2"), "critical"),)),
    stale_data=StaleDataRule(180))


def exposure(price_age: int = 0, liab: dict[str, int] | None = None,
             usdc_price: bool = True) -> Any:
    prices = {"ETH": Price("ETH", D(1), "s", NOW - timedelta(seconds=price_age))}
    if usdc_price:
        prices["USDC"] = Price("USDC", D(1), "s", NOW - timedelta(days=9))
    ledger = Liabilities({"ETH": 1, "USDC": 0} if liab is None else liab, NOW, "t")
    return compute_exposure(WALLETS, ASSETS, {("eth-hot", "ETH"): 1, ("eth-hot", "USDC"): 0},
                            prices, ledger, frozenset({"crypto"}), NOW, 600, "JPY")


def stale(**kw: Any) -> tuple[dict[str, Any], frozenset[str]]:
    inp = rules.RuleInput(now=NOW, exchange_id="ex", rules=SETTINGS, wallets=WALLETS,
                          assets=ASSETS, **kw)
    ev = rules.stale_data(inp)
    return {f.subject: f for f in ev.findings}, ev.covered


def test_unreadable_chain_is_critical_and_a_good_chain_is_covered() -> None:
    found, covered = stale(chain_status={
        "ethereum": rules.ChainStatus(ok=False, error="connection refused"),
        "bitcoin": rules.ChainStatus(ok=True, head_age_s=30, max_head_age=7200)})
    assert found["ethereum"].severity == "critical"
    assert "connection refused" in found["ethereum"].summary
    assert "bitcoin" not in found and {"ethereum", "bitcoin"} <= covered


def test_failed_provider_while_others_agree_is_a_warning_naming_it() -> None:
    p = ProviderProblem("warning", "http://10.0.0.2:8545", "timed out")
    found, _ = stale(chain_status={"ethereum": rules.ChainStatus(ok=True, problems=(p,))})
    f = found["ethereum"]
    assert f.severity == "warning" and "http://10.0.0.2:8545: timed out" in f.summary


def test_disagreeing_providers_are_critical_with_their_values() -> None:
    p = ProviderProblem("critical", "http://a:8545, http://b:8545", "balances differ at block 9",
                        {"http://a:8545": "10", "http://b:8545": "11"})
    found, _ = stale(chain_status={"ethereum": rules.ChainStatus(ok=False, problems=(p,))})
    f = found["ethereum"]
    assert f.severity == "critical" and "http://b:8545 says 11" in f.summary
    assert f.details["problems"][0]["values"] == {"http://a:8545": "10", "http://b:8545": "11"}


def test_old_head_is_critical_only_above_max_head_age() -> None:
    at, _ = stale(chain_status={"ethereum": rules.ChainStatus(True, head_age_s=120)})
    above, _ = stale(chain_status={"ethereum": rules.ChainStatus(True, head_age_s=121)})
    assert at == {} and above["ethereum"].value == 121 and above["ethereum"].threshold == 120


def test_head_not_advancing_is_critical() -> None:
    found, _ = stale(chain_status={"ethereum": rules.ChainStatus(True, head_age_s=5,
                                                                 head_advanced=False)})
    assert "not advanced" in found["ethereum"].summary


def test_ledger_missing_or_stale_is_critical() -> None:
    for st in (rules.InputStatus("missing", "liabilities.csv: no such file"),
               rules.InputStatus("stale", "the ledger is 7200s old (max 3600s)")):
        found, covered = stale(liabilities_status=st, exposure=exposure())
        f = found["liabilities"]
        assert f.severity == "critical" and st.reason and st.reason in f.summary
    _, covered = stale(liabilities_status=rules.InputStatus("ok"), exposure=exposure())
    assert "liabilities" in covered


def test_ledger_without_an_in_scope_asset_fires_liabilities() -> None:
    found, _ = stale(liabilities_status=rules.InputStatus("ok"),
                     exposure=exposure(liab={"USDC": 0}))
    assert "ETH" in found["liabilities"].summary


def test_liabilities_status_from_settings() -> None:
    cfg: Any = type("S", (), {"liabilities": LiabilitiesSettings("csv", Path("/l.csv"), 3600)})()
    old = Liabilities({}, NOW - timedelta(seconds=3601), "csv")
    stale_st = rules.InputStatus.from_liabilities(old, None, cfg, NOW)
    missing_st = rules.InputStatus.from_liabilities(None, "bad", cfg, NOW)
    assert stale_st is not None and stale_st.state == "stale"
    assert missing_st is not None and missing_st.state == "missing"
    cfg.liabilities = None
    assert rules.InputStatus.from_liabilities(None, None, cfg, NOW) is None


def test_stale_in_scope_price_is_critical_but_stablecoin_price_is_not_checked() -> None:
    found, covered = stale(exposure=exposure(price_age=601))
    assert found["prices:ETH"].severity == "critical"
    assert "prices:USDC" not in found and "prices:USDC" not in covered  # out of jp-fsa scope
    fresh, covered = stale(exposure=exposure(price_age=600))
    assert fresh == {} and "prices:ETH" in covered


def test_given_price_status_wins() -> None:
    found, _ = stale(price_status={"ETH": rules.InputStatus("missing", "no price for ETH")})
    assert "no price for ETH" in found["prices:ETH"].summary


def test_last_ok_cycle_older_than_max_age_is_critical() -> None:
    at, covered = stale(last_ok_cycle_at=NOW - timedelta(seconds=180))
    assert at == {} and "cycles" in covered
    old, _ = stale(last_ok_cycle_at=NOW - timedelta(seconds=181))
    assert old["cycles"].severity == "critical"
