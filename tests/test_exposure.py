"""Exposure: the regulator's arithmetic (DESIGN.md "Exposure")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from auditor import units
from auditor.exposure import Exposure, compute_exposure, exposure_json
from auditor.model import Liabilities, Price
from auditor.settings import AssetSettings, Deployment, WalletSettings

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
BTC = 10**8

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "BTC": AssetSettings("BTC", "crypto", 8, (Deployment("bitcoin", None, 8),)),
    "USDC": AssetSettings("USDC", "stablecoin", 18, (
        Deployment("ethereum", "0x" + "a" * 40, 6), Deployment("bsc", "0x" + "b" * 40, 18))),
}


def wallet(name: str, chain: str, tier: str, role: str = "customer",
           assets: tuple[str, ...] = ("ETH",)) -> WalletSettings:
    return WalletSettings(name, chain, tier, role, (), assets)  # type: ignore[arg-type]


WALLETS = [
    wallet("eth-hot", "ethereum", "hot", assets=("ETH", "USDC")),
    wallet("eth-cold", "ethereum", "cold", assets=("ETH", "USDC")),
    wallet("eth-guar", "ethereum", "cold", "guarantee"),
    wallet("eth-fees", "ethereum", "hot", "proprietary"),
    wallet("bsc-hot", "bsc", "hot", assets=("USDC",)),
    wallet("btc-deposits", "bitcoin", "deposit", assets=("BTC",)),
    wallet("btc-cold", "bitcoin", "cold", assets=("BTC",)),
]


def prices(age_s: int = 0, **values: str) -> dict[str, Price | None]:
    base = {"ETH": "450000", "BTC": "15000000", "USDC": "150"} | values
    at = NOW - timedelta(seconds=age_s)
    return {a: Price(a, Decimal(v), "static", at) for a, v in base.items()}


def settled(**over: int) -> dict[tuple[str, str], int]:
    s = {
        ("eth-hot", "ETH"): 12 * ETH, ("eth-cold", "ETH"): 388 * ETH, ("eth-guar", "ETH"): 13 * ETH,
        ("eth-fees", "ETH"): 7 * ETH, ("eth-hot", "USDC"): 1000 * ETH, ("eth-cold", "USDC"): 0,
        ("bsc-hot", "USDC"): 500 * ETH,
        ("btc-deposits", "BTC"): 1 * BTC, ("btc-cold", "BTC"): 99 * BTC,
    }
    for k, v in over.items():
        w, a = k.rsplit("__", 1)
        s[(w.replace("_", "-"), a)] = v
    return s


def ledger(**amounts: int) -> Liabilities:
    owed = {"ETH": 400 * ETH, "BTC": 100 * BTC, "USDC": 1500 * ETH} | amounts
    return Liabilities(owed, NOW, "csv")


def compute(s: Any = None, p: Any = None, liab: Liabilities | None = None,
            scope: frozenset[str] | None = frozenset({"crypto"}), max_age: int = 600) -> Exposure:
    return compute_exposure(WALLETS, ASSETS, settled() if s is None else s,
                            prices() if p is None else p, liab, scope, NOW, max_age, "JPY")


def test_online_is_hot_holdings_when_holdings_cover_liabilities() -> None:
    e = compute(liab=ledger(ETH=390 * ETH))
    eth = e.assets["ETH"]
    assert (eth.hot, eth.cold, eth.liabilities) == (12 * ETH, 388 * ETH, 390 * ETH)
    assert eth.online == 12 * ETH  # O = 12 > L − C = 2
    assert e.basis == "liabilities"


def test_online_counts_owed_coins_not_provably_cold() -> None:
    e = compute(liab=ledger(ETH=420 * ETH))
    assert e.assets["ETH"].online == 32 * ETH  # L − C = 420 − 388 > O = 12


def test_online_is_zero_when_both_terms_are_negative() -> None:
    s = settled(eth_hot__ETH=0)
    e = compute(s=s, liab=ledger(ETH=100 * ETH))
    assert e.assets["ETH"].online == 0  # O = 0, L − C = −288
    assert e.assets["ETH"].hot_ratio == 0


def test_without_ledger_liabilities_are_holdings_and_basis_says_so() -> None:
    e = compute(liab=None)
    eth = e.assets["ETH"]
    assert e.basis == "holdings"
    assert eth.liabilities == 400 * ETH
    assert eth.online == 12 * ETH
    assert eth.hot_ratio == Decimal("0.03")


def test_proprietary_is_shown_but_counted_nowhere_and_guarantee_is_separate() -> None:
    with_fees = compute(liab=ledger())
    no_fees = compute(s=settled(eth_fees__ETH=10**6 * ETH), liab=ledger())
    assert with_fees.assets["ETH"].proprietary == 7 * ETH
    assert with_fees.assets["ETH"].guarantee == 13 * ETH
    assert with_fees.hot_ratio == no_fees.hot_ratio
    assert with_fees.assets["ETH"].online == 12 * ETH  # guarantee not in O or C


def test_hot_ratio_is_combined_fiat_value_over_crypto_scope() -> None:
    e = compute(liab=ledger())
    # N·p: ETH 12×450000 = 5.4M, BTC 1×15M = 15M; L·p: 400×450000 = 180M, 100×15M = 1.5bn
    assert e.online_value == Decimal("20400000")
    assert e.customer_value == Decimal("1680000000")
    assert e.hot_ratio == units.ratio(20400000, 1680000000)


def test_stablecoin_is_out_of_jp_fsa_scope_but_in_every_asset_scope() -> None:
    jp = compute(liab=ledger(), p=prices(USDC="1000000000"))
    everything = compute(liab=ledger(), scope=None)
    assert jp.hot_ratio == compute(liab=ledger()).hot_ratio
    assert not jp.assets["USDC"].in_scope
    assert everything.customer_value == Decimal("1680000000") + 1500 * 150


def test_missing_price_makes_hot_ratio_null_with_reason() -> None:
    p = prices()
    p["BTC"] = None
    e = compute(p=p, liab=ledger())
    assert e.hot_ratio is None and e.online_value is None
    assert "price of BTC missing" in e.missing
    assert e.complete["BTC"] is False and e.complete["ETH"] is True
    assert exposure_json(e)["hot_ratio"] is None


def test_stale_price_makes_hot_ratio_null_and_never_drops_the_asset() -> None:
    e = compute(p=prices(age_s=601), liab=ledger())
    assert e.hot_ratio is None
    assert any(r.startswith("price of ETH stale") for r in e.missing)
    assert compute(p=prices(age_s=600), liab=ledger()).hot_ratio is not None  # at max age: fresh


def test_missing_out_of_scope_price_keeps_hot_ratio() -> None:
    p = prices()
    p["USDC"] = None
    assert compute(p=p, liab=ledger()).hot_ratio is not None


def test_ledger_missing_an_in_scope_asset_makes_hot_ratio_null() -> None:
    liab = ledger()
    del liab.amounts["BTC"]
    e = compute(liab=liab)
    assert e.hot_ratio is None
    assert e.missing == ("liabilities of BTC missing",)
    assert e.assets["BTC"].liabilities is None and e.assets["BTC"].online is None
    j = exposure_json(e)["assets"]["BTC"]  # type: ignore[index]
    assert j["liabilities"] is None and j["online"] is None and j["hot"] == "0"


def test_unreadable_chain_is_unknown_never_zero() -> None:
    s = settled()
    del s[("btc-cold", "BTC")]
    e = compute(s=s, liab=ledger())
    assert e.assets["BTC"].cold is None
    assert e.assets["BTC"].deposit == 1 * BTC
    assert e.hot_ratio is None
    assert "chain bitcoin unreadable" in e.missing
    assert exposure_json(e)["assets"]["BTC"]["cold"] is None  # type: ignore[index]


def test_no_liabilities_and_nothing_online_is_ratio_zero() -> None:
    s = {k: 0 for k in settled()}
    e = compute(s=s, liab=ledger(ETH=0, BTC=0))
    assert e.hot_ratio == 0
    assert e.assets["ETH"].hot_ratio == 0


def test_coins_online_against_zero_liabilities_is_null_with_reason() -> None:
    s = {k: 0 for k in settled()} | {("eth-hot", "ETH"): ETH}
    e = compute(s=s, liab=ledger(ETH=0, BTC=0))
    assert e.assets["ETH"].hot_ratio is None
    assert e.hot_ratio is None and e.missing


def test_wei_exact_values_with_18_decimals_and_multi_deployment_asset() -> None:
    s = settled(eth_hot__ETH=12 * ETH + 1, eth_hot__USDC=10**18 + 7, bsc_hot__USDC=3)
    e = compute(s=s, liab=ledger(USDC=2 * 10**18 + 1), scope=None)
    usdc = e.assets["USDC"]
    assert usdc.hot == 10**18 + 10  # both deployments, already rescaled to 18 decimals
    j = exposure_json(e)
    assert j["assets"]["ETH"]["hot"] == "12.000000000000000001"  # type: ignore[index]
    assert j["assets"]["USDC"]["hot"] == "1.00000000000000001"  # type: ignore[index]
    # 12.000000000000000001 ETH × 450000 + 1 BTC × 15M + USDC N = L − C = 2.000000000000000001
    # × 150: exact, never rounded to yen
    assert j["online_value"] == "20400300.00000000000045015"


def test_exposure_json_matches_design_shape() -> None:
    j = exposure_json(compute(liab=ledger()))
    assert set(j) == {"fiat", "basis", "online_value", "customer_value", "hot_ratio", "assets"}
    assert j["assets"]["ETH"] == {  # type: ignore[index]
        "class": "crypto", "hot": "12", "warm": "0", "deposit": "0", "cold": "388",
        "online": "12", "guarantee": "13", "proprietary": "7", "liabilities": "400",
        "price": "450000", "price_source": "static", "price_as_of": "2026-11-24T10:00:00Z",
        "price_round": None, "hot_ratio": "0.03",
    }
    assert j["hot_ratio"] == "0.012142857143"
    assert j["fiat"] == "JPY" and j["customer_value"] == "1680000000"
