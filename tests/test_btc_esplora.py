"""EsploraBackend against the Esplora simulator over a chain of real transactions:
coin-by-coin scan results, paging, the verified-history cache, reorgs, and
every fault mode as a BackendError that names the backend by label only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from auditor.chains.bitcoin.esplora import EsploraBackend
from auditor.chains.bitcoin.types import Backend, BackendError, Coin, ScriptRef, ScriptState
from auditor.devbtc import keys
from auditor.devbtc.chain import SimChain
from auditor.devbtc.codec import address_to_script
from auditor.devbtc.esplora_server import EsploraServer
from auditor.settings import BackendSettings, Secret

pytestmark = pytest.mark.integration
LABEL = "http://127.0.0.1:3002"
OUTSIDER = keys.wallet("wpkh", "outsider")


@pytest.fixture
def chain() -> SimChain:
    return SimChain(clock=lambda: 1_700_000_000, faucet_coins=10)


@pytest.fixture
def server(chain: SimChain) -> Iterator[EsploraServer]:
    srv = EsploraServer(chain, base_path="/api/KEY-SECRET")
    srv.faults.hang_seconds = 5
    with srv:
        yield srv


@pytest.fixture
def backend(server: EsploraServer) -> Iterator[EsploraBackend]:
    b = EsploraBackend(BackendSettings("esplora", Secret(server.url), LABEL, timeout=1, concurrency=4), "regtest")
    yield b
    b.close()


def soon() -> float:
    return time.monotonic() + 20


def ref(w: keys.TestWallet, branch: int, index: int) -> ScriptRef:
    return ScriptRef(w.address(branch, index), w.script(branch, index), w.branch_descriptor(branch), index)


def expected(chain: SimChain, script: str, since: int) -> ScriptState:
    """The oracle, straight from the chain: every coin unspent, spent in the mempool or above `since`."""
    coins = []
    hist = chain.history(script)
    for txid, height in hist:
        for n, (s, value) in enumerate(chain.tx(txid).outputs):
            if s == script:
                sp = chain.spender(txid, n)
                if sp is None or sp[1] == 0 or sp[1] > since:
                    coins.append(Coin(txid, n, value, height, sp and sp[1], sp and sp[0]))
    coins.sort(key=lambda c: (c.height or 1 << 62, c.txid, c.vout))
    return ScriptState(script, bool(hist), tuple(coins))


def vout(chain: SimChain, txid: str, address: str) -> int:
    script = address_to_script(address)
    return next(i for i, (s, _) in enumerate(chain.tx(txid).outputs) if s == script)


def test_backend_implements_the_protocol(backend: EsploraBackend) -> None:
    assert isinstance(backend, Backend) and backend.label == LABEL


def test_tip_block_and_block_hash_match_the_chain(chain: SimChain, backend: EsploraBackend) -> None:
    chain.mine(2)
    t = chain.tip()
    assert backend.tip(soon()).hash == t.hash
    assert backend.tip(soon()).height == t.height and backend.tip(soon()).timestamp == t.timestamp
    assert backend.block_hash(50, soon()) == chain.block(50).hash
    b = backend.block(t.height - 1, soon())
    assert (b.height, b.hash, b.timestamp) == (t.height - 1, chain.block(t.height - 1).hash,
                                               chain.block(t.height - 1).timestamp)
    with pytest.raises(BackendError, match="HTTP 404"):
        backend.block_hash(t.height + 1, soon())


def test_unused_addresses_cost_one_request_each(server: EsploraServer, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh", "unused")
    refs = [ref(w, 0, i) for i in range(30)]
    before = server.requests
    states = backend.scan(refs, 0, soon())
    assert server.requests - before == 30
    assert all(states[r.script] == ScriptState(r.script, False, ()) for r in refs)


def test_every_descriptor_kind_reads_its_deposits(chain: SimChain, backend: EsploraBackend) -> None:
    ws = keys.all_wallets()
    chain.pay([(w.address(0, 1), 10_000 + i) for i, w in enumerate(ws)])
    chain.mine()
    chain.pay([(w.address(1, 2), 500 + i) for i, w in enumerate(ws)])  # unconfirmed change-chain coins
    refs = [ref(w, b, i) for w in ws for b, i in ((0, 1), (1, 2), (0, 3))]
    states = backend.scan(refs, chain.tip().height, soon())
    for r in refs:
        assert states[r.script] == expected(chain, r.script, chain.tip().height)
    assert [c.value for c in states[ws[5].script(0, 1)].coins] == [10_005]
    assert states[ws[0].script(0, 3)].used is False


def test_multisig_spend_with_change_in_the_mempool_then_mined(chain: SimChain, backend: EsploraBackend) -> None:
    w = keys.wallet("wsh-sortedmulti")
    fund = chain.pay([(w.address(0, 5), 200_000)])
    chain.mine()
    h = chain.tip().height
    coin = (fund, vout(chain, fund, w.address(0, 5)))
    spend = chain.spend([coin], [(OUTSIDER.address(0, 0), 150_000), (w.address(1, 5), 49_000)], w.signer())
    refs = [ref(w, 0, 5), ref(w, 1, 5)]
    states = backend.scan(refs, h, soon())
    assert states[w.script(0, 5)].coins == (Coin(fund, coin[1], 200_000, h, 0, spend),)
    assert states[w.script(1, 5)].coins == (Coin(spend, 1, 49_000, 0),)
    chain.mine()
    states = backend.scan(refs, h, soon())  # spent above since: still reported, with its heights
    assert states[w.script(0, 5)].coins == (Coin(fund, coin[1], 200_000, h, h + 1, spend),)
    assert states[w.script(1, 5)].coins == (Coin(spend, 1, 49_000, h + 1),)
    states = backend.scan(refs, h + 1, soon())  # spent at or below since: may be left out, and is
    assert states[w.script(0, 5)] == ScriptState(w.script(0, 5), True, ())


def test_single_sig_spends_of_every_spendable_kind(chain: SimChain, backend: EsploraBackend) -> None:
    kinds = ["pkh", "sh-wpkh", "wpkh", "wsh-multi"]
    ws = [keys.wallet(k) for k in kinds]
    fund = chain.pay([(w.address(0, 6), 90_000) for w in ws])
    chain.mine()
    for w in ws:
        chain.spend([(fund, vout(chain, fund, w.address(0, 6)))],
                    [(OUTSIDER.address(0, 1), 50_000), (w.address(1, 6), 39_000)], w.signer())
    chain.mine()
    since = chain.tip().height - 1
    refs = [ref(w, b, 6) for w in ws for b in (0, 1)]
    states = backend.scan(refs, since, soon())
    for r in refs:
        assert states[r.script] == expected(chain, r.script, since) and states[r.script].coins


def test_reorg_removing_a_deposit_removes_its_coin(chain: SimChain, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh")
    fund = chain.pay([(w.address(0, 7), 70_000)])
    kept = chain.pay([(w.address(0, 8), 80_000)])
    chain.mine()
    refs = [ref(w, 0, 7), ref(w, 0, 8)]
    assert backend.scan(refs, 0, soon())[w.script(0, 7)].coins[0].height == chain.tip().height
    chain.reorg(1, drop=[fund])
    states = backend.scan(refs, 0, soon())
    assert states[w.script(0, 7)] == ScriptState(w.script(0, 7), False, ())
    assert states[w.script(0, 8)].coins == (Coin(kept, vout(chain, kept, w.address(0, 8)), 80_000, 0),)


def test_paging_past_25_confirmed_and_the_verified_history_cache(
        chain: SimChain, server: EsploraServer, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh", "busy")
    r = ref(w, 0, 0)
    funds = [chain.pay([(r.address, 1_000 + i)]) for i in range(60)]
    chain.mine()
    for i in range(3):
        chain.spend([(funds[i], vout(chain, funds[i], r.address))], [(OUTSIDER.address(0, 2), 500 + i)],
                    w.signer(), fee=500)
    chain.mine()
    for i in range(2):
        chain.pay([(r.address, 5_000 + i)])
    since = chain.tip().height - 1
    before = server.requests
    assert backend.scan([r], since, soon())[r.script] == expected(chain, r.script, since)
    assert server.requests - before == 1 + 1 + 2  # /txs, /address, two /txs/chain pages (63 confirmed)
    before = server.requests
    assert backend.scan([r], since, soon())[r.script] == expected(chain, r.script, since)
    assert server.requests - before == 3  # /txs, /address, the anchor's /block-height: no paging
    for i in range(30):
        chain.pay([(r.address, 9_000 + i)])
    chain.mine()
    since = chain.tip().height
    assert backend.scan([r], since, soon())[r.script] == expected(chain, r.script, since)


def test_reorg_below_the_cached_history_reads_it_again(chain: SimChain, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh", "busy2")
    r = ref(w, 0, 0)
    old = [chain.pay([(r.address, 2_000 + i)]) for i in range(26)]
    chain.mine()
    recent = chain.pay([(r.address, 7_777)])
    chain.mine()
    assert backend.scan([r], 0, soon())[r.script] == expected(chain, r.script, 0)
    chain.reorg(2, drop=[old[3], recent])
    chain.mine()
    got = backend.scan([r], 0, soon())[r.script]
    assert got == expected(chain, r.script, 0)
    assert old[3] not in {c.txid for c in got.coins} and old[2] in {c.txid for c in got.coins}


def test_fifty_unconfirmed_are_read_and_more_are_refused(chain: SimChain, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh", "mempool")
    r = ref(w, 0, 0)
    for i in range(50):
        chain.pay([(r.address, 3_000 + i)])
    assert backend.scan([r], 0, soon())[r.script] == expected(chain, r.script, 0)
    chain.pay([(r.address, 4_000)])
    with pytest.raises(BackendError, match="more than 50 unconfirmed") as err:
        backend.scan([r], 0, soon())
    assert str(err.value).startswith(LABEL)


@pytest.fixture
def busy(chain: SimChain) -> ScriptRef:
    w = keys.wallet("wpkh", "faulty")
    r = ref(w, 0, 0)
    for i in range(30):
        chain.pay([(r.address, 1_000 + i)])
    chain.mine()
    return r


@pytest.mark.parametrize("mode", ["error", "garbage", "close", "bad_value", "page_gap", "page_repeat"])
def test_every_fault_is_a_backend_error_naming_the_label_only(
        server: EsploraServer, backend: EsploraBackend, busy: ScriptRef, mode: str) -> None:
    server.faults.set(mode)
    with pytest.raises(BackendError) as err:
        backend.scan([busy], 0, soon())
    message = str(err.value)
    assert message.startswith(LABEL) and "KEY-SECRET" not in message and "/api" not in message
    assert server.faults.applied >= 1


@pytest.mark.parametrize("mode", ["error", "garbage", "close"])
def test_tip_faults_are_backend_errors(server: EsploraServer, backend: EsploraBackend, mode: str) -> None:
    server.faults.set(mode, match="/blocks/tip")
    with pytest.raises(BackendError, match="^" + LABEL):
        backend.tip(soon())


def test_a_page_gap_is_named_and_a_single_one_is_retried(
        chain: SimChain, server: EsploraServer, backend: EsploraBackend, busy: ScriptRef) -> None:
    server.faults.set("page_gap")
    with pytest.raises(BackendError, match="skipped or repeated"):
        backend.scan([busy], 0, soon())
    server.faults.set("page_gap", times=1)  # a block arriving between two pages looks the same: retried
    assert backend.scan([busy], 0, soon())[busy.script] == expected(chain, busy.script, 0)
    assert server.faults.applied == 1


def test_a_hanging_server_times_out(server: EsploraServer, backend: EsploraBackend, busy: ScriptRef) -> None:
    server.faults.set("hang", match="/txs")
    with pytest.raises(BackendError, match="no answer"):
        backend.scan([busy], 0, soon())  # the backend's 1 s timeout


def test_the_deadline_is_respected(server: EsploraServer, backend: EsploraBackend, busy: ScriptRef) -> None:
    server.faults.set("hang")
    with pytest.raises(BackendError, match="deadline"):
        backend.scan([busy], 0, time.monotonic() + 0.2)
    with pytest.raises(BackendError, match="deadline"):
        backend.tip(time.monotonic() - 1)


def test_closed_keep_alive_connections_are_reopened(
        chain: SimChain, server: EsploraServer, backend: EsploraBackend, busy: ScriptRef) -> None:
    assert backend.scan([busy], 0, soon())[busy.script].used
    server.drop_connections()
    assert backend.scan([busy], 0, soon())[busy.script] == expected(chain, busy.script, 0)


def test_a_script_without_address_is_read_by_scripthash(
        chain: SimChain, server: EsploraServer, backend: EsploraBackend, busy: ScriptRef) -> None:
    bare = ScriptRef("", busy.script)
    assert backend.scan([bare], 0, soon())[busy.script] == expected(chain, busy.script, 0)
    unused = ScriptRef("", "0014" + "ab" * 20)
    assert backend.scan([unused], 0, soon())[unused.script] == ScriptState(unused.script, False, ())


def test_many_addresses_concurrently_match_the_chain(chain: SimChain, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh")
    addresses = [w.address(0, 100 + i) for i in range(40)]
    chain.pay_batched([(a, 1_000 + i) for i, a in enumerate(addresses)], per_tx=7)
    chain.mine()
    refs = [ref(w, 0, 100 + i) for i in range(45)]
    states = backend.scan(refs, 0, soon())
    assert all(states[r.script] == expected(chain, r.script, 0) for r in refs)
    assert sum(len(s.coins) for s in states.values()) == 40


def test_transactions_cost_one_request_each(chain: SimChain, server: EsploraServer, backend: EsploraBackend) -> None:
    w = keys.wallet("wpkh", "esplora-details")
    fund = chain.pay([(w.address(0, 0), 90_000), (w.address(0, 1), 10_000)])
    chain.mine()
    spend = chain.spend([(fund, vout(chain, fund, w.address(0, 0)))],
                        [(OUTSIDER.address(0, 9), 60_000), (w.address(1, 0), 29_000)], w.signer())
    before = server.requests
    got = backend.transactions([fund, spend, fund], soon())
    assert server.requests - before == 2
    block = chain.tip()
    assert (got[fund].height, got[fund].block_hash, got[fund].timestamp) == (block.height, block.hash,
                                                                              block.timestamp)
    assert (got[spend].height, got[spend].block_hash, got[spend].timestamp) == (0, "", 0)
    assert got[spend].inputs == ((fund, vout(chain, fund, w.address(0, 0)), w.script(0, 0), 90_000),)
    assert got[spend].outputs == tuple(chain.tx(spend).outputs)
