"""hot_drain, cold_outflow and config_changed: event rules on movements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from auditor import rules
from auditor.model import Price
from auditor.settings import (
    ApprovalItem,
    ApprovalsSettings,
    AssetSettings,
    Deployment,
    DrainWindow,
    HotDrainRule,
    RuleSettings,
    StaleDataRule,
    WalletSettings,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
BTC = 10**8
D = Decimal
MIN = timedelta(minutes=1)

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
    "BTC": AssetSettings("BTC", "crypto", 8, (Deployment("bitcoin", None, 8),)),
}
WALLETS = (
    WalletSettings("eth-hot", "ethereum", "hot", "customer", ("0x" + "1" * 40,), ("ETH", "USDC")),
    WalletSettings("eth-hot-2", "ethereum", "hot", "customer", (), ("ETH",)),
    WalletSettings("eth-cold", "ethereum", "cold", "customer", (), ("ETH", "USDC")),
    WalletSettings("eth-dep", "ethereum", "deposit", "customer", (), ("ETH",)),
    WalletSettings("btc-hot", "bitcoin", "hot", "customer", (), ("BTC",)),
    WalletSettings("btc-cold", "bitcoin", "cold", "customer", (), ("BTC",)),
)
WINDOWS = (DrainWindow(600, D("0.2"), "critical"), DrainWindow(7200, D("0.3"), "critical"),
           DrainWindow(86400, D("0.5"), "warning"))
PRICES = {"ETH": Price("ETH", D("450000"), "static", NOW),
          "BTC": Price("BTC", D("15000000"), "static", NOW)}


def rule_settings() -> RuleSettings:
    return RuleSettings(preset="jp-fsa", scope_classes=frozenset({"crypto"}), hot_ratio=None,
                        asset_hot_ratio=None, guarantee_coverage=None, reserve_coverage=None,
                        commingling=None, hot_floor=None,
                        hot_drain=HotDrainRule(D(1000000), WINDOWS), stale_data=StaleDataRule(180))


def bal(eth_hot: float = 100, eth_cold: float = 0, eth_dep: float = 0, eth_hot_2: float = 100,
        **extra: int) -> dict[tuple[str, str], int]:
    # test inputs in whole ETH (as Decimal via str) → wei, exactly
    def wei(x: float) -> int:
        return int(D(str(x)) * ETH)
    m = {("eth-hot", "ETH"): wei(eth_hot), ("eth-cold", "ETH"): wei(eth_cold),
         ("eth-dep", "ETH"): wei(eth_dep), ("eth-hot-2", "ETH"): wei(eth_hot_2)}
    for k, v in extra.items():
        w, a = k.rsplit("__", 1)
        m[(w.replace("_", "-"), a)] = v
    return m


def drain(history: list[tuple[timedelta, dict[tuple[str, str], int]]],
          now: dict[tuple[str, str], int], prices: Any = PRICES) -> dict[str, Any]:
    inp = rules.RuleInput(now=NOW, exchange_id="ex", rules=rule_settings(), wallets=WALLETS,
                          assets=ASSETS, prices=prices, watch_now=now,
                          watch_history=[(NOW - ago, m) for ago, m in history])
    ev = rules.hot_drain(inp)
    assert ev.covered == frozenset() and not ev.covers_all  # event rule: never resolves
    return {f.subject: f for f in ev.findings}


def test_hot_drain_ignores_sweep_to_own_cold_wallet() -> None:
    found = drain([(5 * MIN, bal(100, 0))], bal(49.99, 50))  # 50 swept, 0.01 fee
    assert found == {}


def test_hot_drain_fires_on_a_real_drain() -> None:
    found = drain([(5 * MIN, bal(100))], bal(70))
    f = found["eth-hot/ETH"]
    assert f.severity == "critical" and f.value == D("0.3") and f.threshold == D("0.2")
    assert f.details["window"] == "10m" and f.details["fall"] == "30"
    assert (f.details["high"], f.details["current"]) == ("100", "70")


@pytest.mark.parametrize(("now_eth", "fires"), [("80", False), ("79.999999999999999999", True)])
def test_hot_drain_drop_exactly_at_threshold_does_not_fire(now_eth: str, fires: bool) -> None:
    now = bal(100) | {("eth-hot", "ETH"): int(D(now_eth) * ETH)}
    assert ("eth-hot/ETH" in drain([(5 * MIN, bal(100))], now)) is fires


def test_hot_drain_deposit_rise_does_not_mask_a_theft() -> None:
    found = drain([(5 * MIN, bal(100, eth_dep=0))], bal(70, eth_dep=30))
    assert "eth-hot/ETH" in found


def test_hot_drain_shares_one_rise_among_several_falling_wallets() -> None:
    # both hot wallets fall 50, cold rises 50: only half of each fall is internal
    found = drain([(5 * MIN, bal(100, 0, eth_hot_2=100))], bal(50, 50, eth_hot_2=50))
    assert set(found) == {"eth-hot/ETH", "eth-hot-2/ETH"}
    assert found["eth-hot/ETH"].details["fall"] == "25"


def test_hot_drain_escalates_from_slow_warning_to_fast_critical() -> None:
    slow = [(20 * 60 * MIN, bal(100)), (3 * 60 * MIN, bal(60))]
    first = drain(slow, bal(45))["eth-hot/ETH"]
    assert first.severity == "warning" and first.details["window"] == "1d"
    second = drain([*slow, (5 * MIN, bal(45))], bal(30))["eth-hot/ETH"]
    assert second.severity == "critical" and second.details["window"] == "10m"


def test_hot_drain_reports_worst_window_when_several_fire() -> None:
    f = drain([(60 * MIN, bal(100)), (5 * MIN, bal(100))], bal(40))["eth-hot/ETH"]
    assert f.severity == "critical" and f.value == D("0.6")


def test_hot_drain_below_min_value_does_not_fire() -> None:
    small = bal(1) | {("eth-hot-2", "ETH"): 0}
    now = small | {("eth-hot", "ETH"): 7 * ETH // 10}  # 0.3 ETH = 135000 JPY < 1M
    assert drain([(5 * MIN, small)], now) == {}


def test_hot_drain_unknown_price_counts_as_worth_more() -> None:
    small = bal(1) | {("eth-hot-2", "ETH"): 0}
    now = small | {("eth-hot", "ETH"): 7 * ETH // 10}
    assert "eth-hot/ETH" in drain([(5 * MIN, small)], now, prices={})


def test_hot_drain_skips_wallets_of_unreadable_chains() -> None:
    now = bal(70)
    del now[("eth-hot", "ETH")]
    assert "eth-hot/ETH" not in drain([(5 * MIN, bal(100))], now)


# --- cold_outflow -----------------------------------------------------------------


def item(**over: Any) -> ApprovalItem:
    base: dict[str, Any] = dict(id="a", wallet="btc-cold", asset="BTC", to="btc-hot",
                                amount=D("50"), not_after=NOW + timedelta(hours=1))
    return ApprovalItem(**(base | over))


def cold(prev: dict[tuple[str, str], int], now: dict[tuple[str, str], int],
         items: tuple[ApprovalItem, ...] = (), used: frozenset[str] = frozenset(),
         prev_nonces: dict[str, int] | None = None, nonces: dict[str, int] | None = None) -> Any:
    return rules.cold_outflow(rules.RuleInput(
        now=NOW, exchange_id="ex", rules=rule_settings(), wallets=WALLETS, assets=ASSETS,
        watch_now=now, prev_watch=prev, prev_nonces=prev_nonces or {"eth-cold": 5},
        nonces_now=nonces or {"eth-cold": 5}, approvals=ApprovalsSettings(items),
        used_approvals=used))


BTC_PREV = {("btc-cold", "BTC"): 100 * BTC, ("btc-hot", "BTC"): 10 * BTC}
BTC_TOPUP = {("btc-cold", "BTC"): 50 * BTC - 2000, ("btc-hot", "BTC"): 60 * BTC}  # fee 2000 sat


def test_cold_outflow_approved_top_up_is_consumed_once() -> None:
    ev = cold(BTC_PREV, BTC_TOPUP, (item(),))
    assert ev.findings == () and ev.consumed == {"a"}
    again = cold(BTC_PREV, BTC_TOPUP, (item(),), used=frozenset({"a"}))
    (f,) = again.findings
    assert f.subject == "btc-cold/BTC" and f.severity == "critical"
    assert "already used" in f.summary and again.consumed == frozenset()


def test_cold_outflow_expired_approval_fires() -> None:
    ev = cold(BTC_PREV, BTC_TOPUP, (item(not_after=NOW - timedelta(seconds=1)),))
    assert [f.subject for f in ev.findings] == ["btc-cold/BTC"]
    assert "expired" in ev.findings[0].summary


def test_cold_outflow_not_yet_valid_approval_fires() -> None:
    ev = cold(BTC_PREV, BTC_TOPUP, (item(not_before=NOW + MIN),))
    assert ev.findings and "not valid before" in ev.findings[0].summary


def test_cold_outflow_other_amount_or_destination_fires() -> None:
    assert cold(BTC_PREV, BTC_TOPUP, (item(amount=D("49")),)).findings
    elsewhere = BTC_TOPUP | {("btc-hot", "BTC"): 10 * BTC}  # coins left, hot did not rise
    (f,) = cold(BTC_PREV, elsewhere, (item(),)).findings
    assert "rose by only 0" in f.summary and f.value == D("50.00002")


def test_cold_outflow_fee_beyond_allowance_fires() -> None:
    now = BTC_TOPUP | {("btc-cold", "BTC"): 50 * BTC - BTC // 100 - 1}
    assert cold(BTC_PREV, now, (item(),)).findings
    at_allowance = BTC_TOPUP | {("btc-cold", "BTC"): 50 * BTC - BTC // 100}
    assert cold(BTC_PREV, at_allowance, (item(),)).findings == ()


def test_cold_outflow_nonce_only_increase_fires_on_native_asset() -> None:
    same = {("eth-cold", "ETH"): 10 * ETH, ("eth-cold", "USDC"): 0}
    ev = cold(same, same, prev_nonces={"eth-cold": 5}, nonces={"eth-cold": 6})
    (f,) = ev.findings
    assert f.subject == "eth-cold/ETH" and f.details["nonce_after"] == "6"


def test_cold_outflow_approved_token_movement_covers_nonce_and_gas() -> None:
    prev = {("eth-cold", "ETH"): 10 * ETH, ("eth-cold", "USDC"): 5000 * 10**6,
            ("eth-hot", "USDC"): 0}
    now = {("eth-cold", "ETH"): 10 * ETH - 2 * 10**15, ("eth-cold", "USDC"): 4000 * 10**6,
           ("eth-hot", "USDC"): 1000 * 10**6}
    approval = item(id="u", wallet="eth-cold", asset="USDC", to="0x" + "1" * 40, amount=D(1000))
    ev = cold(prev, now, (approval,), prev_nonces={"eth-cold": 5}, nonces={"eth-cold": 6})
    assert ev.findings == () and ev.consumed == {"u"}
    two_txs = cold(prev, now, (approval,), prev_nonces={"eth-cold": 5}, nonces={"eth-cold": 7})
    assert [f.subject for f in two_txs.findings] == ["eth-cold/ETH"]


def test_cold_outflow_unapproved_gas_spend_fires_once_per_subject() -> None:
    prev = {("eth-cold", "ETH"): 10 * ETH}
    now = {("eth-cold", "ETH"): 10 * ETH - 10**15}  # an ERC-20 approve: gas only
    ev = cold(prev, now, prev_nonces={"eth-cold": 5}, nonces={"eth-cold": 6})
    (f,) = ev.findings
    assert f.subject == "eth-cold/ETH" and f.details["nonce_before"] == "5"


def test_cold_outflow_without_previous_reading_checks_nothing() -> None:
    ev = rules.cold_outflow(rules.RuleInput(
        now=NOW, exchange_id="ex", rules=rule_settings(), wallets=WALLETS, assets=ASSETS,
        watch_now={("btc-cold", "BTC"): 0}))
    assert ev.findings == () and ev.covered == frozenset()


# --- config_changed -----------------------------------------------------------------


def test_config_changed_carries_the_diff() -> None:
    def run(diff: list[str] | None) -> Any:
        return rules.config_changed(rules.RuleInput(
            now=NOW, exchange_id="ex", rules=rule_settings(), wallets=WALLETS, assets=ASSETS,
            config_digest_changed=diff))
    (f,) = run(["- wallets[0].tier: cold", "+ wallets[0].tier: hot"]).findings
    assert (f.rule, f.subject, f.severity) == ("config_changed", "config", "critical")
    assert f.details["diff"] == ["- wallets[0].tier: cold", "+ wallets[0].tier: hot"]
    assert run([]).findings == () and run(None).findings == ()
    assert run(None).covered == frozenset()
