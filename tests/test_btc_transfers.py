"""Bitcoin transfer ingestion: `bitcoin_transfers` over `TxDetail`s, and the same
details (hence the same transfers) read through each of the three backends from
one simulated chain of real signed transactions: a deposit, a withdrawal with
change, a sweep deposit → hot, a 2-of-3 cold → hot move and mempool spends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from auditor.chains.bitcoin.addresses import address_script
from auditor.chains.bitcoin.bitcoind import BitcoindBackend
from auditor.chains.bitcoin.details import make_detail, wanted_txids
from auditor.chains.bitcoin.electrum import ElectrumBackend
from auditor.chains.bitcoin.esplora import EsploraBackend
from auditor.chains.bitcoin.script_address import script_address, script_name
from auditor.chains.bitcoin.transfers import bitcoin_transfers
from auditor.chains.bitcoin.types import Backend, BackendError, ScriptRef, TxDetail
from auditor.devbtc import keys
from auditor.devbtc.bitcoind_server import BitcoindServer
from auditor.devbtc.chain import COIN, SimChain
from auditor.devbtc.codec import address_to_script, script_to_address
from auditor.devbtc.electrum_server import ElectrumServer
from auditor.devbtc.esplora_server import EsploraServer
from auditor.devbtc.faults import Faults
from auditor.model import Transfer
from auditor.settings import BackendSettings, Secret

CHAIN, ASSET = "btc", "BTC"


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


# ---------------------------------------------------------------- addresses of scripts


@pytest.mark.parametrize(("script", "network", "address"), [
    ("0014751e76e8199196d454941c45d1b3a323f1433bd6", "bitcoin", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
    ("00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262", "testnet",
     "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
    ("512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "bitcoin",
     "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
    ("5210751e76e8199196d454941c45d1b3a323", "bitcoin", "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs"),  # BIP 350 v2
    ("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac", "bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
    ("a914f815b036d9bbbce5e9f2a00abd1bf3dc91e9551087", "bitcoin", "3QJmV3qfvL9SuYo34YihAf3sRCW3qSinyC"),
])
def test_script_address_matches_the_bip_vectors(script: str, network: str, address: str) -> None:
    assert script_address(script, network) == address


def test_script_address_round_trips_every_wallet_kind_on_regtest() -> None:
    scripts = [w.script(b, i) for w in keys.all_wallets() for b in (0, 1) for i in range(3)]
    for script in scripts:
        address = script_address(script, "regtest")
        assert address is not None and address_script(address, "regtest") == script
        assert address == script_to_address(bytes.fromhex(script))  # the simulator's own encoder agrees


@pytest.mark.parametrize("script", [
    "6a0b68656c6c6f20776f726c64",  # OP_RETURN
    "2102" + "11" * 32 + "ac",  # bare public key
    "0015" + "22" * 21,  # v0 program of 21 bytes: unspendable, no address
    "",
    "76a914" + "33" * 20 + "88",  # P2PKH cut short
])
def test_scripts_without_an_address_are_named_by_their_hex(script: str) -> None:
    assert script_address(script, "bitcoin") is None
    assert script_name(script, "bitcoin") == "script:" + script


# ---------------------------------------------------------------- details checks


def test_make_detail_refuses_outputs_worth_more_than_the_inputs() -> None:
    with pytest.raises(ValueError, match="exceed its inputs"):
        make_detail("aa" * 32, 5, "bb" * 32, 1, [("cc" * 32, 0, "51", 1000)], [("51", 1001)])
    assert make_detail("aa" * 32, 0, "", 0, [], [("51", 5 * COIN)]).inputs == ()  # a coinbase pays from nothing


@pytest.mark.parametrize(("height", "block_hash", "timestamp"), [(0, "bb" * 32, 0), (5, "", 1), (0, "", 7),
                                                                  (5, "bb" * 32, 0), (-1, "", 0)])
def test_make_detail_refuses_a_half_block_position(height: int, block_hash: str, timestamp: int) -> None:
    with pytest.raises(ValueError, match="block"):
        make_detail("aa" * 32, height, block_hash, timestamp, [("cc" * 32, 0, "51", 1000)], [("51", 900)])


def test_wanted_txids_drops_repeats_and_refuses_what_is_not_a_txid() -> None:
    assert wanted_txids(["aa" * 32, "bb" * 32, "aa" * 32]) == ["aa" * 32, "bb" * 32]
    with pytest.raises(ValueError, match="not a txid"):
        wanted_txids(["AA" * 32])


# ---------------------------------------------------------------- bitcoin_transfers on hand-made details

A, B, C = "a" * 64, "b" * 64, "c" * 64
HOT1, HOT2, COLD1 = "0014" + "01" * 20, "0014" + "02" * 20, "0020" + "03" * 32
FOREIGN1, FOREIGN2 = "0014" + "f1" * 20, "a914" + "f2" * 20 + "87"
OWN = {HOT1: ("hot", script_name(HOT1, "bitcoin")), HOT2: ("hot", script_name(HOT2, "bitcoin")),
       COLD1: ("cold", script_name(COLD1, "bitcoin"))}


def addr(script: str) -> str:
    return script_name(script, "bitcoin")


def detail(inputs: list[tuple[str, int]], outputs: list[tuple[str, int]], *, txid: str = A,
           height: int = 7) -> TxDetail:
    return TxDetail(txid, height, ("e" * 64) if height else "", 1_700_000_000 if height else 0,
                    tuple((C, i, s, v) for i, (s, v) in enumerate(inputs)), tuple(outputs))


def transfers(*details: TxDetail) -> list[Transfer]:
    return bitcoin_transfers(CHAIN, ASSET, details, OWN, "bitcoin")


def test_withdrawal_with_change_is_one_outflow_and_the_fee() -> None:
    got = transfers(detail([(HOT1, 10_000)], [(FOREIGN1, 6_000), (HOT2, 3_500)]))
    assert [(t.index, t.kind, t.amount, t.sender, t.recipient, t.wallet_from, t.wallet_to, t.counterparties)
            for t in got] == [(-1, "fee", 500, addr(HOT1), "", "hot", None, ()),
                              (0, "native", 6_000, addr(HOT1), addr(FOREIGN1), "hot", None, (addr(FOREIGN1),))]
    assert all(t.direction == "out" and (t.block, t.timestamp) == (7, 1_700_000_000) for t in got)


def test_move_to_another_own_wallet_is_internal() -> None:
    got = transfers(detail([(COLD1, 10_000)], [(HOT1, 9_000), (COLD1, 900)]))
    assert [(t.index, t.direction, t.amount, t.wallet_from, t.wallet_to, t.recipient) for t in got] == [
        (-1, "out", 100, "cold", None, ""), (0, "internal", 9_000, "cold", "hot", addr(HOT1))]
    assert got[1].counterparties == ()


def test_deposit_names_every_distinct_input_address_as_counterparty() -> None:
    got = transfers(detail([(FOREIGN1, 5_000), (FOREIGN2, 5_000), (FOREIGN1, 1_000)],
                           [(FOREIGN2, 2_000), (HOT1, 8_000)]))
    assert [(t.index, t.direction, t.amount, t.sender, t.recipient, t.wallet_to) for t in got] == [
        (1, "in", 8_000, addr(FOREIGN1), addr(HOT1), "hot")]
    assert got[0].counterparties == (addr(FOREIGN1), addr(FOREIGN2))


def test_transaction_touching_no_own_script_gives_nothing() -> None:
    assert transfers(detail([(FOREIGN1, 5_000)], [(FOREIGN2, 4_000)])) == []


def test_coinjoin_with_foreign_inputs_charges_no_fee() -> None:
    got = transfers(detail([(FOREIGN1, 10_000), (HOT1, 10_000)], [(FOREIGN2, 9_900), (HOT2, 9_900)]))
    assert [(t.kind, t.index, t.amount, t.direction) for t in got] == [("native", 0, 9_900, "out")]


def test_script_without_an_address_is_a_script_recipient_and_zero_outputs_are_skipped() -> None:
    bare = "2102" + "11" * 32 + "ac"
    got = transfers(detail([(HOT1, 10_000)], [("6a0401020304", 0), (bare, 9_000)]))
    assert [(t.index, t.recipient, t.counterparties) for t in got if t.kind == "native"] == [
        (1, "script:" + bare, ("script:" + bare,))]


def test_inputs_of_two_own_wallets_are_charged_to_the_first_ones_wallet() -> None:
    got = transfers(detail([(COLD1, 5_000), (HOT1, 5_000)], [(FOREIGN1, 9_000), (HOT2, 500)]))
    assert [(t.index, t.wallet_from, t.wallet_to, t.sender, t.amount) for t in got] == [
        (-1, "cold", None, addr(COLD1), 500), (0, "cold", None, addr(COLD1), 9_000),
        (1, "cold", "hot", addr(COLD1), 500)]


def test_coinbase_paying_an_own_script_has_no_counterparty() -> None:
    got = transfers(TxDetail(A, 9, "e" * 64, 5, (), ((HOT1, 50 * COIN),)))
    assert [(t.direction, t.amount, t.sender, t.counterparties) for t in got] == [("in", 50 * COIN, "", ())]


def test_order_is_block_tx_index_whatever_the_input_order() -> None:
    d1 = detail([(HOT1, 10_000)], [(FOREIGN1, 6_000), (FOREIGN2, 3_000)], txid=B, height=9)
    d2 = detail([(FOREIGN1, 10_000)], [(HOT1, 9_000)], txid=A, height=9)
    d3 = detail([(HOT1, 10_000)], [(FOREIGN1, 9_000)], txid=C, height=0)
    want = [(0, C, -1), (0, C, 0), (9, A, 0), (9, B, -1), (9, B, 0), (9, B, 1)]
    for order in ([d1, d2, d3], [d3, d2, d1], [d2, d3, d1]):
        assert [(t.block, t.tx, t.index) for t in transfers(*order)] == want
    mempool = transfers(d3)
    assert all((t.block, t.block_hash, t.timestamp) == (0, "", 0) for t in mempool)


# ---------------------------------------------------------------- the same chain through three backends

DEPOSIT = keys.wallet("wpkh", "f3-deposit")
HOT = keys.wallet("sh-wpkh", "f3-hot")
COLD = keys.wallet("wsh-sortedmulti", "f3-cold")
OUTSIDE = keys.wallet("pkh", "f3-outsider")


@dataclass
class World:
    chain: SimChain
    start: int  # height before the scenario
    txs: dict[str, str]  # name → txid
    own: dict[str, tuple[str, str]]
    refs: list[ScriptRef]
    servers: dict[str, EsploraServer | ElectrumServer | BitcoindServer]


def _vout(chain: SimChain, txid: str, address: str) -> int:
    script = address_to_script(address)
    return next(i for i, (s, _) in enumerate(chain.tx(txid).outputs) if s == script)


def _scenario(chain: SimChain) -> dict[str, str]:
    d0, h0, c0 = DEPOSIT.address(0, 0), HOT.address(0, 0), COLD.address(0, 0)
    fund = chain.pay([(d0, 2 * COIN), (h0, 5 * COIN), (c0, 10 * COIN)])
    chain.mine()
    sweep = chain.spend([(fund, _vout(chain, fund, d0))], [(HOT.address(0, 1), 2 * COIN - 1_000)],
                        DEPOSIT.signer(), fee=1_000)
    withdrawal = chain.spend([(fund, _vout(chain, fund, h0))],
                             [(OUTSIDE.address(0, 0), COIN), (HOT.address(1, 0), 4 * COIN - 2_000)],
                             HOT.signer(), fee=2_000)
    cold_move = chain.spend([(fund, _vout(chain, fund, c0))],
                            [(COLD.address(1, 0), 7 * COIN - 5_000), (HOT.address(0, 2), 3 * COIN)],
                            COLD.signer(), fee=5_000)
    chain.mine(2)
    pending = chain.spend([(withdrawal, 1)], [(OUTSIDE.address(0, 1), COIN // 2),
                                              (HOT.address(1, 1), 4 * COIN - 2_000 - COIN // 2 - 1_500)],
                          HOT.signer(), fee=1_500)
    left = chain.tx(pending).outputs[1][1]
    chained = chain.spend([(pending, 1)], [(OUTSIDE.address(0, 2), COIN), (HOT.address(1, 2), left - COIN - 700)],
                          HOT.signer(), fee=700)
    return {"deposit": fund, "sweep": sweep, "withdrawal": withdrawal, "cold_move": cold_move,
            "pending": pending, "chained": chained}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    chain = SimChain(clock=lambda: 1_700_000_000, faucet_coins=10)
    start = chain.height()
    txs = _scenario(chain)
    own: dict[str, tuple[str, str]] = {}
    refs = []
    for name, w in (("deposit", DEPOSIT), ("hot", HOT), ("cold", COLD)):
        for branch in (0, 1):
            for i in range(3):
                own[w.script(branch, i)] = (name, w.address(branch, i))
                refs.append(ScriptRef(w.address(branch, i), w.script(branch, i), w.branch_descriptor(branch), i))
    servers: dict[str, EsploraServer | ElectrumServer | BitcoindServer] = {
        "esplora": EsploraServer(chain, base_path="/api/KEY-SECRET").start(),
        "electrum": ElectrumServer(chain, faults=Faults(hang_seconds=5)).start(),
        "bitcoind": BitcoindServer(chain, faults=Faults(hang_seconds=5)).start(),
    }
    servers["esplora"].faults.hang_seconds = 5
    yield World(chain, start, txs, own, refs, servers)
    for srv in servers.values():
        srv.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        for srv in request.getfixturevalue("world").servers.values():
            srv.faults.clear()


def make(world: World, kind: str, *, timeout: int = 2) -> Backend:
    srv = world.servers[kind]
    if isinstance(srv, BitcoindServer):
        b: Backend = BitcoindBackend(BackendSettings("bitcoind", Secret(srv.url_with()), srv.url, timeout=timeout),
                                     "regtest")
        b.scan(world.refs, world.start, soon())  # a node without -txindex finds blocks by what scans saw
        return b
    if isinstance(srv, ElectrumServer):
        return ElectrumBackend(BackendSettings("electrum", Secret(srv.url), srv.url, timeout=timeout), "regtest")
    return EsploraBackend(BackendSettings("esplora", Secret(srv.url), "esplora-1", timeout=timeout,
                                          concurrency=4), "regtest")


def oracle(chain: SimChain, txid: str) -> TxDetail:
    """The detail straight from the simulated chain."""
    t = chain.tx(txid)
    inputs = tuple((p, v, *chain.tx(p).outputs[v]) for p, v in t.inputs)
    if t.height == 0:
        return TxDetail(txid, 0, "", 0, inputs, tuple(t.outputs))
    block = chain.block(t.height)
    return TxDetail(txid, t.height, block.hash, block.timestamp, inputs, tuple(t.outputs))


KINDS = ["esplora", "electrum", "bitcoind"]


@pytest.mark.parametrize("kind", KINDS)
def test_details_match_the_chain_through_every_backend(world: World, kind: str) -> None:
    b = make(world, kind)
    txids = list(world.txs.values())
    got = b.transactions(txids, soon())
    assert got == {t: oracle(world.chain, t) for t in txids}
    assert b.transactions([], soon()) == {}
    b.close()


def expected_transfers(world: World) -> list[Transfer]:
    chain, tx = world.chain, world.txs
    faucet = chain.faucet.address
    d0, h0, c0 = DEPOSIT.address(0, 0), HOT.address(0, 0), COLD.address(0, 0)

    def at(name: str) -> tuple[int, str, int]:
        t = chain.tx(tx[name])
        return (t.height, chain.block(t.height).hash, chain.block(t.height).timestamp) if t.height else (0, "", 0)

    def t(name: str, index: int, amount: int, sender: str, recipient: str, frm: str | None, to: str | None,
          cps: tuple[str, ...] = (), kind: str = "native") -> Transfer:
        block, block_hash, ts = at(name)
        return Transfer(CHAIN, block, block_hash, tx[name], index, "fee" if kind == "fee" else "native", ASSET,
                        amount, sender, recipient, frm, to, cps, ts)

    out1, out2, out3 = (OUTSIDE.address(0, i) for i in range(3))
    h10, h11 = HOT.address(1, 0), HOT.address(1, 1)
    fund = tx["deposit"]
    want = [
        t("deposit", _vout(chain, fund, d0), 2 * COIN, faucet, d0, None, "deposit", (faucet,)),
        t("deposit", _vout(chain, fund, h0), 5 * COIN, faucet, h0, None, "hot", (faucet,)),
        t("deposit", _vout(chain, fund, c0), 10 * COIN, faucet, c0, None, "cold", (faucet,)),
        t("sweep", -1, 1_000, d0, "", "deposit", None, kind="fee"),
        t("sweep", 0, 2 * COIN - 1_000, d0, HOT.address(0, 1), "deposit", "hot"),
        t("withdrawal", -1, 2_000, h0, "", "hot", None, kind="fee"),
        t("withdrawal", 0, COIN, h0, out1, "hot", None, (out1,)),
        t("cold_move", -1, 5_000, c0, "", "cold", None, kind="fee"),
        t("cold_move", 1, 3 * COIN, c0, HOT.address(0, 2), "cold", "hot"),
        t("pending", -1, 1_500, h10, "", "hot", None, kind="fee"),
        t("pending", 0, COIN // 2, h10, out2, "hot", None, (out2,)),
        t("chained", -1, 700, h11, "", "hot", None, kind="fee"),
        t("chained", 0, COIN, h11, out3, "hot", None, (out3,)),
    ]
    return sorted(want, key=lambda x: (x.block, x.tx, x.index))


@pytest.mark.parametrize("kind", KINDS)
def test_transfers_of_the_scenario_are_the_same_through_every_backend(world: World, kind: str) -> None:
    b = make(world, kind)
    details = b.transactions(list(world.txs.values()), soon())
    b.close()
    got = bitcoin_transfers(CHAIN, ASSET, details.values(), world.own, "regtest")
    assert got == expected_transfers(world)
    by_tx = {name: [x for x in got if x.tx == txid] for name, txid in world.txs.items()}
    assert [x.direction for x in by_tx["sweep"] if x.kind == "native"] == ["internal"]
    assert [x.direction for x in by_tx["cold_move"] if x.kind == "native"] == ["internal"]
    assert not any(x.recipient == HOT.address(1, 0) for x in by_tx["withdrawal"])  # change: no transfer
    assert {x.block for x in by_tx["pending"] + by_tx["chained"]} == {0}


def test_transfers_balance_the_own_wallets_coins(world: World) -> None:
    """inflows − outflows − fees per wallet = what its scripts gained in the scenario."""
    b = make(world, "esplora")
    details = b.transactions(list(world.txs.values()), soon())
    b.close()
    net: dict[str, int] = {}
    for x in bitcoin_transfers(CHAIN, ASSET, details.values(), world.own, "regtest"):
        if x.wallet_to is not None and x.kind == "native":
            net[x.wallet_to] = net.get(x.wallet_to, 0) + x.amount
        if x.wallet_from is not None:
            net[x.wallet_from] = net.get(x.wallet_from, 0) - x.amount
    held: dict[str, int] = {}
    for script, (wallet, _) in world.own.items():
        held[wallet] = held.get(wallet, 0) + sum(coin[2] for coin in world.chain.utxos(script))
    assert net == {w: held.get(w, 0) for w in net}


# ---------------------------------------------------------------- faults


FAULTS: list[tuple[str, str, str]] = [  # (backend, mode, match)
    ("esplora", "error", "/tx/"),
    ("esplora", "garbage", "/tx/"),
    ("esplora", "bad_value", "/tx/"),
    ("esplora", "close", "/tx/"),
    ("esplora", "hang", "/tx/"),
    ("electrum", "error", "transaction.get"),
    ("electrum", "wrong_tx", "transaction.get"),
    ("electrum", "bad_merkle", "get_merkle"),
    ("electrum", "shape", "get_merkle"),
    ("electrum", "error", "get_history"),
    ("electrum", "shape", "block.header"),
    ("electrum", "close", "transaction.get"),
    ("bitcoind", "error", "getrawtransaction"),
    ("bitcoind", "subsat", "getrawtransaction"),
    ("bitcoind", "subsat", "gettxout"),
    ("bitcoind", "shape", "getblockheader"),
    ("bitcoind", "shape", "getrawtransaction"),
    ("bitcoind", "garbage", "getblockhash"),
    ("bitcoind", "http500", "gettxout"),
    ("bitcoind", "hang", "getrawtransaction"),
]


@pytest.mark.parametrize(("kind", "mode", "match"), FAULTS, ids=[f"{k}-{m}-{e}" for k, m, e in FAULTS])
def test_every_fault_is_a_backend_error_naming_only_the_label(world: World, kind: str, mode: str,
                                                              match: str) -> None:
    b = make(world, kind, timeout=1)
    srv = world.servers[kind]
    # gettxout is asked only for an output the request's other transactions do not hold
    txids = [world.txs["pending"]] if match == "gettxout" else list(world.txs.values())
    srv.faults.set(mode, match)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        b.transactions(txids, soon(3))
    text = str(info.value)
    assert srv.faults.applied >= 1
    assert text.startswith(b.label + ": ") and "KEY-SECRET" not in text and "rpc-secret-pw" not in text
    assert time.monotonic() - started < 4.5
    srv.faults.clear()
    assert len(b.transactions(list(world.txs.values()), soon())) == len(world.txs)  # recovers
    b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_txid_the_server_does_not_know_is_a_backend_error(world: World, kind: str) -> None:
    b = make(world, kind)
    with pytest.raises(BackendError, match="^" + b.label.replace(".", r"\.")):
        b.transactions([world.txs["sweep"], "ab" * 32], soon())
    b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_txid_that_is_not_hex_is_a_caller_error(world: World, kind: str) -> None:
    b = make(world, kind)
    with pytest.raises(ValueError, match="not a txid"):
        b.transactions(["not-a-txid"], soon())
    b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_passed_deadline_is_a_backend_error(world: World, kind: str) -> None:
    b = make(world, kind)
    with pytest.raises(BackendError):
        b.transactions([world.txs["sweep"]], time.monotonic() - 1)
    b.close()


# ---------------------------------------------------------------- reorgs (a chain of their own)


@pytest.fixture
def small() -> SimChain:
    return SimChain(clock=lambda: 1_700_000_000, faucet_coins=3)


def _backend_on(kind: str, chain: SimChain) -> tuple[Backend, Callable[[], None]]:
    if kind == "esplora":
        srv: EsploraServer | ElectrumServer | BitcoindServer = EsploraServer(chain).start()
        b: Backend = EsploraBackend(BackendSettings("esplora", Secret(srv.url), "e"), "regtest")
    elif kind == "electrum":
        srv = ElectrumServer(chain).start()
        b = ElectrumBackend(BackendSettings("electrum", Secret(srv.url), "e"), "regtest")
    else:
        srv = BitcoindServer(chain, txindex=True).start()
        b = BitcoindBackend(BackendSettings("bitcoind", Secret(srv.url_with()), "b"), "regtest")

    def stop() -> None:
        b.close()
        srv.stop()
    return b, stop


@pytest.mark.parametrize("kind", KINDS)
def test_a_reorg_moves_a_transaction_back_to_the_mempool_and_a_dropped_one_fails(small: SimChain,
                                                                                   kind: str) -> None:
    kept = small.pay([(HOT.address(0, 5), 40_000)])
    gone = small.pay([(HOT.address(0, 6), 50_000)])
    small.mine()
    b, stop = _backend_on(kind, small)
    try:
        assert b.transactions([kept], soon())[kept].height == small.height()
        small.reorg(1, drop=[gone])
        assert b.transactions([kept], soon())[kept] == replace(oracle(small, kept), height=0)
        with pytest.raises(BackendError):
            b.transactions([gone], soon())
        small.mine()
        assert b.transactions([kept], soon())[kept] == oracle(small, kept)
    finally:
        stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_coinbase_has_no_inputs_through_every_backend(small: SimChain, kind: str) -> None:
    coinbase = small.block(1).txids[0]  # pays the faucet
    b, stop = _backend_on(kind, small)
    try:
        got = b.transactions([coinbase], soon())[coinbase]
    finally:
        stop()
    assert got == oracle(small, coinbase) and got.inputs == ()
