"""The transfer rules, hot_drain and cold_outflow with transfers, and the reconciliation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from auditor import rules
from auditor.flows import Classified, classify
from auditor.model import Evaluation, Finding, Price, Transfer
from auditor.settings import (
    ApprovalItem,
    ApprovalsSettings,
    AssetSettings,
    Counterparty,
    Deployment,
    DrainWindow,
    HotDrainRule,
    LargeOutflowRule,
    RuleSettings,
    StaleDataRule,
    UnknownDestinationRule,
    WalletSettings,
)
from auditor.withdrawals import WithdrawalRequest

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
USDC = 10**6
D = Decimal
HOT, HOT_ADDR = "eth-hot", "0x" + "1" * 40
COLD, COLD_ADDR = "eth-cold", "0x" + "2" * 40
DEP, DEP_ADDR = "eth-dep", "0x" + "3" * 40
THIEF = "0x" + "e" * 40
ALICE = "0x" + "a" * 40
MM = "0x" + "b" * 40
LISTED = "0x" + "d" * 40
TX = "0x" + "77" * 32

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "c" * 40, 6),)),
    "BTC": AssetSettings("BTC", "crypto", 8, (Deployment("bitcoin", None, 8),)),
}
WALLETS = (
    WalletSettings(HOT, "ethereum", "hot", "customer", (HOT_ADDR,), ("ETH", "USDC")),
    WalletSettings(COLD, "ethereum", "cold", "customer", (COLD_ADDR,), ("ETH", "USDC")),
    WalletSettings(DEP, "ethereum", "deposit", "customer", (DEP_ADDR,), ("ETH",)),
    WalletSettings("btc-hot", "bitcoin", "hot", "customer", (), ("BTC",)),
)
OWN = {("ethereum", w.addresses[0]): w.name for w in WALLETS if w.addresses}
PRICES = {"ETH": Price("ETH", D("450000"), "static", NOW),
          "USDC": Price("USDC", D("150"), "static", NOW),
          "BTC": Price("BTC", D("15000000"), "static", NOW)}


def settings(**kw: Any) -> RuleSettings:
    base = RuleSettings(
        preset="none", scope_classes=None, hot_ratio=None, asset_hot_ratio=None,
        guarantee_coverage=None, reserve_coverage=None, commingling=None, hot_floor=None,
        hot_drain=HotDrainRule(D(1000000), (DrainWindow(600, D("0.2"), "critical"),
                                            DrainWindow(86400, D("0.5"), "warning"))),
        stale_data=StaleDataRule(180),
        large_outflow=LargeOutflowRule(D("100000000")),
        unknown_destination=UnknownDestinationRule({"ETH": D("1"), "USDC": D("1000")}))
    return dataclasses.replace(base, **kw)


def tr(sender: str, recipient: str, amount: int = ETH, *, tx: str = TX, index: int = -1,
       kind: str = "native", asset: str = "ETH", at: datetime = NOW - timedelta(seconds=30),
       chain: str = "ethereum", block: int = 1000) -> Transfer:
    own = {a: w for (_, a), w in OWN.items()}
    return Transfer(chain, block, "0xhash", tx, index, kind, asset, amount,  # type: ignore[arg-type]
                    sender, recipient, own.get(sender), own.get(recipient),
                    timestamp=int(at.timestamp()))


def fee(sender: str, amount: int = 10**15, tx: str = TX) -> Transfer:
    return tr(sender, "", amount, tx=tx, index=-2, kind="fee")


def screen(kind: str, address: str) -> tuple[str, ...]:
    return ("builtin",) if address.lower() == LISTED else ()


def classified(transfers: Sequence[Transfer],
               withdrawals: Sequence[WithdrawalRequest] | None = None) -> tuple[Classified, ...]:
    return tuple(classify(transfers, own_addresses=OWN,
                          allow=(Counterparty("ethereum", MM, "market-maker"),),
                          screen_match=screen, chain_types={"ethereum": "ethereum",
                                                            "bitcoin": "bitcoin"},
                          withdrawals=withdrawals, cold_wallets=frozenset({COLD})))


def inp(transfers: Sequence[Transfer] | None, *, withdrawals: Sequence[WithdrawalRequest] | None
        = None, configured: bool | None = None, **kw: Any) -> rules.RuleInput:
    args: dict[str, Any] = dict(
        now=NOW, exchange_id="ex", rules=settings(), wallets=WALLETS, assets=ASSETS,
        prices=PRICES, watch_now={(HOT, "ETH"): 100 * ETH, (COLD, "ETH"): 1000 * ETH},
        transfers=None if transfers is None else classified(transfers, withdrawals),
        withdrawals_configured=withdrawals is not None if configured is None else configured)
    args.update(kw)
    return rules.RuleInput(**args)


def subjects(ev: Evaluation) -> dict[str, Finding]:
    assert ev.covered == frozenset() and not ev.covers_all  # event rules never resolve
    return {f.subject: f for f in ev.findings}


def all_findings(i: rules.RuleInput) -> list[Finding]:
    return [f for ev in rules.evaluate_all(i) for f in ev.findings]


# --- the "done when" stories ----------------------------------------------------------


def test_a_sweep_to_cold_is_silent() -> None:
    sweep = [tr(HOT_ADDR, COLD_ADDR, 90 * ETH), fee(HOT_ADDR)]
    history = [(NOW - timedelta(minutes=5), {(HOT, "ETH"): 100 * ETH, (COLD, "ETH"): 910 * ETH})]
    i = inp(sweep, withdrawals=[], watch_history=history, prev_watch=history[0][1],
            watch_now={(HOT, "ETH"): 10 * ETH - 10**15, (COLD, "ETH"): 1000 * ETH},
            reconcile_chains=frozenset({"ethereum"}))
    assert all_findings(i) == []


def test_a_requested_withdrawal_is_silent() -> None:
    request = WithdrawalRequest("w-1", "ETH", ALICE, 5 * ETH, NOW - timedelta(minutes=2))
    assert all_findings(inp([tr(HOT_ADDR, ALICE, 5 * ETH), fee(HOT_ADDR)],
                            withdrawals=[request])) == []


def test_a_theft_pages_with_destination_and_tx_hash() -> None:
    (f,) = subjects(rules.unmatched_outflow(inp([tr(HOT_ADDR, THIEF, 60 * ETH)],
                                                withdrawals=[]))).values()
    assert f.severity == "critical" and f.subject == f"ethereum:{TX}:{THIEF}"
    assert THIEF in f.summary and TX in f.summary
    assert f.details["tx"] == TX and f.details["counterparty"] == THIEF
    assert f.details["amount"] == "60" and f.details["wallet"] == HOT


# --- large_outflow ---------------------------------------------------------------------


def test_large_outflow_sums_one_transactions_outputs_per_asset() -> None:
    # 120 + 150 ETH at 450,000 = 121.5M > 100M; each alone is below
    i = inp([tr(HOT_ADDR, ALICE, 120 * ETH, index=0), tr(HOT_ADDR, THIEF, 150 * ETH, index=1)])
    (f,) = rules.large_outflow(i).findings
    assert f.subject == f"ethereum:{TX}:{THIEF}" and f.severity == "critical"
    assert f.value == D("121500000") and f.threshold == D("100000000")
    assert f.details["recipients"] == [ALICE, THIEF]


def test_large_outflow_exactly_at_the_limit_does_not_fire() -> None:
    limit = settings(large_outflow=LargeOutflowRule(D("4500000")))  # = 10 ETH
    assert rules.large_outflow(inp([tr(HOT_ADDR, ALICE, 10 * ETH)], rules=limit)).findings == ()
    assert len(rules.large_outflow(inp([tr(HOT_ADDR, ALICE, 10 * ETH + 1)],
                                       rules=limit)).findings) == 1


def test_large_outflow_unknown_price_counts_as_more() -> None:
    i = inp([tr(HOT_ADDR, ALICE, 1, kind="token", asset="USDC", index=3)],
            prices={"ETH": PRICES["ETH"]})
    (f,) = rules.large_outflow(i).findings
    assert f.value is None and "unknown value" in f.summary


def test_large_outflow_ignores_internal_outputs_and_is_off_without_settings() -> None:
    sweep = inp([tr(HOT_ADDR, COLD_ADDR, 1000 * ETH)])
    assert rules.large_outflow(sweep).findings == ()
    off = inp([tr(HOT_ADDR, THIEF, 1000 * ETH)], rules=settings(large_outflow=None))
    assert rules.large_outflow(off).findings == ()
    warn = inp([tr(HOT_ADDR, THIEF, 1000 * ETH)],
               rules=settings(large_outflow=LargeOutflowRule(D("1"), "warning")))
    assert rules.large_outflow(warn).findings[0].severity == "warning"


def test_transfer_rules_are_silent_when_transfers_are_not_tracked() -> None:
    i = inp(None, withdrawals=[])
    for rule in (rules.large_outflow, rules.unmatched_outflow, rules.unknown_destination,
                 rules.sanctioned_counterparty, rules.reconcile):
        assert rule(i).findings == ()


# --- unmatched_outflow --------------------------------------------------------------------


def test_unmatched_outflow_ignores_allowed_internal_and_cold_and_counts_deposit() -> None:
    i = inp([tr(HOT_ADDR, MM, tx="0x01"), tr(HOT_ADDR, COLD_ADDR, tx="0x02"),
             tr(COLD_ADDR, THIEF, tx="0x03"), tr(DEP_ADDR, THIEF, tx="0x04"),
             tr(THIEF, HOT_ADDR, tx="0x05")], withdrawals=[])
    assert list(subjects(rules.unmatched_outflow(i))) == [f"ethereum:0x04:{THIEF}"]


def test_unmatched_outflow_one_finding_per_transaction_and_counterparty() -> None:
    i = inp([tr(HOT_ADDR, THIEF, 5 * ETH), tr(HOT_ADDR, THIEF, 7000 * USDC, kind="token",
                                              asset="USDC", index=4)], withdrawals=[])
    (f,) = rules.unmatched_outflow(i).findings
    assert f.details["amounts"] == {"ETH": "5", "USDC": "7000"} and f.value is None
    assert "5 ETH and 7000 USDC" in f.summary


def test_unmatched_outflow_needs_the_feed_configured() -> None:
    assert rules.unmatched_outflow(inp([tr(HOT_ADDR, THIEF)])).findings == ()


def test_second_transfer_for_one_request_is_unmatched() -> None:
    request = WithdrawalRequest("w-1", "ETH", ALICE, ETH, NOW - timedelta(minutes=2))
    i = inp([tr(HOT_ADDR, ALICE, tx="0x01"), tr(HOT_ADDR, ALICE, tx="0x02")],
            withdrawals=[request])
    assert list(subjects(rules.unmatched_outflow(i))) == [f"ethereum:0x02:{ALICE}"]


# --- unknown_destination -------------------------------------------------------------------


def test_unknown_destination_fires_above_the_asset_amount_only() -> None:
    i = inp([tr(HOT_ADDR, ALICE, ETH, tx="0x01"), tr(HOT_ADDR, THIEF, ETH + 1, tx="0x02"),
             tr(HOT_ADDR, MM, 50 * ETH, tx="0x03")])
    found = subjects(rules.unknown_destination(i))
    assert list(found) == [f"ethereum:0x02:{THIEF}"]
    f = found[f"ethereum:0x02:{THIEF}"]
    assert f.severity == "warning" and f.threshold == D("1")


def test_unknown_destination_unlisted_asset_fires_at_any_amount() -> None:
    i = inp([tr(HOT_ADDR, ALICE, 1, asset="BTC", chain="ethereum")],
            rules=settings(unknown_destination=UnknownDestinationRule({}, "critical")))
    assert [f.severity for f in rules.unknown_destination(i).findings] == ["critical"]


def test_unknown_destination_is_off_when_withdrawals_are_configured_or_unset() -> None:
    t = [tr(HOT_ADDR, THIEF, 10 * ETH)]
    assert rules.unknown_destination(inp(t, withdrawals=[])).findings == ()
    assert rules.unknown_destination(inp(t, rules=settings(unknown_destination=None))).findings == ()


# --- sanctioned_counterparty -----------------------------------------------------------------


def test_sanctioned_counterparty_either_direction_is_critical_with_what_to_do() -> None:
    i = inp([tr(LISTED, DEP_ADDR, 2 * ETH, tx="0x01", block=7), tr(HOT_ADDR, LISTED, tx="0x02")],
            withdrawals=[])
    found = subjects(rules.sanctioned_counterparty(i))
    received, sent = found[f"ethereum:0x01:{LISTED}"], found[f"ethereum:0x02:{LISTED}"]
    for f in (received, sent):
        assert f.severity == "critical"
        assert "freeze what was received" in f.summary and "block further transfers" in f.summary
        assert "FSA" in f.summary and "Ministry of Finance" in f.summary
    assert received.details.items() >= {"chain": "ethereum", "tx": "0x01", "block": 7,
                                      "direction": "in", "counterparty": LISTED,
                                      "amount": "2", "asset": "ETH",
                                      "wallet": DEP}.items()
    assert received.details["lists"] == ["builtin"]
    assert sent.details["direction"] == "out" and "sent 1 ETH to sanctioned" in sent.summary
    # a sanctioned outflow is not also an unmatched one
    assert rules.unmatched_outflow(i).findings == ()


def test_sanctioned_bitcoin_input_is_the_subject() -> None:
    t = Transfer("bitcoin", 5, "h", "ab" * 32, 0, "native", "BTC", 10**8, "bc1qx", "bc1qhot",
                 None, "btc-hot", counterparties=("bc1qx", "bc1qlisted"), timestamp=1)
    c = classify([t], own_addresses={("bitcoin", "bc1qhot"): "btc-hot"}, allow=(),
                 screen_match=lambda k, a: ("sdn",) if a == "bc1qlisted" else (),
                 chain_types={"bitcoin": "bitcoin"}, withdrawals=None)
    i = dataclasses.replace(inp(None), transfers=tuple(c))
    (f,) = rules.sanctioned_counterparty(i).findings
    assert f.subject == f"bitcoin:{'ab' * 32}:bc1qlisted" and f.details["wallet"] == "btc-hot"


# --- reconciliation -----------------------------------------------------------------------------


def _reconcile(now_hot: int, transfers: Sequence[Transfer]) -> Evaluation:
    i = inp(transfers, prev_watch={(HOT, "ETH"): 100 * ETH, (COLD, "ETH"): 1000 * ETH},
            watch_now={(HOT, "ETH"): now_hot, (COLD, "ETH"): 1000 * ETH},
            reconcile_chains=frozenset({"ethereum"}))
    return rules.reconcile(i)


def test_reconciliation_of_matching_transfers_covers_and_resolves() -> None:
    ev = _reconcile(100 * ETH + 5 * ETH - 2 * ETH - 10**15,
                    [tr(ALICE, HOT_ADDR, 5 * ETH, tx="0x01"), tr(HOT_ADDR, THIEF, 2 * ETH, tx="0x02"),
                     fee(HOT_ADDR, tx="0x02")])
    assert ev.rule == "stale_data" and ev.findings == ()
    assert {"ethereum:eth-hot/ETH", "ethereum:eth-cold/ETH"} <= ev.covered


def test_reconciliation_mismatch_is_a_stale_data_finding() -> None:
    # the provider hid a 30 ETH outflow: the balance fell, no transfer shows it
    ev = _reconcile(70 * ETH, [])
    (f,) = ev.findings
    assert (f.rule, f.subject, f.severity) == ("stale_data", "ethereum:eth-hot/ETH", "critical")
    assert f.details["unexplained"] == "-30" and "dropping logs" in f.summary
    (rise,) = _reconcile(101 * ETH, []).findings
    assert rise.severity == "warning"


def test_reconciliation_only_on_the_chains_the_lead_names() -> None:
    i = inp([], prev_watch={(HOT, "ETH"): 100 * ETH}, watch_now={(HOT, "ETH"): 1})
    assert rules.reconcile(i) == Evaluation("stale_data")


def test_evaluate_all_joins_the_reconciliation_to_stale_data() -> None:
    i = inp([], prev_watch={(HOT, "ETH"): 100 * ETH, (COLD, "ETH"): 1000 * ETH},
            watch_now={(HOT, "ETH"): 70 * ETH, (COLD, "ETH"): 1000 * ETH},
            reconcile_chains=frozenset({"ethereum"}), last_ok_cycle_at=NOW)
    stale = [e for e in rules.evaluate_all(i) if e.rule == "stale_data"]
    assert len(stale) == 1 and [f.subject for f in stale[0].findings] == ["ethereum:eth-hot/ETH"]


# --- hot_drain with transfers -------------------------------------------------------------------


def _drain(transfers: Sequence[Transfer], now_hot: int, *, tracked: bool = True) -> dict[str, Finding]:
    history = [(NOW - timedelta(minutes=8), {(HOT, "ETH"): 100 * ETH, (COLD, "ETH"): 0})]
    i = inp(transfers, watch_history=history,
            watch_now={(HOT, "ETH"): now_hot, (COLD, "ETH"): 0},
            tracked_chains=frozenset({"ethereum"} if tracked else {"bitcoin"}))
    return subjects(rules.hot_drain(i))


def test_hot_drain_with_transfers_ignores_a_sweep_even_without_the_cold_reading() -> None:
    # the cold wallet's rise is not visible (its reading says 0): transfers still say internal
    assert _drain([tr(HOT_ADDR, COLD_ADDR, 90 * ETH)], 10 * ETH) == {}
    # without tracking, the same fall looks like a drain
    assert f"{HOT}/ETH" in _drain([], 10 * ETH, tracked=False)


def test_hot_drain_with_transfers_sees_a_theft_hidden_by_a_deposit() -> None:
    found = _drain([tr(HOT_ADDR, THIEF, 60 * ETH, tx="0x01"), tr(DEP_ADDR, HOT_ADDR, 60 * ETH,
                                                                 tx="0x02")], 100 * ETH)
    f = found[f"{HOT}/ETH"]
    assert f.severity == "critical" and f.value == D("0.6")
    assert f.details["to"] == THIEF and f.details["tx"] == "0x01" and THIEF in f.summary


def test_hot_drain_with_transfers_counts_window_transfers_of_earlier_cycles() -> None:
    old = classified([tr(HOT_ADDR, THIEF, 15 * ETH, tx="0x01", at=NOW - timedelta(minutes=5))])
    history = [(NOW - timedelta(minutes=8), {(HOT, "ETH"): 100 * ETH})]
    i = inp([tr(HOT_ADDR, THIEF, 10 * ETH, tx="0x02")], watch_history=history,
            watch_now={(HOT, "ETH"): 75 * ETH}, window_transfers=old)
    (f,) = rules.hot_drain(i).findings
    assert f.details["fall"] == "25" and f.details["count"] == 2
    # a transfer outside every window does not count
    stale = classified([tr(HOT_ADDR, THIEF, 15 * ETH, tx="0x01", at=NOW - timedelta(days=2))])
    i2 = dataclasses.replace(i, window_transfers=stale)
    assert rules.hot_drain(i2).findings == ()


# --- cold_outflow with transfers --------------------------------------------------------------


def item(amount: str = "50", to: str = HOT, **kw: Any) -> ApprovalItem:
    return ApprovalItem(kw.pop("id", "a-1"), COLD, kw.pop("asset", "ETH"), to, D(amount),
                        kw.pop("not_after", NOW + timedelta(hours=1)), **kw)


def _cold(transfers: Sequence[Transfer], items: Sequence[ApprovalItem] = (), **kw: Any) -> Evaluation:
    return rules.cold_outflow(inp(transfers, approvals=ApprovalsSettings(tuple(items)), **kw))


def test_cold_outflow_approved_transfer_to_hot_is_consumed_and_silent() -> None:
    ev = _cold([tr(COLD_ADDR, HOT_ADDR, 50 * ETH), fee(COLD_ADDR)], [item()])
    assert ev.findings == () and ev.consumed == {"a-1"}
    # the item named by the hot wallet's address works too
    ev2 = _cold([tr(COLD_ADDR, HOT_ADDR, 50 * ETH)], [item(to=HOT_ADDR.upper().replace("0X", "0x"))])
    assert ev2.findings == ()


def test_cold_outflow_unapproved_transfer_fires_with_tx_and_destination() -> None:
    ev = _cold([tr(COLD_ADDR, THIEF, 500 * ETH), fee(COLD_ADDR)], [item()])
    (f,) = ev.findings
    assert f.subject == f"{COLD}/ETH" and f.severity == "critical"
    assert f.details["tx"] == TX and f.details["to"] == THIEF and THIEF in f.summary
    assert "approval a-1" in f.summary and ev.consumed == frozenset()


def test_cold_outflow_item_used_before_expired_or_other_amount_fires() -> None:
    move = [tr(COLD_ADDR, HOT_ADDR, 50 * ETH)]
    assert _cold(move, [item()], used_approvals=frozenset({"a-1"})).findings[0].details[
        "approvals"] == ["approval a-1: already used"]
    late = item(not_after=NOW - timedelta(minutes=5))
    assert "expired" in _cold(move, [late]).findings[0].summary
    assert "≠ moved" in _cold(move, [item("49")]).findings[0].summary
    early = item(not_before=NOW - timedelta(seconds=10))
    assert "not valid before" in _cold(move, [early]).findings[0].summary


def test_cold_outflow_each_item_covers_one_movement() -> None:
    ev = _cold([tr(COLD_ADDR, HOT_ADDR, 50 * ETH, tx="0x01"),
                tr(COLD_ADDR, HOT_ADDR, 50 * ETH, tx="0x02")], [item()])
    (f,) = ev.findings
    assert f.details["tx"] == "0x02" and ev.consumed == {"a-1"}


def test_cold_outflow_fee_only_transaction_and_token_approval_fire() -> None:
    ev = _cold([fee(COLD_ADDR, tx="0x01"),
                tr(COLD_ADDR, THIEF, 2**256 - 1, tx="0x02", kind="approval", asset="USDC", index=9)])
    found = subjects(ev)
    assert "moved nothing an approval covers" in found[f"{COLD}/ETH"].summary
    assert found[f"{COLD}/USDC"].details["kind"] == "approval"
    assert f"approved {THIEF} to spend" in found[f"{COLD}/USDC"].summary


def test_cold_outflow_does_not_fire_twice_for_one_movement_on_a_reconciled_chain() -> None:
    prev = {(COLD, "ETH"): 1000 * ETH, (HOT, "ETH"): 0}
    now = {(COLD, "ETH"): 950 * ETH - 10**15, (HOT, "ETH"): 50 * ETH}
    common = dict(prev_watch=prev, watch_now=now, prev_nonces={COLD: 4}, nonces_now={COLD: 5},
                  reconcile_chains=frozenset({"ethereum"}))
    ok = _cold([tr(COLD_ADDR, HOT_ADDR, 50 * ETH), fee(COLD_ADDR)], [item()], **common)
    assert ok.findings == () and ok.consumed == {"a-1"}
    bad = _cold([tr(COLD_ADDR, THIEF, 50 * ETH), fee(COLD_ADDR)], [item()], **common)
    assert len(bad.findings) == 1 and "unexplained" not in bad.findings[0].details


def test_cold_outflow_balance_fall_no_transfer_shows_still_fires_on_a_reconciled_chain() -> None:
    # a Safe's internal ETH send without a trace API: no transfer, yet the balance fell
    ev = _cold([], [], prev_watch={(COLD, "ETH"): 1000 * ETH}, watch_now={(COLD, "ETH"): 900 * ETH},
               reconcile_chains=frozenset({"ethereum"}))
    (f,) = ev.findings
    assert f.details["amount"] == "100"


def test_cold_outflow_on_a_tracked_chain_catching_up_leaves_balances_to_later_transfers() -> None:
    ev = _cold([], [item()], prev_watch={(COLD, "ETH"): 1000 * ETH},
               watch_now={(COLD, "ETH"): 950 * ETH}, prev_nonces={COLD: 1}, nonces_now={COLD: 2})
    assert ev.findings == () and ev.consumed == frozenset()


def test_cold_outflow_balance_check_unchanged_on_untracked_chains() -> None:
    ev = _cold([], [], prev_watch={(COLD, "ETH"): 1000 * ETH}, watch_now={(COLD, "ETH"): 950 * ETH},
               tracked_chains=frozenset({"bitcoin"}))
    assert [f.subject for f in ev.findings] == [f"{COLD}/ETH"]


def test_cold_outflow_waits_for_transfers_when_ingestion_failed_this_cycle() -> None:
    # ethereum's ingestion failed (not tracked this cycle) but it is ingested: the approved
    # movement's item is left for the transfer that arrives next cycle
    common: dict[str, Any] = dict(prev_watch={(COLD, "ETH"): 1000 * ETH, (HOT, "ETH"): 0},
                                  watch_now={(COLD, "ETH"): 950 * ETH, (HOT, "ETH"): 50 * ETH},
                                  tracked_chains=frozenset())
    now = _cold([], [item()], transfer_chains=frozenset({"ethereum"}), **common)
    assert now.findings == () and now.consumed == frozenset()
    later = _cold([tr(COLD_ADDR, HOT_ADDR, 50 * ETH)], [item()])
    assert later.findings == () and later.consumed == {"a-1"}
    # without ingestion on that chain the balance check decides at once
    balance = _cold([], [item()], transfer_chains=frozenset(), **common)
    assert balance.findings == () and balance.consumed == {"a-1"}
