"""Ethereum transfer ingestion (`ingest_ethereum`, `block_hashes`) on anvil, directly and
through a local proxy that hides methods, caps log ranges or corrupts answers."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from conftest import EthWorld
from eth_abi import encode
from eth_utils.crypto import keccak
from rpc_proxy import Proxy

from auditor import devchain
from auditor.chains import ethereum_blocks, ethereum_logs, ethereum_traces
from auditor.chains.ethereum_rpc import RpcFailure
from auditor.chains.ethereum_transfers import block_hashes, ingest_ethereum
from auditor.model import Transfer, TransferBatch
from auditor.settings import AssetSettings, Deployment, WalletSettings

pytestmark = pytest.mark.integration

ETH = 10**18
Edit = Callable[[str, list[Any], Any], Any]  # (method, params, result) → result to send


@pytest.fixture
def proxy(eth_world: EthWorld) -> Iterator[Proxy]:
    p = Proxy(eth_world.anvil.url)
    yield p
    p.close()


# --- helpers -------------------------------------------------------------------------


def assets(world: EthWorld) -> dict[str, AssetSettings]:
    """USDC is 6 decimals on this chain but 18 as an asset (an 18-decimal deployment elsewhere)."""
    out = world.assets()
    out["USDC"] = AssetSettings("USDC", "stablecoin", 18, (Deployment("ethereum", world.usdc, 6),
                                                          Deployment("bsc", "0x" + "55" * 20, 18)))
    return out


def wallet(addresses: Sequence[str], name: str = "hot-1", tier: str = "hot") -> WalletSettings:
    return WalletSettings(name=name, chain="ethereum", tier=tier, role="customer",  # type: ignore[arg-type]
                          addresses=tuple(addresses), assets=("ETH", "USDC", "DAI"))


def ingest(world: EthWorld, wallets: Sequence[WalletSettings], first: int, last: int | None = None,
           url: str | None = None, seconds: float = 30) -> TransferBatch:
    last = world.anvil.block_number() if last is None else last
    chain = world.chain([url] if url else None, timeout=10)
    batch = ingest_ethereum(chain, wallets, assets(world), first, last, time.monotonic() + seconds)
    assert_in_order(batch.transfers)
    return batch


def assert_in_order(transfers: Sequence[Transfer]) -> None:
    """Blocks ascending; a transaction's transfers together, in the order native value,
    internal calls, logs, fee; log indexes ascending through each block."""
    txs = list(dict.fromkeys(t.tx for t in transfers))

    def key(t: Transfer) -> tuple[int, int, int, int]:
        group = {-1: 0, -2: 3}.get(t.index, 1 if t.index < 0 else 2)
        return t.block, txs.index(t.tx), group, -t.index if t.index < 0 else t.index

    assert [key(t) for t in transfers] == sorted(key(t) for t in transfers)
    logs = [(t.block, t.index) for t in transfers if t.index >= 0]
    assert logs == sorted(logs)


def rows(batch: TransferBatch) -> list[tuple[str, int, str, int, str, str, str | None, str | None]]:
    return [(t.kind, t.index, t.asset, t.amount, t.sender, t.recipient, t.wallet_from, t.wallet_to)
            for t in batch.transfers]


def low(address: str) -> str:
    return address.lower()


def next_block(world: EthWorld) -> int:
    return world.anvil.block_number() + 1


def send(world: EthWorld, sender: str, to: str, value: int = 0, data: str = "0x",
         gas: int | None = None) -> dict[str, Any]:
    """A transaction from any address (impersonated); with `gas` it is sent even if it reverts."""
    if gas is None:
        return world.anvil.send_tx(sender, to, value, data)
    world.anvil.impersonate(sender)
    tx_hash = world.anvil.rpc("eth_sendTransaction", {"from": sender, "to": to, "value": hex(value),
                                                      "data": data, "gas": hex(gas)})
    receipt: dict[str, Any] | None = world.anvil.rpc("eth_getTransactionReceipt", tx_hash)
    if receipt is None:  # the shared node did not automine it (seen after other tests): mine it now
        world.anvil.mine()
        receipt = world.anvil.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt is not None
    return receipt


def fee(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)


def call(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (keccak(text=signature)[:4] + encode(types, args)).hex()


def funded(world: EthWorld, eth: int = 10 * ETH) -> str:
    address = world.new_address()
    world.anvil.set_balance(address, eth)
    return address


@pytest.fixture(scope="module")
def forwarder(eth_world: EthWorld) -> str:
    """A TestForwarder (a contract that sends ETH itself) holding 5 ETH."""
    address = eth_world.anvil.deploy(devchain.compile_contracts()["TestForwarder"]["bytecode"])
    eth_world.anvil.set_balance(address, 5 * ETH)
    return address


# --- native ETH ------------------------------------------------------------------------


def test_eth_in_and_out_are_native_transfers_and_only_own_senders_pay_a_listed_fee(eth_world: EthWorld) -> None:
    hot, outsider = funded(eth_world), funded(eth_world)
    first = next_block(eth_world)
    incoming = send(eth_world, outsider, hot, 3 * ETH)
    outgoing = send(eth_world, hot, outsider, ETH // 4)
    batch = ingest(eth_world, [wallet([hot])], first)
    h, o = low(hot), low(outsider)
    assert rows(batch) == [
        ("native", -1, "ETH", 3 * ETH, o, h, None, "hot-1"),
        ("native", -1, "ETH", ETH // 4, h, o, "hot-1", None),
        ("fee", -2, "ETH", fee(outgoing), h, "", "hot-1", None),
    ]
    t_in, t_out, t_fee = batch.transfers
    assert (t_in.direction, t_in.counterparties, t_in.tx) == ("in", (o,), incoming["transactionHash"])
    assert (t_out.direction, t_out.counterparties, t_fee.counterparties) == ("out", (o,), ())
    assert t_out.block == int(outgoing["blockNumber"], 16) and t_out.block_hash == outgoing["blockHash"]
    assert t_out.timestamp == int(eth_world.anvil.block(t_out.block)["timestamp"], 16)
    last = eth_world.anvil.block_number()
    assert (batch.chain, batch.first, batch.last, batch.notes) == ("ethereum", first, last, ())
    assert batch.block_hashes == {n: eth_world.anvil.block(n)["hash"] for n in range(first, last + 1)}


def test_failed_transaction_moves_no_value_and_costs_only_its_fee(eth_world: EthWorld) -> None:
    hot = funded(eth_world)
    first = next_block(eth_world)
    # TestToken has no receive function: ETH sent to it reverts.
    receipt = send(eth_world, hot, eth_world.usdc, ETH, gas=100_000)
    assert receipt["status"] == "0x0"
    batch = ingest(eth_world, [wallet([hot])], first)
    assert rows(batch) == [("fee", -2, "ETH", fee(receipt), low(hot), "", "hot-1", None)]


def test_sweep_between_two_own_wallets_is_internal_and_listed_once(eth_world: EthWorld) -> None:
    hot, cold = funded(eth_world), eth_world.new_address()
    eth_world.fund(hot, usdc=5_000_000)
    first = next_block(eth_world)
    eth_sweep = send(eth_world, hot, cold, 2 * ETH)
    devchain.transfer(eth_world.anvil, eth_world.usdc, hot, cold, 4_000_000)
    batch = ingest(eth_world, [wallet([hot]), wallet([cold], "cold-1", "cold")], first)
    h, c = low(hot), low(cold)
    assert [r for r in rows(batch) if r[0] != "fee"] == [
        ("native", -1, "ETH", 2 * ETH, h, c, "hot-1", "cold-1"),
        ("token", 0, "USDC", 4_000_000 * 10**12, h, c, "hot-1", "cold-1"),
    ]
    assert {t.direction for t in batch.transfers if t.kind != "fee"} == {"internal"}
    assert all(t.counterparties == () for t in batch.transfers)
    assert [t.amount for t in batch.transfers if t.kind == "fee"][0] == fee(eth_sweep)


# --- ERC-20 -------------------------------------------------------------------------


def test_erc20_in_and_out_of_two_tokens_are_rescaled_to_the_asset_decimals(eth_world: EthWorld) -> None:
    hot, outsider = funded(eth_world), funded(eth_world)
    first = next_block(eth_world)
    eth_world.fund(hot, usdc=7_000_000)  # a mint: from the zero address
    eth_world.fund(outsider, dai=3 * ETH)
    devchain.transfer(eth_world.anvil, eth_world.usdc, hot, outsider, 2_500_000)
    devchain.transfer(eth_world.anvil, eth_world.dai, outsider, hot, ETH)
    batch = ingest(eth_world, [wallet([hot])], first)
    h, o, zero = low(hot), low(outsider), "0x" + "00" * 20
    assert [r for r in rows(batch) if r[0] != "fee"] == [
        ("token", 0, "USDC", 7_000_000 * 10**12, zero, h, None, "hot-1"),
        ("token", 0, "USDC", 2_500_000 * 10**12, h, o, "hot-1", None),
        ("token", 0, "DAI", ETH, o, h, None, "hot-1"),
    ]
    assert [t.counterparties for t in batch.transfers if t.kind == "token"] == [(zero,), (o,), (o,)]
    assert len({t.tx for t in batch.transfers}) == 3


def test_approval_by_a_watched_owner_is_listed_and_one_to_a_watched_spender_is_not(eth_world: EthWorld) -> None:
    hot, spender, outsider = funded(eth_world), eth_world.new_address(), funded(eth_world)
    first = next_block(eth_world)
    approve = devchain.encode_call("approve(address,uint256)", spender, 10**30)
    send(eth_world, hot, eth_world.dai, data=approve)
    send(eth_world, outsider, eth_world.usdc, data=devchain.encode_call("approve(address,uint256)", hot, 5))
    batch = ingest(eth_world, [wallet([hot])], first)
    approvals = [t for t in batch.transfers if t.kind == "approval"]
    assert [(t.asset, t.amount, t.sender, t.recipient, t.wallet_from, t.counterparties) for t in approvals] == [
        ("DAI", 10**30, low(hot), low(spender), "hot-1", (low(spender),))]


def test_without_a_native_asset_tokens_are_still_read_and_a_note_says_eth_is_not(eth_world: EthWorld) -> None:
    hot = funded(eth_world)
    first = next_block(eth_world)
    eth_world.fund(hot, dai=5)
    send(eth_world, hot, eth_world.new_address(), ETH)
    tokens_only = {k: v for k, v in assets(eth_world).items() if k != "ETH"}
    batch = ingest_ethereum(eth_world.chain(), [wallet([hot])], tokens_only, first,
                            eth_world.anvil.block_number(), time.monotonic() + 30)
    assert [(t.kind, t.asset, t.amount) for t in batch.transfers] == [("token", "DAI", 5)]
    assert len(batch.notes) == 1 and "no native asset" in batch.notes[0]


# --- internal transfers (traces) ---------------------------------------------------------


def internal_scenario(world: EthWorld, forwarder: str) -> tuple[int, str, str]:
    """Forwarder sends 7 wei to hot and 9 to an outsider; a reverted frame 'sends' hot 5;
    a child created with 11 wei selfdestructs to hot. Returns (first block, hot, outsider)."""
    hot, outsider = world.new_address(), world.new_address()
    first = next_block(world)
    send(world, devchain.DEV_ACCOUNTS[0], forwarder,
         data=call("forward(address[],uint256[])", ["address[]", "uint256[]"], [[hot, outsider], [7, 9]]))
    # explicit gas: an estimate would starve the inner frame, which then never sends at all
    send(world, devchain.DEV_ACCOUNTS[0], forwarder, gas=300_000,
         data=call("forwardReverted(address,uint256)", ["address", "uint256"], [hot, 5]))
    send(world, devchain.DEV_ACCOUNTS[0], forwarder,
         data=call("createAndClose(address,uint256)", ["address", "uint256"], [hot, 11]))
    return first, hot, outsider


def test_contract_sending_eth_is_listed_by_trace_position_and_reverted_frames_move_nothing(
        eth_world: EthWorld, forwarder: str) -> None:
    first, hot, outsider = internal_scenario(eth_world, forwarder)
    batch = ingest(eth_world, [wallet([hot]), wallet([forwarder], "contract-1", "warm")], first)
    f, h, o = low(forwarder), low(hot), low(outsider)
    internal = [(t.index, t.amount, t.sender, t.recipient, t.wallet_from, t.wallet_to, t.direction)
                for t in batch.transfers]
    child = [t.sender for t in batch.transfers if t.amount == 11 and t.recipient == h][0]
    assert internal == [
        (-3, 7, f, h, "contract-1", "hot-1", "internal"),  # forward: first frame below the top
        (-4, 9, f, o, "contract-1", None, "out"),  # second frame
        (-3, 11, f, child, "contract-1", None, "out"),  # the create frame funding the child
        (-5, 11, child, h, None, "hot-1", "in"),  # create, call close, selfdestruct: third frame
    ]
    assert batch.notes == ()


def test_callTracer_gives_the_same_internal_transfers_when_trace_block_is_missing(
        eth_world: EthWorld, forwarder: str, proxy: Proxy) -> None:
    first, hot, _ = internal_scenario(eth_world, forwarder)
    wallets = [wallet([hot]), wallet([forwarder], "contract-1", "warm")]
    direct = ingest(eth_world, wallets, first)
    proxy.refuse = {"trace_block"}
    assert ingest(eth_world, wallets, first, url=proxy.url) == direct
    assert "debug_traceBlockByHash" in proxy.methods()


def test_without_any_trace_api_internal_transfers_are_left_to_reconciliation_with_a_note(
        eth_world: EthWorld, forwarder: str, proxy: Proxy) -> None:
    first, hot, outsider = internal_scenario(eth_world, forwarder)
    proxy.refuse = {"trace_block", "debug_traceBlockByHash"}
    batch = ingest(eth_world, [wallet([hot, outsider])], first, url=proxy.url)
    assert batch.transfers == ()
    assert len(batch.notes) == 1 and "internal transfers" in batch.notes[0] and "reconciled" in batch.notes[0]


def test_receipts_come_per_transaction_when_the_node_lacks_eth_getBlockReceipts(
        eth_world: EthWorld, proxy: Proxy) -> None:
    hot, outsider = funded(eth_world), funded(eth_world)
    first = next_block(eth_world)
    send(eth_world, hot, outsider, ETH)
    send(eth_world, hot, eth_world.usdc, ETH, gas=100_000)  # fails
    direct = ingest(eth_world, [wallet([hot])], first)
    proxy.refuse = {"eth_getBlockReceipts"}
    assert ingest(eth_world, [wallet([hot])], first, url=proxy.url) == direct
    assert "eth_getTransactionReceipt" in proxy.methods()
    proxy.refuse = set()  # a node that takes block numbers only
    proxy.error = lambda method, params: ({"code": -32602, "message": "invalid argument 0: hex string has length 64"}
                                          if method == "eth_getBlockReceipts" else None)
    assert ingest(eth_world, [wallet([hot])], first, url=proxy.url) == direct
    assert [t.kind for t in direct.transfers] == ["native", "fee", "fee"]


def test_beacon_withdrawal_to_an_own_address_is_native_income(eth_world: EthWorld, proxy: Proxy) -> None:
    hot = eth_world.new_address()
    number = next_block(eth_world)
    eth_world.anvil.mine()

    def withdrawals(method: str, params: list[Any], result: Any) -> Any:
        if method == "eth_getBlockByNumber" and int(params[0], 16) == number:
            result["withdrawals"] = [{"index": "0x2a", "validatorIndex": "0x1", "address": hot, "amount": "0x3"}]
        return result

    proxy.edit = withdrawals
    batch = ingest(eth_world, [wallet([hot])], number, url=proxy.url)
    assert [(t.tx, t.index, t.amount, t.sender, t.wallet_to) for t in batch.transfers] == [
        ("withdrawal:42", -1, 3 * 10**9, "", "hot-1")]


# --- chunking ----------------------------------------------------------------------------


def test_many_addresses_and_a_wide_range_in_small_chunks_give_what_one_big_request_gives(
        eth_world: EthWorld, forwarder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    own = [funded(eth_world) for _ in range(6)]
    first = next_block(eth_world)
    for i, address in enumerate(own):
        eth_world.fund(address, usdc=1_000 + i, dai=2_000 + i)
        devchain.transfer(eth_world.anvil, eth_world.usdc, address, own[(i + 1) % 6], 10 + i)
        send(eth_world, address, eth_world.new_address(), 1 + i)
    scenario_first, hot, _ = internal_scenario(eth_world, forwarder)
    watched = [eth_world.new_address() for _ in range(300)] + own + [hot, forwarder]
    wallets = [wallet(watched[:150], "deposits-a"), wallet(watched[150:], "deposits-b")]
    start = first
    whole = ingest(eth_world, wallets, start)
    for module, name, small in [(ethereum_logs, "LOG_BLOCK_SPAN", 3), (ethereum_logs, "TOPICS_PER_FILTER", 64),
                                (ethereum_logs, "TOKENS_PER_FILTER", 1), (ethereum_blocks, "BLOCKS_PER_POST", 4),
                                (ethereum_traces, "TRACES_PER_POST", 2)]:
        monkeypatch.setattr(module, name, small)
    assert ingest(eth_world, wallets, start) == whole
    kinds = [t.kind for t in whole.transfers]
    assert (kinds.count("token"), kinds.count("native"), kinds.count("fee")) == (18, 6 + 4, 12)


def test_a_node_capping_log_results_gets_the_range_in_halves(eth_world: EthWorld, proxy: Proxy) -> None:
    hot = funded(eth_world)
    first = next_block(eth_world)
    for amount in (1, 2, 3, 4, 5):
        eth_world.fund(hot, usdc=amount)
    last = eth_world.anvil.block_number()
    direct = ingest(eth_world, [wallet([hot])], first - 3, last)

    def cap(method: str, params: list[Any]) -> dict[str, Any] | None:
        span = method == "eth_getLogs" and int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16)
        if span and span >= 2:
            return {"code": -32005, "message": "query returned more than 10000 results"}
        return None

    proxy.error = cap
    assert ingest(eth_world, [wallet([hot])], first - 3, last, url=proxy.url) == direct
    assert [t.amount for t in direct.transfers] == [a * 10**12 for a in (1, 2, 3, 4, 5)]


def test_a_rate_limit_on_logs_is_a_failure_not_a_reason_to_send_more_requests(eth_world: EthWorld,
                                                                              proxy: Proxy) -> None:
    hot = eth_world.new_address()
    first = next_block(eth_world)
    eth_world.fund(hot, usdc=1)
    eth_world.anvil.mine(3)
    proxy.error = lambda method, params: ({"code": -32005, "message": "project ID request rate exceeded"}
                                          if method == "eth_getLogs" else None)
    with pytest.raises(RpcFailure, match="rate exceeded"):
        ingest(eth_world, [wallet([hot])], first, url=proxy.url)
    assert proxy.methods().count("eth_getLogs") <= 2  # at most the two filters, never halved


# --- failures ---------------------------------------------------------------------------


def corrupt_logs(proxy: Proxy, change: Callable[[dict[str, Any]], None]) -> None:
    def edit(method: str, params: list[Any], result: Any) -> Any:
        if method == "eth_getLogs":
            for log in result:
                change(log)
        return result

    proxy.edit = edit


@pytest.mark.parametrize("change, message", [
    (lambda log: log.update(data=log["data"][:-2]), "not exactly 32 bytes"),
    (lambda log: log.update(data=log["data"] + "00" * 32), "not exactly 32 bytes"),
    (lambda log: log["topics"].append("0x" + "00" * 32), "expected 3 topics"),
    (lambda log: log["topics"].__setitem__(2, "0x" + "ff" * 32), "padded address"),
    (lambda log: log.update(address="0x" + "66" * 20), "not what the filter asked for"),
    (lambda log: log.update(blockHash="0x" + "77" * 32), "another block hash"),
    (lambda log: log.update(removed=True), "removed"),
], ids=["short-data", "long-data", "four-topics", "bad-topic", "other-token", "other-block", "removed"])
def test_a_malformed_log_fails_the_whole_batch(eth_world: EthWorld, proxy: Proxy,
                                               change: Callable[[dict[str, Any]], None], message: str) -> None:
    hot = eth_world.new_address()
    first = next_block(eth_world)
    eth_world.fund(hot, usdc=1)
    corrupt_logs(proxy, change)
    with pytest.raises(RpcFailure, match=message):
        ingest(eth_world, [wallet([hot])], first, url=proxy.url)


def test_a_block_that_changes_during_the_read_fails_the_batch(eth_world: EthWorld, proxy: Proxy) -> None:
    hot = funded(eth_world)
    first = next_block(eth_world)
    send(eth_world, hot, eth_world.new_address(), 1)
    last = eth_world.anvil.block_number()
    reads = {"n": 0}

    def reorg(method: str, params: list[Any], result: Any) -> Any:
        if method == "eth_getBlockByNumber" and int(params[0], 16) == last and not params[1]:
            reads["n"] += 1
            result["hash"] = "0x" + "88" * 32  # the re-check after the read sees another block
        return result

    proxy.edit = reorg
    with pytest.raises(RpcFailure, match="changed during the read"):
        ingest(eth_world, [wallet([hot])], first, last, url=proxy.url)
    assert reads["n"] == 1


def test_an_unknown_rpc_error_on_traces_fails_the_batch_rather_than_dropping_them(
        eth_world: EthWorld, proxy: Proxy) -> None:
    hot = funded(eth_world)
    first = next_block(eth_world)
    send(eth_world, hot, eth_world.new_address(), 1)
    proxy.error = lambda method, params: ({"code": -32000, "message": "missing trie node"}
                                          if method == "trace_block" else None)
    with pytest.raises(RpcFailure, match="missing trie node"):
        ingest(eth_world, [wallet([hot])], first, url=proxy.url)


def test_a_passed_deadline_or_a_slow_node_raises_instead_of_returning_part(eth_world: EthWorld,
                                                                            proxy: Proxy) -> None:
    hot = eth_world.new_address()
    first = next_block(eth_world)
    eth_world.fund(hot, usdc=1)
    with pytest.raises(RpcFailure, match="deadline"):
        ingest(eth_world, [wallet([hot])], first, seconds=-1)
    proxy.delay = 1.0
    with pytest.raises(RpcFailure):
        ingest(eth_world, [wallet([hot])], first, url=proxy.url, seconds=0.3)


def test_the_cycle_collector_is_paused_only_while_reading_and_its_state_restored(eth_world: EthWorld) -> None:
    hot = eth_world.new_address()
    first = next_block(eth_world)
    eth_world.fund(hot, usdc=1)
    try:
        assert gc.isenabled()
        ingest(eth_world, [wallet([hot])], first)
        assert gc.isenabled()
        with pytest.raises(RpcFailure):
            ingest(eth_world, [wallet([hot])], first, seconds=-1)
        assert gc.isenabled()
        gc.disable()  # an application that runs without the collector keeps it off
        ingest(eth_world, [wallet([hot])], first)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_range_that_is_not_one_is_refused(eth_world: EthWorld) -> None:
    with pytest.raises(ValueError, match="empty"):
        ingest(eth_world, [wallet([eth_world.new_address()])], 5, 4)


# --- block hashes -------------------------------------------------------------------------


def test_block_hashes_are_the_nodes_current_ones_and_a_missing_block_is_a_failure(eth_world: EthWorld) -> None:
    head = eth_world.anvil.block_number()
    numbers = [head, 1, head - 1, 1]
    got = block_hashes(eth_world.chain(), numbers, time.monotonic() + 10)
    assert got == {n: eth_world.anvil.block(n)["hash"] for n in (1, head - 1, head)}
    with pytest.raises(RpcFailure, match="not found"):
        block_hashes(eth_world.chain(), [head + 1000], time.monotonic() + 10)
