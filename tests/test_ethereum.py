"""EthereumClient on a real anvil: balances, nonces, the two views, read failures."""

from __future__ import annotations

import pytest

from auditor import devchain
from auditor.chains import ChainClient, EthereumClient, make_client
from auditor.settings import AssetSettings, Deployment

pytestmark = pytest.mark.integration

BIG = 2**130 + 12345  # above 2^128: no 64- or 128-bit truncation anywhere


def _read(world, chain, wallets, **kw):
    client = EthereumClient(chain)
    try:
        return client.read(wallets, kw.pop("assets", None) or world.assets(), **kw)
    finally:
        client.close()


def test_multicall_and_batch_paths_return_identical_wei_exact_balances(eth_world):
    w = eth_world
    a, b, c = (w.new_address() for _ in range(3))
    w.fund(a, eth=BIG, usdc=2**64 + 1, dai=2**129 + 7)
    w.fund(b, eth=2**64 + 3, usdc=1, dai=10**18)
    w.anvil.mine(3)  # the settled view (3 confirmations) includes the funding
    wallets = [w.wallet([a, b]), w.wallet([c], name="cold-1")]
    expected = {
        (a.lower(), "ETH"): BIG, (a.lower(), "USDC"): 2**64 + 1, (a.lower(), "DAI"): 2**129 + 7,
        (b.lower(), "ETH"): 2**64 + 3, (b.lower(), "USDC"): 1, (b.lower(), "DAI"): 10**18,
        (c.lower(), "ETH"): 0, (c.lower(), "USDC"): 0, (c.lower(), "DAI"): 0,
    }
    via_multicall = _read(w, w.chain(), wallets)
    via_batch = _read(w, w.chain(multicall3=None), wallets)
    for reading in (via_multicall, via_batch):
        assert reading.ok, reading.error
        assert reading.settled.balances == expected
        assert reading.watch.balances == expected
        assert reading.settled.nonces == {a.lower(): 0, b.lower(): 0, c.lower(): 0}
    assert via_multicall.settled.block == via_batch.settled.block


def test_multicall3_address_without_code_falls_back_to_batches(eth_world):
    w = eth_world
    a = w.new_address()
    w.fund(a, eth=5, usdc=6, dai=7)
    w.anvil.mine(3)
    reading = _read(w, w.chain(multicall3=w.new_address()), [w.wallet([a])])
    assert reading.ok, reading.error
    assert reading.settled.balances == {(a.lower(), "ETH"): 5, (a.lower(), "USDC"): 6,
                                        (a.lower(), "DAI"): 7}


def test_nonces_count_transactions_sent_by_each_address(eth_world):
    w = eth_world
    sender, other = w.new_address(), w.new_address()
    w.fund(sender, eth=10**18)
    for _ in range(3):
        w.anvil.send_tx(sender, other, value=1)
    reading = _read(w, w.chain(confirmations=1), [w.wallet([sender, other], assets=["ETH"])])
    assert reading.ok, reading.error
    assert reading.watch.nonces == {sender.lower(): 3, other.lower(): 0}
    assert reading.settled.nonces == reading.watch.nonces  # confirmations 1: S is the head
    assert reading.watch.balances[(other.lower(), "ETH")] == 3


def test_wallet_reads_only_its_assets_and_ignores_other_chains(eth_world):
    w = eth_world
    a = w.new_address()
    wallets = [w.wallet([a], assets=["USDC"]), w.wallet([w.new_address()], chain="polygon")]
    reading = _read(w, w.chain(), wallets)
    assert reading.ok, reading.error
    assert reading.watch.balances == {(a.lower(), "USDC"): 0}
    assert list(reading.watch.nonces) == [a.lower()]


def test_transfer_after_settled_block_shows_in_watch_view_only(eth_world):
    w = eth_world
    hot, customer = w.new_address(), w.new_address()
    w.fund(hot, eth=10**18, usdc=1_000_000)
    w.anvil.mine(5)
    devchain.transfer(w.anvil, w.usdc, hot, customer, 250_000)  # mined in its own block
    head = w.anvil.block_number()
    reading = _read(w, w.chain(confirmations=3), [w.wallet([hot, customer], ["USDC"])])
    assert reading.ok, reading.error
    assert reading.watch.block.number == head
    assert reading.settled.block.number == head - 3 + 1
    assert reading.settled.block.hash == w.anvil.block(head - 2)["hash"]
    assert reading.watch.block.hash == w.anvil.block(head)["hash"]
    assert reading.head_timestamp == int(w.anvil.block(head)["timestamp"], 16)
    assert reading.watch.balances[(hot.lower(), "USDC")] == 750_000
    assert reading.settled.balances[(hot.lower(), "USDC")] == 1_000_000
    assert reading.watch.nonces[hot.lower()] == 1
    assert reading.settled.nonces[hot.lower()] == 0

    w.anvil.mine(2)  # now the transfer has 3 confirmations
    later = _read(w, w.chain(confirmations=3), [w.wallet([hot, customer], ["USDC"])])
    assert later.settled.block.number == head
    assert later.settled.balances[(hot.lower(), "USDC")] == 750_000
    assert later.settled.balances[(customer.lower(), "USDC")] == 250_000


def test_confirmations_deeper_than_the_chain_settle_at_genesis(eth_world):
    w = eth_world
    reading = _read(w, w.chain(confirmations=10**9), [w.wallet([w.new_address()], ["ETH"])])
    assert reading.ok, reading.error
    assert reading.settled.block.number == 0
    assert reading.settled.block.hash == w.anvil.block(0)["hash"]


@pytest.mark.parametrize("multicall3", [devchain.MULTICALL3_ADDRESS, None])
def test_token_address_without_code_is_a_read_failure_not_zero(eth_world, multicall3):
    w = eth_world
    not_a_token = w.new_address()  # an EOA: balanceOf answers success with empty data
    assets = {**w.assets(), "FAKE": AssetSettings(
        "FAKE", "stablecoin", 6, (Deployment("ethereum", not_a_token, 6),))}
    reading = _read(w, w.chain(multicall3=multicall3),
                    [w.wallet([w.new_address()], ["ETH", "FAKE"])], assets=assets)
    assert not reading.ok
    assert reading.settled is None and reading.watch is None
    assert "FAKE" in reading.error and "not 32" in reading.error


def test_make_client_builds_an_ethereum_client_that_is_a_chain_client(eth_world):
    client = make_client(eth_world.chain())
    try:
        assert isinstance(client, EthereumClient)
        assert isinstance(client, ChainClient)
        assert client.name == "ethereum"
    finally:
        client.close()
