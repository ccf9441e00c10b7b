"""Chainlink prices from TestAggregator feeds on a real anvil, read at the settled block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest
from conftest import endpoint

from auditor import devchain
from auditor.model import BlockRef
from auditor.prices import fetch_prices
from auditor.prices_chainlink import Round, decode_round, divide_answers
from auditor.settings import ChainSettings, PriceSettings

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def deploy_feed(node: devchain.Anvil, decimals: int, description: str) -> str:
    bytecode = devchain.compile_contracts()["TestAggregator"]["bytecode"]
    args = devchain.encode_call("x()", decimals, description)[10:]
    return node.deploy(bytecode, constructor_args=args)


def set_round(node: devchain.Anvil, feed: str, round_id: int, answer: int,
              updated: datetime = T0) -> dict[str, Any]:
    """The receipt of the mined transaction."""
    ts = int(updated.timestamp())
    return node.send_tx(devchain.DEV_ACCOUNTS[0], feed, data=devchain.encode_call(
        "setRound(uint80,int256,uint256,uint256)", round_id, answer % 2**256, ts, ts))


def head(node: devchain.Anvil) -> BlockRef:
    b = node.block("latest")
    return BlockRef(int(b["number"], 16), b["hash"], int(b["timestamp"], 16))


def chain(node: devchain.Anvil) -> ChainSettings:
    return ChainSettings(name="ethereum", type="ethereum", rpc=(endpoint(node.url),))


def settings(feeds: dict[str, str], fiat_feed: str | None, max_age: int = 600) -> PriceSettings:
    return PriceSettings(source="chainlink", static={}, max_age=max_age, chain="ethereum",
                         feeds=feeds, fiat_feed=fiat_feed)


def read(node: devchain.Anvil, ps: PriceSettings, block: BlockRef,
         now: datetime = T0 + timedelta(seconds=30), assets: tuple[str, ...] = ("ETH",)) -> Any:
    return fetch_prices(ps, assets, now, chains={"ethereum": chain(node)},
                        blocks={"ethereum": block})


def exact_jpy(asset_usd: str, jpy_usd: str) -> Decimal:
    """The expected price, computed independently: wide Decimal division, then half-even."""
    with localcontext() as ctx:
        ctx.prec = 200
        return (Decimal(asset_usd) / Decimal(jpy_usd)).quantize(Decimal("1e-18"), ROUND_HALF_EVEN)


@pytest.fixture
def feeds(anvil: devchain.Anvil, contracts: dict[str, Any]) -> tuple[str, str]:
    """A fresh ETH/USD (8 decimals) and JPY/USD (8 decimals) feed pair."""
    eth = deploy_feed(anvil, 8, "ETH / USD")
    jpy = deploy_feed(anvil, 8, "JPY / USD")
    set_round(anvil, jpy, 7, 666666)  # 0.00666666 USD per yen
    return eth, jpy


def test_price_is_read_at_the_settled_block_not_the_latest(anvil, feeds) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678)
    settled = head(anvil)
    set_round(anvil, eth, 2, 999900000000)  # a newer answer in a later block
    reading = read(anvil, settings({"ETH": eth}, jpy), settled)
    price = reading.prices["ETH"]
    assert price is not None and reading.problems == {}
    assert price.value == exact_jpy("3000.12345678", "0.00666666")
    assert price.round_id == "1/7"
    assert price.source == f"chainlink:{eth.lower()}/{jpy.lower()}@{settled.number}"
    assert price.as_of == T0
    later = read(anvil, settings({"ETH": eth}, jpy), head(anvil)).prices["ETH"]
    assert later is not None and later.value == exact_jpy("9999", "0.00666666")


def test_jpy_division_is_exact_to_18_places_half_even(anvil, feeds) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678)
    price = read(anvil, settings({"ETH": eth}, jpy), head(anvil)).prices["ETH"]
    expected = exact_jpy("3000.12345678", "0.00666666")
    assert price is not None and price.value == expected
    # 300012345678 / 666666 = 450018.968535 968535 968535 968…: the 19th digit rounds up.
    assert str(expected) == "450018.968535968535968536"
    assert price.value.as_tuple().exponent == -18


def test_feeds_with_18_and_8_decimals_divide_exactly(anvil, feeds) -> None:
    _, jpy = feeds
    eth18 = deploy_feed(anvil, 18, "ETH / USD (18)")
    set_round(anvil, eth18, 3, 3000_500000000000000001)  # 3000.500000000000000001 USD
    price = read(anvil, settings({"ETH": eth18}, jpy), head(anvil)).prices["ETH"]
    assert price is not None
    assert price.value == exact_jpy("3000.500000000000000001", "0.00666666")


def test_without_a_fiat_feed_the_price_is_the_usd_answer(anvil, feeds) -> None:
    eth, _ = feeds
    set_round(anvil, eth, 1, 300012345678)
    price = read(anvil, settings({"ETH": eth}, None), head(anvil)).prices["ETH"]
    assert price is not None and price.value == Decimal("3000.12345678")
    assert price.round_id == "1" and "/" not in price.source


def test_a_stale_round_gives_no_price_and_a_reason(anvil, feeds) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678, updated=T0 - timedelta(minutes=30))
    reading = read(anvil, settings({"ETH": eth}, jpy, max_age=600), head(anvil))
    assert reading.prices["ETH"] is None
    assert "1830s old (max 600s" in reading.problems["ETH"]
    status = reading.statuses()["ETH"]
    assert status.state == "missing" and status.reason == reading.problems["ETH"]


def test_a_stale_fiat_feed_makes_every_asset_stale(anvil, feeds) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678)
    set_round(anvil, jpy, 8, 666666, updated=T0 - timedelta(hours=2))
    reading = read(anvil, settings({"ETH": eth}, jpy), head(anvil))
    assert reading.prices["ETH"] is None and "old (max 600s" in reading.problems["ETH"]


@pytest.mark.parametrize("answer", [0, -300012345678])
def test_zero_or_negative_answer_gives_no_price(anvil, feeds, answer) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 5, answer)
    reading = read(anvil, settings({"ETH": eth}, jpy), head(anvil))
    assert reading.prices["ETH"] is None
    assert f"answered {answer} (round 5): not a price" in reading.problems["ETH"]


def test_a_zero_fiat_answer_gives_no_price_for_any_asset(anvil, feeds) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678)
    set_round(anvil, jpy, 9, 0)
    reading = read(anvil, settings({"ETH": eth}, jpy), head(anvil))
    assert reading.prices["ETH"] is None and "fiat feed" in reading.problems["ETH"]


def test_an_address_without_code_is_malformed_not_zero(anvil, feeds) -> None:
    _, jpy = feeds
    nobody = "0x" + "ab" * 20
    reading = read(anvil, settings({"ETH": nobody}, jpy), head(anvil))
    assert reading.prices["ETH"] is None
    assert "returned 0 bytes" in reading.problems["ETH"]


def test_a_reverting_feed_does_not_take_the_other_feeds_down(anvil, feeds, eth_world) -> None:
    eth, jpy = feeds
    set_round(anvil, eth, 1, 300012345678)
    # A token has decimals() but no latestRoundData(): the call reverts.
    ps = settings({"ETH": eth, "USDC": eth_world.usdc}, jpy)
    reading = read(anvil, ps, head(anvil), assets=("ETH", "USDC"))
    assert reading.prices["ETH"] is not None
    assert reading.prices["USDC"] is None and eth_world.usdc.lower() in reading.problems["USDC"]


def test_a_chain_not_read_this_cycle_gives_no_price(anvil, feeds) -> None:
    eth, jpy = feeds
    reading = fetch_prices(settings({"ETH": eth}, jpy), ["ETH"], T0,
                           chains={"ethereum": chain(anvil)}, blocks={})
    assert reading.prices["ETH"] is None and "was not read this cycle" in reading.problems["ETH"]


def test_an_unreachable_node_gives_no_price_and_names_no_url(feeds) -> None:
    eth, jpy = feeds
    dead = ChainSettings(name="ethereum", type="ethereum",
                         rpc=(endpoint("http://127.0.0.1:9/key-abc123", timeout=1),))
    reading = fetch_prices(settings({"ETH": eth}, jpy), ["ETH"], T0, chains={"ethereum": dead},
                           blocks={"ethereum": BlockRef(1, "0x" + "00" * 32, 0)})
    assert reading.prices["ETH"] is None and "key-abc123" not in reading.problems["ETH"]


# --- pure parts ----------------------------------------------------------------


def test_decode_round_requires_exactly_five_words() -> None:
    with pytest.raises(ValueError, match="not 160"):
        decode_round(b"\0" * 128)
    words = (1).to_bytes(32, "big") + (2**256 - 5).to_bytes(32, "big") + bytes(96)
    assert decode_round(words)[1] == -5


def test_division_rounds_half_to_even() -> None:
    def r(answer: int, decimals: int) -> Round:
        return Round("0x", 1, answer, 0, 1, 1, decimals)

    # 1 / 8 at 0 decimals with 18 places is exact; 1e-18 halves round to even.
    assert divide_answers(r(1, 0), r(8, 0)) == Decimal("0.125")
    assert divide_answers(r(5, 19), None) == Decimal("0.000000000000000000")  # 0.5e-18 → 0
    assert divide_answers(r(15, 19), None) == Decimal("0.000000000000000002")  # 1.5e-18 → 2
    assert divide_answers(r(2, 0), r(3, 0)) == Decimal("0.666666666666666667")
