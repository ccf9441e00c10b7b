"""flows.classify: internal, fee, sanctioned, withdrawal, allowed, unknown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from auditor.flows import Classified, classify, norm_address, used_requests
from auditor.model import Transfer
from auditor.settings import Counterparty
from auditor.withdrawals import WithdrawalRequest

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ETH = 10**18
HOT = "0x" + "1" * 40
COLD = "0x" + "2" * 40
DEP = "0x" + "3" * 40
ALICE = "0x" + "a" * 40
MM = "0x" + "b" * 40
BAD = "0x" + "d" * 40
BTC_HOT = "bc1qhot"
BTC_BAD = "bc1qlisted"
OWN = {("ethereum", HOT): "eth-hot", ("ethereum", COLD): "eth-cold",
       ("ethereum", DEP.upper().replace("0X", "0x")): "eth-dep", ("bitcoin", BTC_HOT): "btc-hot"}
TYPES = {"ethereum": "ethereum", "bitcoin": "bitcoin"}
ALLOW = (Counterparty("ethereum", MM, "market-maker"),)
LISTED = {("ethereum", BAD), ("bitcoin", BTC_BAD)}


def screen(chain_type: str, address: str) -> tuple[str, ...]:
    return ("builtin",) if (chain_type, norm_address(chain_type, address)) in LISTED else ()


def tr(sender: str, recipient: str, amount: int = ETH, *, tx: str = "0x01", index: int = -1,
       at: datetime = T0, kind: str = "native", asset: str = "ETH", chain: str = "ethereum",
       wallet_from: str | None = None, wallet_to: str | None = None,
       counterparties: tuple[str, ...] = (), block: int = 100) -> Transfer:
    own = {a: w for (_, a), w in OWN.items()}
    return Transfer(chain=chain, block=block, block_hash="0xh", tx=tx, index=index,
                    kind=kind,  # type: ignore[arg-type]
                    asset=asset, amount=amount, sender=sender, recipient=recipient,
                    wallet_from=wallet_from or own.get(sender),
                    wallet_to=wallet_to or own.get(recipient),
                    counterparties=counterparties, timestamp=int(at.timestamp()))


def req(rid: str, to: str = ALICE, amount: int = ETH, *, at: datetime = T0 - timedelta(minutes=5),
        fee: int = 0, asset: str = "ETH") -> WithdrawalRequest:
    return WithdrawalRequest(rid, asset, to, amount, at, fee)


def run(transfers: Sequence[Transfer], withdrawals: Sequence[WithdrawalRequest] | None = None,
        **kw: object) -> list[Classified]:
    args: dict[str, object] = dict(own_addresses=OWN, allow=ALLOW, screen_match=screen,
                                   chain_types=TYPES, withdrawals=withdrawals)
    args.update(kw)
    return classify(transfers, **args)  # type: ignore[arg-type]


def classes(out: list[Classified]) -> list[str]:
    return [c.cls for c in out]


def test_sweep_between_own_wallets_is_internal() -> None:
    out = run([tr(HOT, COLD), tr(DEP, HOT)])
    assert classes(out) == ["internal", "internal"]


def test_address_discovered_after_ingestion_makes_a_transfer_internal() -> None:
    new = "0x" + "4" * 40
    t = tr(HOT, new)
    assert t.direction == "out"
    (c,) = run([t], own_addresses={**OWN, ("ethereum", new.upper().replace("0X", "0x")): "eth-hot-2"})
    assert c.cls == "internal" and c.transfer.wallet_to == "eth-hot-2"


def test_fee_is_its_own_class() -> None:
    (c,) = run([tr(HOT, "", 10**15, kind="fee", index=-2)])
    assert c.cls == "fee"


def test_each_request_matches_one_transfer_only_earliest_first() -> None:
    first = tr(HOT, ALICE, tx="0x01", at=T0)
    second = tr(HOT, ALICE, tx="0x02", at=T0 + timedelta(minutes=1))
    out = run([second, first], [req("r-1")])
    assert [(c.transfer.tx, c.cls, c.match) for c in out] == [
        ("0x02", "unknown", None), ("0x01", "withdrawal", "r-1")]
    assert used_requests(out) == {"r-1"}


def test_two_equal_requests_cover_two_transfers_oldest_request_first() -> None:
    out = run([tr(HOT, ALICE, tx="0x01"), tr(HOT, ALICE, tx="0x02", at=T0 + timedelta(seconds=5))],
              [req("r-new", at=T0 - timedelta(minutes=1)), req("r-old", at=T0 - timedelta(hours=1))])
    assert [c.match for c in out] == ["r-old", "r-new"]


def test_request_used_in_an_earlier_cycle_does_not_match_again() -> None:
    (c,) = run([tr(HOT, ALICE)], [req("r-1")], used_withdrawals=frozenset({"r-1"}))
    assert c.cls == "unknown"


def test_amount_within_fee_tolerance_matches_and_beyond_does_not() -> None:
    tol = {"ETH": 10**15}
    ok = run([tr(HOT, ALICE, ETH - 10**15)], [req("r-1")], fee_tolerance=tol)
    short = run([tr(HOT, ALICE, ETH - 10**15 - 1)], [req("r-1")], fee_tolerance=tol)
    over = run([tr(HOT, ALICE, ETH + 1)], [req("r-1")], fee_tolerance=tol)
    exact_needed = run([tr(HOT, ALICE, ETH - 1)], [req("r-1")])
    assert classes(ok + short + over + exact_needed) == ["withdrawal", "unknown", "unknown", "unknown"]


def test_request_fee_column_means_exactly_amount_less_fee() -> None:
    r = req("r-1", fee=10**16)
    assert run([tr(HOT, ALICE, ETH - 10**16)], [r])[0].cls == "withdrawal"
    assert run([tr(HOT, ALICE, ETH)], [r])[0].cls == "unknown"
    assert run([tr(HOT, ALICE, ETH - 10**16 - 1)], [r], fee_tolerance={"ETH": 10**15})[0].cls \
        == "unknown"


def test_request_approved_after_the_transfer_does_not_match() -> None:
    late = req("r-late", at=T0 + timedelta(hours=1))
    (c,) = run([tr(HOT, ALICE)], [late])
    assert c.cls == "unknown"


def test_block_time_a_little_behind_the_approval_clock_still_matches() -> None:
    assert run([tr(HOT, ALICE)], [req("r", at=T0 + timedelta(seconds=30))])[0].cls == "withdrawal"
    btc = tr(BTC_HOT, "bc1qcustomer", 10**8, asset="BTC", chain="bitcoin", tx="ab" * 32, index=0)
    r = WithdrawalRequest("r", "BTC", "bc1qcustomer", 10**8, T0 + timedelta(minutes=90))
    assert run([btc], [r])[0].cls == "withdrawal"


def test_other_destination_or_asset_does_not_match() -> None:
    out = run([tr(HOT, MM), tr(HOT, ALICE, 10**6, kind="token", asset="USDC", index=3)],
              [req("r-1"), req("r-2", to=MM, asset="USDC")])
    assert classes(out) == ["allowed", "unknown"]


def test_request_matching_ignores_address_case() -> None:
    (c,) = run([tr(HOT, ALICE)], [req("r", to=ALICE.upper().replace("0X", "0x"))])
    assert c.cls == "withdrawal"


def test_cold_wallet_transfer_never_uses_a_request() -> None:
    (c,) = run([tr(COLD, ALICE)], [req("r-1")], cold_wallets=frozenset({"eth-cold"}))
    assert c.cls == "unknown"


def test_without_a_feed_nothing_is_a_withdrawal() -> None:
    assert classes(run([tr(HOT, ALICE)], None)) == ["unknown"]


def test_allowed_counterparty_outgoing_and_incoming() -> None:
    out = run([tr(HOT, MM.upper().replace("0X", "0x")), tr(MM, HOT)])
    assert [(c.cls, c.match, c.counterparty) for c in out] == [
        ("allowed", "market-maker", MM.upper().replace("0X", "0x")), ("allowed", "market-maker", MM)]


def test_requested_withdrawal_to_an_allowed_address_uses_the_request() -> None:
    (c,) = run([tr(HOT, MM)], [req("r", to=MM)])
    assert (c.cls, c.match) == ("withdrawal", "r")


def test_incoming_from_a_stranger_is_unknown() -> None:
    (c,) = run([tr(ALICE, DEP)])
    assert (c.cls, c.counterparty) == ("unknown", ALICE)


def test_sanctioned_in_both_directions_and_over_a_request() -> None:
    out = run([tr(HOT, BAD, tx="0x01"), tr(BAD, DEP, tx="0x02")], [req("r", to=BAD)])
    assert [(c.cls, c.lists, c.counterparty) for c in out] == [
        ("sanctioned", ("builtin",), BAD), ("sanctioned", ("builtin",), BAD)]
    assert used_requests(out) == frozenset()


def test_sanctioned_spender_of_an_approval() -> None:
    (c,) = run([tr(HOT, BAD, 0, kind="approval", asset="USDC", index=5)])
    assert c.cls == "sanctioned"


def test_sanctioned_wins_over_allowed() -> None:
    (c,) = run([tr(HOT, BAD)], allow=(Counterparty("ethereum", BAD, "oops"),))
    assert c.cls == "sanctioned"


def test_bitcoin_incoming_with_one_listed_input_among_several() -> None:
    t = tr("bc1qother", BTC_HOT, 10**8, asset="BTC", chain="bitcoin", tx="cd" * 32, index=0,
           counterparties=("bc1qother", BTC_BAD.upper()))
    (c,) = run([t])
    assert c.cls == "sanctioned" and c.hits == ((BTC_BAD.upper(), ("builtin",)),)


def test_internal_transfer_is_never_sanctioned_even_if_an_own_address_is_listed() -> None:
    listed_own = lambda kind, a: ("builtin",)  # noqa: E731 - every address "listed"
    out = run([tr(HOT, COLD), tr(BTC_HOT, "bc1qcold", asset="BTC", chain="bitcoin",
                                 wallet_to="btc-cold")], screen_match=listed_own)
    assert classes(out) == ["internal", "internal"]


def test_screening_uses_the_chain_type_not_the_chain_name() -> None:
    seen: list[tuple[str, str]] = []

    def spy(kind: str, address: str) -> tuple[str, ...]:
        seen.append((kind, address))
        return ()
    run([tr(HOT, ALICE, chain="arbitrum")], screen_match=spy,
        chain_types={**TYPES, "arbitrum": "ethereum"}, own_addresses={("arbitrum", HOT): "arb-hot"})
    assert seen == [("ethereum", ALICE)]
