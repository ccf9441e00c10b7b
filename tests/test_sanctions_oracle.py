"""The Chainalysis-style sanctions oracle (`isSanctioned`) read at a block, on anvil."""

from __future__ import annotations

import time

import pytest
from conftest import endpoint, new_address
from eth_abi import encode
from eth_utils import keccak

from auditor.chains.ethereum_rpc import RpcFailure
from auditor.devchain import DEV_ACCOUNTS
from auditor.sanctions import IS_SANCTIONED, oracle_sanctioned
from auditor.settings import ChainSettings

pytestmark = pytest.mark.integration


def _add_calldata(addresses: list[str]) -> str:
    return "0x" + (keccak(text="addToSanctionsList(address[])")[:4]
                   + encode(["address[]"], [addresses])).hex()


@pytest.fixture(scope="module")
def oracle(anvil, contracts) -> str:
    return anvil.deploy(contracts["TestSanctionsOracle"]["bytecode"])


def chain(anvil) -> ChainSettings:
    return ChainSettings(name="ethereum", type="ethereum", rpc=(endpoint(anvil.url),))


def deadline() -> float:
    return time.monotonic() + 20


def test_the_selector_is_is_sanctioned_address():
    assert IS_SANCTIONED == "0x" + keccak(text="isSanctioned(address)")[:4].hex()


def test_listed_address_is_sanctioned_from_its_listing_block_on(anvil, oracle):
    listed, clean = new_address(), new_address()
    before = anvil.block_number()
    anvil.send_tx(DEV_ACCOUNTS[0], oracle, data=_add_calldata([listed]))
    after = anvil.block_number()
    assert after > before
    assert oracle_sanctioned(chain(anvil), oracle, [listed, clean], after, deadline()) == {listed}
    # read at a block before the listing: not sanctioned then
    assert oracle_sanctioned(chain(anvil), oracle, [listed, clean], before, deadline()) == set()


def test_addresses_come_back_as_given_whatever_their_case(anvil, oracle):
    listed = new_address()
    anvil.send_tx(DEV_ACCOUNTS[0], oracle, data=_add_calldata([listed]))
    asked = [listed, listed.lower()]
    got = oracle_sanctioned(chain(anvil), oracle, asked, anvil.block_number(), deadline())
    assert got == set(asked)


def test_many_addresses_are_asked_in_batches(anvil, oracle):
    addresses = [new_address() for _ in range(450)]
    listed = addresses[::97]
    anvil.send_tx(DEV_ACCOUNTS[0], oracle, data=_add_calldata(listed))
    got = oracle_sanctioned(chain(anvil), oracle, addresses, anvil.block_number(), deadline())
    assert got == set(listed)


def test_no_contract_at_the_oracle_address_is_a_failure_not_a_clean_answer(anvil):
    with pytest.raises(RpcFailure, match="answered no data"):
        oracle_sanctioned(chain(anvil), new_address(), [new_address()], anvil.block_number(),
                          deadline())


def test_an_unreachable_node_is_a_failure(anvil, oracle):
    dead = ChainSettings(name="ethereum", type="ethereum", rpc=(endpoint("http://127.0.0.1:9"),))
    with pytest.raises(RpcFailure):
        oracle_sanctioned(dead, oracle, [new_address()], 1, deadline())


def test_a_non_ethereum_address_is_refused(anvil, oracle):
    with pytest.raises(ValueError):
        oracle_sanctioned(chain(anvil), oracle, ["bc1q05aktddf9ce4p7hh3stgsf253m4vweu7nkhtmw"], 1,
                          deadline())
