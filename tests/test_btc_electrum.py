"""ElectrumBackend against the simulated Electrum server over a SimChain of real
signed transactions: tip and headers, deposits, spends with change, multisig,
mempool spends, reorgs, batching, TLS, keep-alive and every failure mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.chains.bitcoin.electrum import ElectrumBackend, scripthash
from auditor.chains.bitcoin.rawtx import parse_header_hex
from auditor.chains.bitcoin.types import Backend, BackendError, Coin, ScriptRef
from auditor.devbtc.chain import SimChain
from auditor.devbtc.electrum_server import ElectrumServer, self_signed_cert
from auditor.devbtc.keys import wallet
from auditor.settings import BackendSettings, Secret, redact_url

pytestmark = pytest.mark.integration

HOT = wallet("wpkh", "electrum-hot")
COLD = wallet("wsh-sortedmulti", "electrum-cold")
OUT = wallet("wpkh", "electrum-elsewhere")  # someone else's wallet: payments out go here


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def ref(w, branch: int = 0, index: int = 0) -> ScriptRef:  # type: ignore[no-untyped-def]
    return ScriptRef(address=w.address(branch, index), script=w.script(branch, index))


def make_backend(url: str, *, ca_file: Path | None = None, concurrency: int = 16, timeout: int = 5,
                 network: str = "regtest") -> ElectrumBackend:
    settings = BackendSettings(type="electrum", url=Secret(url), label=redact_url(url), timeout=timeout,
                               concurrency=concurrency, ca_file=ca_file)
    return ElectrumBackend(settings, network)


@pytest.fixture()
def chain() -> SimChain:
    return SimChain(faucet_coins=20)


@pytest.fixture()
def server(chain: SimChain) -> Iterator[ElectrumServer]:
    with ElectrumServer(chain) as srv:
        yield srv


@pytest.fixture()
def backend(server: ElectrumServer) -> Iterator[ElectrumBackend]:
    b = make_backend(server.url)
    yield b
    b.close()


def coins(backend: ElectrumBackend, r: ScriptRef, since: int) -> set[Coin]:
    return set(backend.scan([r], since, soon())[r.script].coins)


# --- tip and headers ----------------------------------------------------------------------


def test_backend_implements_the_protocol(backend: ElectrumBackend) -> None:
    assert isinstance(backend, Backend)


def test_scripthash_is_reversed_sha256_of_the_script() -> None:
    # the P2PKH script of the genesis coinbase key's hash160, example from the Electrum docs
    script = "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
    assert scripthash(script) == "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"


def test_tip_is_the_chain_tip_and_follows_new_blocks(chain: SimChain, backend: ElectrumBackend) -> None:
    tip = backend.tip(soon())
    assert (tip.height, tip.hash, tip.timestamp) == (chain.tip().height, chain.tip().hash, chain.tip().timestamp)
    assert parse_header_hex(chain.tip().header_hex).hash == tip.hash
    chain.mine(2)  # the server now also pushes a header notification on the kept connection
    assert backend.tip(soon()).hash == chain.tip().hash
    assert backend.tip(soon()).height == chain.tip().height


def test_block_hash_of_every_height(chain: SimChain, backend: ElectrumBackend) -> None:
    for height in (0, 1, chain.tip().height // 2, chain.tip().height):
        assert backend.block_hash(height, soon()) == chain.block(height).hash


def test_block_gives_hash_and_header_time(chain: SimChain, backend: ElectrumBackend) -> None:
    block = backend.block(5, soon())
    assert (block.height, block.hash, block.timestamp) == (5, chain.block(5).hash, chain.block(5).timestamp)


def test_block_hash_above_the_tip_is_a_backend_error(chain: SimChain, backend: ElectrumBackend) -> None:
    with pytest.raises(BackendError, match="blockchain.block.header failed"):
        backend.block_hash(chain.tip().height + 1, soon())


# --- coins ----------------------------------------------------------------------------------


def test_unused_script_is_unused_with_no_coins(backend: ElectrumBackend) -> None:
    r = ref(HOT, 0, 7)
    state = backend.scan([r], 0, soon())[r.script]
    assert (state.script, state.used, state.coins) == (r.script, False, ())


def test_confirmed_shallow_and_unconfirmed_deposits(chain: SimChain, backend: ElectrumBackend) -> None:
    r = ref(HOT, 0, 0)
    first = chain.pay([(r.address, 150_000)])
    chain.mine(3)
    deep = chain.tx(first).height
    second = chain.pay([(r.address, 20_000), (OUT.address(0, 0), 5_000)])
    chain.mine()
    third = chain.pay([(r.address, 7_000)])
    state = backend.scan([r], chain.tip().height - 6, soon())[r.script]
    assert state.used
    assert set(state.coins) == {
        Coin(first, 0, 150_000, deep),
        Coin(second, 0, 20_000, chain.tip().height),
        Coin(third, 0, 7_000, 0),
    }


def test_spend_with_change_reports_the_spent_coin_above_since(chain: SimChain, backend: ElectrumBackend) -> None:
    a, change = ref(HOT, 0, 1), ref(HOT, 1, 0)
    fund = chain.pay([(a.address, 300_000)])
    chain.mine()
    funded_at = chain.tip().height
    spend = chain.spend([(fund, 0)], [(OUT.address(0, 1), 100_000), (change.address, 199_000)], HOT.signer())
    chain.mine()
    spent_at = chain.tip().height
    assert coins(backend, a, spent_at - 1) == {Coin(fund, 0, 300_000, funded_at, spent_at, spend)}
    assert coins(backend, change, spent_at - 1) == {Coin(spend, 1, 199_000, spent_at)}
    # spent at or below `since`: may be left out (this backend leaves it out), the script stays used
    state = backend.scan([a], spent_at, soon())[a.script]
    assert state.used and state.coins == ()


def test_multisig_spend_in_the_mempool_then_mined(chain: SimChain, backend: ElectrumBackend) -> None:
    cold, hot = ref(COLD, 0, 0), ref(HOT, 0, 2)
    fund = chain.pay([(cold.address, 1_000_000)])
    chain.mine()
    funded_at = chain.tip().height
    move = chain.spend([(fund, 0)], [(hot.address, 400_000), (COLD.address(1, 0), 599_000)], COLD.signer())
    since = chain.tip().height
    assert coins(backend, cold, since) == {Coin(fund, 0, 1_000_000, funded_at, 0, move)}
    assert coins(backend, hot, since) == {Coin(move, 0, 400_000, 0)}
    chain.mine()
    assert coins(backend, cold, since) == {Coin(fund, 0, 1_000_000, funded_at, since + 1, move)}
    assert coins(backend, hot, since) == {Coin(move, 0, 400_000, since + 1)}


def test_mempool_coin_spent_in_the_mempool(chain: SimChain, backend: ElectrumBackend) -> None:
    # the spend has an unconfirmed parent: Electrum lists it at height -1, the backend at 0
    a = ref(HOT, 0, 3)
    fund = chain.pay([(a.address, 50_000)])
    spend = chain.spend([(fund, 0)], [(OUT.address(0, 2), 49_000)], HOT.signer())
    state = backend.scan([a], chain.tip().height, soon())[a.script]
    assert state.used and set(state.coins) == {Coin(fund, 0, 50_000, 0, 0, spend)}


def test_every_script_kind_funded_and_spent(chain: SimChain, backend: ElectrumBackend) -> None:
    kinds = ["pkh", "sh-wpkh", "wpkh", "wsh-sortedmulti", "wsh-multi"]
    wallets = [wallet(k, "electrum-kinds") for k in kinds]
    refs = [ref(w, 0, 0) for w in wallets]
    fund = chain.pay([(r.address, 10_000 * (i + 1)) for i, r in enumerate(refs)]
                     + [(wallet("tr", "electrum-kinds").address(0, 0), 77_000)])
    chain.mine()
    funded_at = chain.tip().height
    spends = {r.script: chain.spend([(fund, i)], [(OUT.address(0, 3 + i), 10_000 * (i + 1) - 500)], w.signer(),
                                    fee=500) for i, (w, r) in enumerate(zip(wallets, refs))}
    chain.mine()
    tr = ref(wallet("tr", "electrum-kinds"), 0, 0)
    states = backend.scan([*refs, tr], funded_at, soon())
    for i, r in enumerate(refs):
        assert set(states[r.script].coins) == {Coin(fund, i, 10_000 * (i + 1), funded_at, funded_at + 1,
                                                    spends[r.script])}, kinds[i]
    assert states[tr.script].coins == (Coin(fund, len(refs), 77_000, funded_at),)


def test_reorg_removing_a_deposit(chain: SimChain, backend: ElectrumBackend) -> None:
    a = ref(HOT, 0, 4)
    deposit = chain.pay([(a.address, 80_000)])
    chain.mine()
    assert coins(backend, a, 0) == {Coin(deposit, 0, 80_000, chain.tip().height)}
    chain.reorg(1, drop=[deposit])
    state = backend.scan([a], 0, soon())[a.script]
    assert (state.used, state.coins) == (False, ())
    assert backend.tip(soon()).hash == chain.tip().hash


def test_reorg_returning_a_deposit_to_the_mempool(chain: SimChain, backend: ElectrumBackend) -> None:
    a = ref(HOT, 0, 5)
    deposit = chain.pay([(a.address, 90_000)])
    chain.mine()
    chain.reorg(1)
    assert coins(backend, a, 0) == {Coin(deposit, 0, 90_000, 0)}


def test_chain_moving_between_history_and_coins_is_read_again(chain: SimChain, server: ElectrumServer,
                                                                 backend: ElectrumBackend) -> None:
    a = ref(HOT, 0, 6)
    fund = chain.pay([(a.address, 60_000)])
    chain.mine()
    moved = []

    def mine_once(method: str) -> None:
        if method == "blockchain.scripthash.listunspent" and not moved:
            moved.append(chain.spend([(fund, 0)], [(OUT.address(0, 9), 59_000)], HOT.signer()))

    server.on_call = mine_once
    state = backend.scan([a], chain.tip().height, soon())[a.script]
    assert moved and set(state.coins) == {Coin(fund, 0, 60_000, chain.tip().height, 0, moved[0])}


def test_script_changing_on_every_read_is_a_backend_error(chain: SimChain, server: ElectrumServer,
                                                         backend: ElectrumBackend) -> None:
    a = ref(HOT, 0, 12)
    chain.pay([(a.address, 10_000)])

    def pay_again(method: str) -> None:
        if method == "blockchain.scripthash.listunspent":
            chain.pay([(a.address, 1_000)])

    server.on_call = pay_again
    with pytest.raises(BackendError, match="changed on every one of 3 reads"):
        backend.scan([a], 0, soon())


def test_calls_from_two_threads_take_turns_on_the_connection(chain: SimChain, backend: ElectrumBackend) -> None:
    refs = [ref(HOT, 0, 200 + i) for i in range(40)]
    chain.pay([(r.address, 2_000) for r in refs])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: backend.scan(refs, 0, soon()), range(8)))
    assert all(states == results[0] for states in results)
    assert all(len(results[0][r.script].coins) == 1 for r in refs)


def test_many_scripts_batched_on_one_kept_connection(chain: SimChain, server: ElectrumServer) -> None:
    refs = [ref(HOT, 0, 100 + i) for i in range(120)]
    txid = chain.pay([(r.address, 1_000 + i) for i, r in enumerate(refs[:90])])
    chain.mine()
    backend = make_backend(server.url, concurrency=7)
    try:
        for _ in range(2):
            states = backend.scan(refs, chain.tip().height, soon())
            assert [states[r.script].used for r in refs] == [True] * 90 + [False] * 30
            assert [states[r.script].coins for r in refs[:90]] == [
                (Coin(txid, i, 1_000 + i, chain.tip().height),) for i in range(90)]
    finally:
        backend.close()
    assert server.connections == 1
    # server.version once; per scan: history of all, then coins and history again of the used ones
    # (no transaction fetched: nothing happened above `since`)
    assert server.requests == 1 + 2 * (120 + 90 + 90)


def test_duplicate_refs_give_one_state(chain: SimChain, backend: ElectrumBackend) -> None:
    a = ref(HOT, 0, 8)
    chain.pay([(a.address, 1_234)])
    states = backend.scan([a, a], 0, soon())
    assert list(states) == [a.script] and states[a.script].coins[0].value == 1_234


def test_connection_dropped_while_idle_is_opened_again(server: ElectrumServer, backend: ElectrumBackend) -> None:
    backend.tip(soon())
    server.drop_connections()
    time.sleep(0.05)
    assert backend.tip(soon()).height >= 0
    assert server.connections == 2


def test_server_on_another_network_is_refused(server: ElectrumServer) -> None:
    b = make_backend(server.url, network="bitcoin")
    with pytest.raises(BackendError, match="another chain.*point this backend at a bitcoin server"):
        b.tip(soon())


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture()
def tls_server(chain: SimChain, tmp_path: Path) -> Iterator[tuple[ElectrumServer, Path]]:
    cert, key = self_signed_cert(tmp_path)
    with ElectrumServer(chain, tls=(cert, key)) as srv:
        yield srv, cert


def test_tls_with_the_self_signed_certificate_in_ca_file(chain: SimChain, tls_server: tuple[ElectrumServer, Path]) -> None:
    srv, cert = tls_server
    assert srv.url.startswith("ssl://")
    b = make_backend(srv.url, ca_file=cert)
    a = ref(HOT, 0, 9)
    txid = chain.pay([(a.address, 5_000)])
    assert b.tip(soon()).hash == chain.tip().hash
    assert coins(b, a, 0) == {Coin(txid, 0, 5_000, 0)}
    b.close()


def test_tls_without_the_certificate_is_refused(tls_server: tuple[ElectrumServer, Path], tmp_path: Path) -> None:
    srv, _ = tls_server
    (tmp_path / "other").mkdir()
    other, _ = self_signed_cert(tmp_path / "other")  # same host, another key: not the server's certificate
    for ca in (None, other):
        with pytest.raises(BackendError, match="TLS failed.*ca_file") as info:
            make_backend(srv.url, ca_file=ca).tip(soon())
        assert str(info.value).startswith(srv.url + ":")


def test_plain_tcp_to_a_tls_server_fails_cleanly(tls_server: tuple[ElectrumServer, Path]) -> None:
    srv, _ = tls_server
    with pytest.raises(BackendError):
        make_backend(srv.url.replace("ssl://", "tcp://"), timeout=1).tip(soon(3))


# --- failures -------------------------------------------------------------------------------

FAULTS = [
    ("error", "server.version"),
    ("error", "headers.subscribe"),
    ("error", "get_history"),
    ("error", "listunspent"),
    ("error", "transaction.get"),
    ("garbage", "get_history"),
    ("garbage", "listunspent"),
    ("close", "get_history"),
    ("close", "transaction.get"),
    ("shape", "get_history"),
    ("shape", "listunspent"),
    ("shape", "transaction.get"),
    ("shape", "headers.subscribe"),
    ("bad_value", "listunspent"),
    ("wrong_tx", "transaction.get"),
    ("hang", "listunspent"),
]


@pytest.mark.parametrize(("mode", "match"), FAULTS, ids=[f"{m}-{e}" for m, e in FAULTS])
def test_every_fault_is_a_backend_error_naming_only_the_label(mode: str, match: str, chain: SimChain,
                                                              server: ElectrumServer) -> None:
    a = ref(HOT, 0, 10)
    fund = chain.pay([(a.address, 70_000), (a.address, 30_000)])  # one coin spent in the mempool, one kept
    chain.mine()
    chain.spend([(fund, 0)], [(OUT.address(0, 4), 69_000)], HOT.signer())
    url = server.url
    b = make_backend(url, timeout=1)
    label = b.label
    server.faults.set(mode, match)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        b.tip(soon(2))
        b.scan([a], chain.tip().height, soon(2))
    assert str(info.value).startswith(label + ":")
    assert time.monotonic() - started < 5  # bounded by the timeout, not the 30 s hang
    server.faults.clear()
    assert b.scan([a], chain.tip().height, soon())[a.script].used  # recovers on a new connection
    b.close()


def test_deadline_bounds_a_hanging_server(chain: SimChain, server: ElectrumServer) -> None:
    b = make_backend(server.url, timeout=30)
    b.tip(soon())
    server.faults.set("hang", "get_history")
    started = time.monotonic()
    with pytest.raises(BackendError, match="deadline"):
        b.scan([ref(HOT, 0, 11)], 0, time.monotonic() + 0.3)
    assert time.monotonic() - started < 5


def test_deadline_already_passed_makes_no_call(server: ElectrumServer, backend: ElectrumBackend) -> None:
    with pytest.raises(BackendError, match="deadline"):
        backend.tip(time.monotonic() - 1)
    assert server.requests == 0


def test_refused_connection_is_a_backend_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=f"^tcp://127.0.0.1:{port}: connection failed"):
        make_backend(f"tcp://127.0.0.1:{port}").tip(soon())


@pytest.mark.parametrize("url", ["http://127.0.0.1:50001", "tcp://127.0.0.1", "ssl://:50002", "tcp://h:notaport"])
def test_url_that_is_not_tcp_or_ssl_host_port_is_refused(url: str) -> None:
    settings = BackendSettings(type="electrum", url=Secret(url), label="electrum-1")
    with pytest.raises(BackendError, match="^electrum-1: an electrum url is tcp://host:port or ssl://host:port"):
        ElectrumBackend(settings, "regtest")


# --- transactions -------------------------------------------------------------------------


def test_merkle_branch_of_every_position_leads_to_the_header_root(chain: SimChain) -> None:
    from auditor.chains.bitcoin.rawtx import merkle_branch_root
    from auditor.devbtc.electrum_server import merkle_branch

    OUTS = [wallet("wpkh", f"electrum-merkle-{i}") for i in range(5)]
    for w in OUTS:  # a block of 6 transactions (with the coinbase): odd levels on the way up
        chain.pay([(w.address(0, 0), 10_000)])
    chain.mine()
    block = chain.tip()
    root = parse_header_hex(block.header_hex).merkle_root
    for pos, txid in enumerate(block.txids):
        assert merkle_branch_root(txid, merkle_branch(list(block.txids), pos), pos) == root
    with pytest.raises(ValueError, match="does not fit"):
        merkle_branch_root(block.txids[0], merkle_branch(list(block.txids), 0), 8)


def test_transaction_heights_come_from_a_script_the_scan_read(chain: SimChain, server: ElectrumServer,
                                                              backend: ElectrumBackend,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fund = chain.pay([(HOT.address(0, 20), 80_000)])
    chain.mine()
    spend = chain.spend([(fund, 0)], [(OUT.address(0, 20), 50_000), (HOT.address(1, 20), 29_000)], HOT.signer())
    chain.mine()
    asked: list[str | None] = []
    history = server._history
    monkeypatch.setattr(server, "_history", lambda script: asked.append(script) or history(script))
    fresh = make_backend(server.url)
    fresh.transactions([spend], soon())
    assert asked == [OUT.script(0, 20)]  # nothing read before: the first output's history
    fresh.close()
    backend.scan([ref(HOT, 0, 20), ref(HOT, 1, 20)], 0, soon())
    asked.clear()
    detail = backend.transactions([spend], soon())[spend]
    assert asked and set(asked) <= {HOT.script(0, 20), HOT.script(1, 20)}  # own scripts, never OUT's
    assert (detail.height, detail.block_hash) == (chain.height(), chain.tip().hash)
    assert detail.inputs == ((fund, 0, HOT.script(0, 20), 80_000),)


def test_previous_transactions_are_read_once_and_cached(chain: SimChain, server: ElectrumServer,
                                                        backend: ElectrumBackend) -> None:
    fund = chain.pay([(HOT.address(0, 21), 80_000), (HOT.address(0, 22), 70_000)])
    chain.mine()
    spend = chain.spend([(fund, 0), (fund, 1)], [(OUT.address(0, 21), 140_000)], HOT.signer(), fee=10_000)
    counted: list[str] = []
    server.on_call = counted.append
    detail = backend.transactions([spend], soon())[spend]
    assert counted.count("blockchain.transaction.get") == 2  # the spend and its one parent
    assert detail.height == 0 and sum(i[3] for i in detail.inputs) == 150_000
    counted.clear()
    backend.transactions([spend, fund], soon())
    assert counted.count("blockchain.transaction.get") == 1  # only the faucet's coin is new
