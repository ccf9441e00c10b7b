"""BitcoindBackend against the simulated Bitcoin Core JSON-RPC server: real signed
transactions funded, spent, mined and reorged, scans checked coin by coin; every
failure mode is a BackendError that names the backend by label only."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditor.chains.bitcoin import bitcoind
from auditor.chains.bitcoin.bitcoind import BitcoindBackend
from auditor.chains.bitcoin.bitcoind_rpc import Rpc, RpcFailure, descriptor_checksum, sats, with_checksum
from auditor.chains.bitcoin.client import BitcoinClient
from auditor.chains.bitcoin.types import Backend, BackendError, Coin, ScriptRef, ScriptState
from auditor.devbtc import keys
from auditor.devbtc.bitcoind_server import BitcoindServer
from auditor.devbtc.chain import COIN, SimChain
from auditor.devbtc.codec import address_to_script, sha256d
from auditor.devbtc.faults import Faults
from auditor.settings import BackendSettings, ChainSettings, Secret, WalletSettings

pytestmark = pytest.mark.integration

W = keys.wallet("wpkh", "bitcoind")
MS = keys.wallet("wsh-sortedmulti", "bitcoind")
OUT = keys.wallet("wpkh", "bitcoind-outsider")


@pytest.fixture
def chain() -> SimChain:
    return SimChain(clock=lambda: 1_700_000_000, faucet_coins=10)


@pytest.fixture
def server(chain: SimChain) -> Iterator[BitcoindServer]:
    with BitcoindServer(chain, faults=Faults(hang_seconds=20)) as srv:
        yield srv


def _backend(url: str, label: str, network: str = "regtest", **kw: Any) -> BitcoindBackend:
    return BitcoindBackend(BackendSettings("bitcoind", Secret(url), label, **kw), network)


@pytest.fixture
def backend(server: BitcoindServer) -> Iterator[BitcoindBackend]:
    b = _backend(server.url_with(), server.url, timeout=2)
    yield b
    b.close()


def _soon(seconds: float = 10) -> float:
    return time.monotonic() + seconds


def _refs(w: keys.TestWallet, branch: int, indexes: range | list[int]) -> list[ScriptRef]:
    return [ScriptRef(w.address(branch, i), w.script(branch, i), w.branch_descriptor(branch), i) for i in indexes]


def _coins(states: dict[str, ScriptState], w: keys.TestWallet, branch: int, index: int) -> tuple[Coin, ...]:
    return states[w.script(branch, index)].coins


def _vout(chain: SimChain, txid: str, address: str) -> int:
    return next(i for i, (s, _) in enumerate(chain.tx(txid).outputs) if s == address_to_script(address))


# ---------------------------------------------------------------- tip and blocks


def test_backend_implements_the_protocol(backend: BitcoindBackend) -> None:
    assert isinstance(backend, Backend)


def test_tip_is_the_nodes_best_block_with_header_time(chain: SimChain, backend: BitcoindBackend) -> None:
    chain.mine(2)
    tip = backend.tip(_soon())
    assert (tip.height, tip.hash, tip.timestamp) == (chain.height(), chain.tip().hash, chain.tip().timestamp)


def test_block_hash_and_block_read_the_active_chain(chain: SimChain, backend: BitcoindBackend) -> None:
    assert backend.block_hash(5, _soon()) == chain.block(5).hash
    b = backend.block(7, _soon())
    assert (b.height, b.hash, b.timestamp) == (7, chain.block(7).hash, chain.block(7).timestamp)
    with pytest.raises(BackendError, match="Block height out of range"):
        backend.block_hash(chain.height() + 1, _soon())


def test_network_mismatch_is_refused(chain: SimChain) -> None:
    with BitcoindServer(chain, chain_name="main") as srv:
        b = _backend(srv.url_with(), srv.url)
        with pytest.raises(BackendError, match="chain 'main' but this chain's network is 'regtest'"):
            b.tip(_soon())
    with BitcoindServer(chain, chain_name="testnet4") as srv:
        assert _backend(srv.url_with(), srv.url, "testnet").tip(_soon()).height == chain.height()


# ---------------------------------------------------------------- scans


def test_deposits_of_every_descriptor_type_found_coin_by_coin(chain: SimChain, backend: BitcoindBackend) -> None:
    wallets = [keys.wallet(k, "bitcoind-types") for k in keys.KINDS]
    payments = [(w.address(branch, i), 10_000 + 1000 * n + branch)
                for n, w in enumerate(wallets) for branch in (0, 1) for i in (0, 3)]
    txid = chain.pay(payments)
    chain.mine()
    refs = [r for w in wallets for branch in (0, 1) for r in _refs(w, branch, range(5))]
    states = backend.scan(refs, chain.height(), _soon())
    assert set(states) == {r.script for r in refs}
    for n, w in enumerate(wallets):
        for branch in (0, 1):
            for i in range(5):
                coins = _coins(states, w, branch, i)
                if i in (0, 3):
                    value = 10_000 + 1000 * n + branch
                    assert coins == (Coin(txid, _vout(chain, txid, w.address(branch, i)), value, chain.height()),)
                    assert states[w.script(branch, i)].used
                else:
                    assert coins == () and not states[w.script(branch, i)].used


def test_plain_address_refs_are_scanned_by_script(chain: SimChain, backend: BitcoindBackend) -> None:
    txid = chain.pay([(OUT.address(0, 9), 777)])
    chain.mine()
    ref = ScriptRef(OUT.address(0, 9), OUT.script(0, 9))
    states = backend.scan([ref], chain.height(), _soon())
    assert states[ref.script].coins == (Coin(txid, _vout(chain, txid, ref.address), 777, chain.height()),)


def test_coins_inside_the_range_but_not_asked_for_are_left_out(chain: SimChain, backend: BitcoindBackend) -> None:
    chain.pay([(W.address(0, 2), 5000), (W.address(0, 4), 6000)])
    chain.mine()
    states = backend.scan(_refs(W, 0, [0, 4]), chain.height(), _soon())
    assert set(states) == {W.script(0, 0), W.script(0, 4)}
    assert [c.value for c in _coins(states, W, 0, 4)] == [6000]


def test_far_apart_indexes_get_scan_objects_of_their_own(chain: SimChain, backend: BitcoindBackend) -> None:
    far = 1_500_000  # one range 0 … far would be refused by Core ("Range is too large")
    txid = chain.pay([(W.address(0, 12), 1111), (W.address(0, far), 2222)])
    chain.mine()
    states = backend.scan(_refs(W, 0, [12, far]), chain.height(), _soon())
    assert [c.value for c in _coins(states, W, 0, 12)] == [1111]
    assert _coins(states, W, 0, far) == (Coin(txid, _vout(chain, txid, W.address(0, far)), 2222, chain.height()),)


def test_exact_amounts_one_tenth_plus_two_tenths(chain: SimChain, backend: BitcoindBackend) -> None:
    chain.pay([(W.address(0, 5), 10_000_000), (W.address(0, 5), 20_000_000)])
    chain.mine()
    coins = _coins(backend.scan(_refs(W, 0, [5]), chain.height(), _soon()), W, 0, 5)
    assert sorted(c.value for c in coins) == [10_000_000, 20_000_000]
    assert sum(c.value for c in coins) == 30_000_000


def test_spend_in_mempool_marks_the_coin_and_adds_own_change(chain: SimChain, backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 1), 3 * COIN)])
    chain.mine()
    vout = _vout(chain, fund, W.address(0, 1))
    spend = chain.spend([(fund, vout)], [(OUT.address(0, 0), COIN), (W.address(1, 0), 2 * COIN - 1000)],
                        W.signer())
    refs = _refs(W, 0, [1]) + _refs(W, 1, [0])
    states = backend.scan(refs, chain.height(), _soon())
    assert _coins(states, W, 0, 1) == (Coin(fund, vout, 3 * COIN, chain.height(), 0, spend),)
    assert _coins(states, W, 1, 0) == (Coin(spend, _vout(chain, spend, W.address(1, 0)), 2 * COIN - 1000, 0),)


def test_chained_mempool_spends_are_followed(chain: SimChain, backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 6), COIN)])
    chain.mine()
    first = chain.spend([(fund, _vout(chain, fund, W.address(0, 6)))], [(W.address(1, 1), COIN - 1000)], W.signer())
    second = chain.spend([(first, 0)], [(W.address(1, 2), COIN - 2000)], W.signer())
    states = backend.scan(_refs(W, 0, [6]) + _refs(W, 1, [1, 2]), chain.height(), _soon())
    assert _coins(states, W, 1, 1) == (Coin(first, 0, COIN - 1000, 0, 0, second),)
    assert _coins(states, W, 1, 2) == (Coin(second, 0, COIN - 2000, 0),)


def test_spends_above_since_are_reported_with_creation_height(chain: SimChain, backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 7), 40_000), (W.address(0, 8), 50_000)])
    chain.mine()
    created = chain.height()
    v7, v8 = _vout(chain, fund, W.address(0, 7)), _vout(chain, fund, W.address(0, 8))
    early = chain.spend([(fund, v7)], [(OUT.address(0, 1), 39_000)], W.signer())
    chain.mine()
    late = chain.spend([(fund, v8)], [(OUT.address(0, 2), 49_000)], W.signer())
    chain.mine(2)
    refs = _refs(W, 0, [7, 8])
    states = backend.scan(refs, created, _soon())  # both spends above since
    assert _coins(states, W, 0, 7) == (Coin(fund, v7, 40_000, created, created + 1, early),)
    assert _coins(states, W, 0, 8) == (Coin(fund, v8, 50_000, created, created + 2, late),)
    states = backend.scan(refs, created + 1, _soon())  # the early spend is at since: may be left out
    assert _coins(states, W, 0, 7) == ()
    assert _coins(states, W, 0, 8) == (Coin(fund, v8, 50_000, created, created + 2, late),)


def test_multisig_spend_with_change(chain: SimChain, backend: BitcoindBackend) -> None:
    fund = chain.pay([(MS.address(0, 0), 5 * COIN)])
    chain.mine()
    vout = _vout(chain, fund, MS.address(0, 0))
    spend = chain.spend([(fund, vout)], [(OUT.address(0, 3), COIN), (MS.address(1, 0), 4 * COIN - 2000)],
                        MS.signer(), fee=2000)
    chain.mine()
    states = backend.scan(_refs(MS, 0, [0]) + _refs(MS, 1, [0]), chain.height() - 1, _soon())
    assert _coins(states, MS, 0, 0) == (Coin(fund, vout, 5 * COIN, chain.height() - 1, chain.height(), spend),)
    change = _vout(chain, spend, MS.address(1, 0))
    assert _coins(states, MS, 1, 0) == (Coin(spend, change, 4 * COIN - 2000, chain.height()),)


def test_shallow_coin_has_its_height_and_incoming_mempool_coin_is_not_seen(
        chain: SimChain, backend: BitcoindBackend) -> None:
    shallow = chain.pay([(W.address(0, 9), 1234)])
    chain.mine()
    chain.pay([(W.address(0, 10), 4321)])  # stays in the mempool: scantxoutset cannot see it
    states = backend.scan(_refs(W, 0, [9, 10]), chain.height(), _soon())
    assert _coins(states, W, 0, 9) == (Coin(shallow, _vout(chain, shallow, W.address(0, 9)), 1234, chain.height()),)
    assert _coins(states, W, 0, 10) == () and not states[W.script(0, 10)].used


def test_reorg_removing_a_deposit_removes_the_coin(chain: SimChain, backend: BitcoindBackend) -> None:
    txid = chain.pay([(W.address(0, 11), 99_000)])
    chain.mine()
    refs = _refs(W, 0, [11])
    assert len(_coins(backend.scan(refs, chain.height() - 1, _soon()), W, 0, 11)) == 1
    chain.reorg(1, drop=[txid])
    states = backend.scan(refs, chain.height() - 2, _soon())
    assert _coins(states, W, 0, 11) == () and not states[W.script(0, 11)].used


def test_reorg_returning_a_spend_to_the_mempool(chain: SimChain, backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 14), 88_000)])
    chain.mine()
    vout = _vout(chain, fund, W.address(0, 14))
    spend = chain.spend([(fund, vout)], [(OUT.address(0, 6), 87_000)], W.signer())
    chain.mine()
    refs = _refs(W, 0, [14])
    since = chain.height() - 2
    assert _coins(backend.scan(refs, since, _soon()), W, 0, 14)[0].spent_height == chain.height()
    chain.reorg(1)  # the spend goes back to the mempool; the cached block is gone from the chain
    assert _coins(backend.scan(refs, since, _soon()), W, 0, 14) == (Coin(fund, vout, 88_000, since + 1, 0, spend),)


def test_a_since_too_far_below_the_tip_is_refused(chain: SimChain, backend: BitcoindBackend,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bitcoind, "MAX_BLOCKS_ABOVE_SINCE", 5)
    with pytest.raises(BackendError, match="at most 5"):
        backend.scan(_refs(W, 0, [0]), chain.height() - 6, _soon())
    assert backend.scan(_refs(W, 0, [0]), chain.height() - 5, _soon())[W.script(0, 0)].coins == ()


def test_blocks_above_since_are_read_once(chain: SimChain, server: BitcoindServer, backend: BitcoindBackend) -> None:
    chain.mine(3)
    refs = _refs(W, 0, [0])
    backend.scan(refs, chain.height() - 3, _soon())
    assert server.calls["getblock"] == 3
    chain.mine()
    backend.scan(refs, chain.height() - 4, _soon())
    assert server.calls["getblock"] == 4  # only the new block


def test_no_refs_no_requests(server: BitcoindServer, backend: BitcoindBackend) -> None:
    assert backend.scan([], 0, _soon()) == {}
    assert server.requests == 0


def test_descriptor_core_reads_differently_is_refused(chain: SimChain, backend: BitcoindBackend) -> None:
    wrong = ScriptRef(OUT.address(0, 0), OUT.script(0, 0), W.branch_descriptor(0), 0)
    with pytest.raises(BackendError, match="derives .* at index 0"):
        backend.scan([wrong], chain.height(), _soon())


def test_calls_from_two_threads_take_turns(chain: SimChain, backend: BitcoindBackend) -> None:
    chain.pay([(W.address(0, 13), 4242)])
    chain.mine()
    results: list[dict[str, ScriptState]] = []
    threads = [threading.Thread(target=lambda: results.append(backend.scan(_refs(W, 0, [13]), chain.height(),
                                                                            _soon()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all([c.value for c in _coins(r, W, 0, 13)] == [4242] for r in results)


def test_bitcoin_client_reads_both_views_through_bitcoind(chain: SimChain, server: BitcoindServer) -> None:
    hot = keys.wallet("wpkh", "bitcoind-client")
    fund = chain.pay([(hot.address(0, 0), 100_000), (hot.address(0, 2), 20_000)])
    chain.mine(3)
    late = chain.pay([(hot.address(1, 0), 7_000)])
    chain.mine()  # at the tip: 1 confirmation, below confirmations=2
    chain.spend([(fund, _vout(chain, fund, hot.address(0, 0)))],
                [(OUT.address(0, 5), 30_000), (hot.address(1, 1), 69_000)], hot.signer())
    settings = ChainSettings(name="bitcoin", type="bitcoin", network="regtest", confirmations=2,
                             max_head_age=10**9, native_asset="BTC",
                             backends=(BackendSettings("bitcoind", Secret(server.url_with()), server.url),))
    wallet = WalletSettings(name="hot", chain="bitcoin", tier="hot", role="customer", addresses=(),
                            assets=("BTC",), descriptors=(hot.descriptor,), gap_limit=3)
    client = BitcoinClient(settings)
    try:
        reading = client.read([wallet], {}, _soon(20))
    finally:
        client.close()
    assert reading.ok, (reading.error, reading.problems)
    assert reading.settled is not None and reading.watch is not None
    settled = {a: v for (a, _), v in reading.settled.balances.items() if v}
    watch = {a: v for (a, _), v in reading.watch.balances.items() if v}
    assert settled == {hot.address(0, 0): 100_000, hot.address(0, 2): 20_000}  # spent only in the mempool
    assert watch == {hot.address(0, 2): 20_000, hot.address(1, 0): 7_000, hot.address(1, 1): 69_000}
    assert reading.settled.block.number == chain.height() - 1
    assert chain.tx(late).height == chain.height()


# ---------------------------------------------------------------- the simulated node itself


def _post(server: BitcoindServer, body: Any) -> httpx.Response:
    return httpx.post(server.url_with(), json=body, timeout=5)


def test_server_speaks_legacy_and_2_0_json_rpc_and_batches(chain: SimChain, server: BitcoindServer) -> None:
    legacy = _post(server, {"id": 1, "method": "nosuchmethod", "params": []})
    assert legacy.status_code == 404 and legacy.json()["error"]["code"] == -32601 and "result" in legacy.json()
    v2 = _post(server, {"jsonrpc": "2.0", "id": 2, "method": "getblockhash", "params": [99999]})
    assert v2.status_code == 200 and v2.json() == {"jsonrpc": "2.0", "error": {
        "code": -8, "message": "Block height out of range"}, "id": 2}
    batch = _post(server, [{"id": 3, "method": "getblockcount", "params": []},
                           {"id": 4, "method": "getblockhash", "params": [-1]}])
    assert batch.status_code == 200
    assert [r.get("result") for r in batch.json()] == [chain.height(), None]
    assert _post(server, {"jsonrpc": "2.0", "method": "getblockcount", "params": []}).status_code == 204
    assert httpx.post(server.url, json={"id": 1, "method": "getblockcount"}).status_code == 401


def test_server_scantxoutset_writes_amounts_like_core_and_desc_with_index(
        chain: SimChain, server: BitcoindServer) -> None:
    chain.pay([(W.address(0, 5), 12_345), (W.address(0, 5), 2_000_000_000)])
    chain.mine()
    desc = with_checksum(W.branch_descriptor(0))
    raw = _post(server, {"id": 1, "method": "scantxoutset", "params": ["start", [{"desc": desc, "range": 6}]]}).text
    assert '"amount":0.00012345,' in raw and '"amount":20.00000000,' in raw
    unspents = httpx.Response(200, text=raw).json()["result"]["unspents"]
    fingerprint = W.fingerprints[0]
    for u in unspents:
        m = re.fullmatch(rf"wpkh\(\[{fingerprint}/84h/1h/0h/0/(\d+)\](0[23][0-9a-f]{{64}})\)#([a-z0-9]{{8}})", u["desc"])
        assert m is not None and int(m[1]) == 5
        assert m[3] == descriptor_checksum(u["desc"].split("#")[0])
    bad = _post(server, {"id": 1, "method": "scantxoutset", "params": ["start", [desc[:-1] + "q"]]}).json()
    assert "does not match computed checksum" in bad["error"]["message"]


def test_server_getblock_verbosities(chain: SimChain, server: BitcoindServer) -> None:
    fund = chain.pay([(W.address(0, 3), 80_000)])
    chain.mine()
    spend = chain.spend([(fund, _vout(chain, fund, W.address(0, 3)))], [(OUT.address(0, 4), 79_000)], W.signer())
    chain.mine()
    tip = chain.tip()
    hexblock = _post(server, {"id": 1, "method": "getblock", "params": [tip.hash, 0]}).json()["result"]
    assert sha256d(bytes.fromhex(hexblock[:160]))[::-1].hex() == tip.hash
    one = _post(server, {"id": 1, "method": "getblock", "params": [tip.hash, 1]}).json()["result"]
    assert one["tx"] == list(tip.txids) and one["height"] == tip.height and one["confirmations"] == 1
    two = _post(server, {"id": 1, "method": "getblock", "params": [tip.hash, 2]}).json()["result"]
    assert [t["txid"] for t in two["tx"]] == list(tip.txids) and "prevout" not in two["tx"][1]["vin"][0]
    three = _post(server, {"id": 1, "method": "getblock", "params": [tip.hash, 3]}).json()["result"]
    tx = next(t for t in three["tx"] if t["txid"] == spend)
    assert tx["vin"][0]["prevout"]["height"] == tip.height - 1
    assert tx["vin"][0]["prevout"]["scriptPubKey"]["hex"] == W.script(0, 3)
    assert tx["fee"] == 0.00001 and "coinbase" in three["tx"][0]["vin"][0]


# ---------------------------------------------------------------- amounts


class _Canned(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture(scope="module")
def canned() -> Iterator[tuple[ThreadingHTTPServer, Rpc]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://u:p@127.0.0.1:{httpd.server_address[1]}"
    rpc = Rpc(BackendSettings("bitcoind", Secret(url), "canned"))
    yield httpd, rpc
    rpc.close()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("text, satoshis", [
    ("20999999.97690000", 2_099_999_997_690_000), ("0.00012345", 12_345), ("0.1", 10_000_000),
    ("0.2", 20_000_000), ("21000000.00000000", 2_100_000_000_000_000), ("0.00000001", 1), ("3", 300_000_000),
    ("1e-8", 1)])
def test_json_amounts_become_exact_satoshis(canned: tuple[ThreadingHTTPServer, Rpc], text: str,
                                            satoshis: int) -> None:
    _Canned.body = f'{{"result": {text}, "error": null, "id": 1}}'.encode()
    assert sats(canned[1].call("x", [], _soon()), "amount") == satoshis


@pytest.mark.parametrize("text", ["0.000000001", "21000000.00000001", "-0.5", "NaN", "Infinity", '"0.1"', "true"])
def test_json_amounts_that_are_not_whole_satoshis_are_refused(canned: tuple[ThreadingHTTPServer, Rpc],
                                                             text: str) -> None:
    _Canned.body = f'{{"result": {text}, "error": null, "id": 1}}'.encode()
    with pytest.raises(RpcFailure):
        sats(canned[1].call("x", [], _soon()), "amount")


# ---------------------------------------------------------------- auth and failures


def test_wrong_password_is_a_backend_error_without_the_secret(chain: SimChain, server: BitcoindServer) -> None:
    b = _backend(server.url_with(password="wrong-pass"), server.url)
    with pytest.raises(BackendError) as err:
        b.tip(_soon())
    text = str(err.value)
    assert "401" in text and text.startswith(server.url)
    assert "wrong-pass" not in text and server.user not in text


def test_cookie_file_authenticates_and_a_missing_one_fails(tmp_path: Path, server: BitcoindServer) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text(f"{server.user}:{server.password}\n")
    assert _backend(server.url, server.url, cookie_file=cookie).tip(_soon()).height >= 0
    with pytest.raises(BackendError, match="cannot read cookie_file"):
        _backend(server.url, server.url, cookie_file=tmp_path / "missing").tip(_soon())


FAULTS = [  # (mode, RPC method it hits, words of the message)
    ("error", "getblockchaininfo", "simulated failure"),
    ("error", "scantxoutset", "simulated failure"),
    ("error", "getblock", "simulated failure"),
    ("error", "gettxspendingprevout", "simulated failure"),
    ("error", "getrawtransaction", "simulated failure"),
    ("error", "deriveaddresses", "simulated failure"),
    ("http500", "getblockheader", "HTTP 500"),
    ("http500", "scantxoutset", "HTTP 500"),
    ("unauthorized", "scantxoutset", "HTTP 401"),
    ("garbage", "scantxoutset", "not valid JSON"),
    ("garbage", "getblockhash", "not valid JSON"),
    ("close", "scantxoutset", "connection failed"),
    ("close", "getbestblockhash", "connection failed"),
    ("abort", "scantxoutset", "did not complete"),
    ("shape", "scantxoutset", "not"),
    ("shape", "getblock", "not"),
    ("shape", "gettxspendingprevout", "not"),
    ("shape", "getblockheader", "not"),
    ("subsat", "scantxoutset", "whole number of satoshis"),
    ("subsat", "getblock", "whole number of satoshis"),
    ("subsat", "getrawtransaction", "whole number of satoshis"),
    ("overflow", "scantxoutset", "21,000,000 BTC"),
    ("tip_moves", "scantxoutset", "tip moved"),
    ("tip_moves", "gettxspendingprevout", "tip moved"),
    ("hang", "scantxoutset", "no answer"),
    ("hang", "getblock", "no answer"),
]


@pytest.mark.parametrize("mode, method, words", FAULTS, ids=[f"{m}-{r}" for m, r, _ in FAULTS])
def test_every_fault_is_a_backend_error_naming_only_the_label(
        chain: SimChain, server: BitcoindServer, mode: str, method: str, words: str) -> None:
    fund = chain.pay([(W.address(0, 0), 70_000), (W.address(0, 1), 60_000)])
    chain.mine()
    chain.spend([(fund, _vout(chain, fund, W.address(0, 0)))], [(W.address(1, 0), 69_000)], W.signer())
    chain.mine()
    chain.spend([(fund, _vout(chain, fund, W.address(0, 1)))], [(W.address(1, 1), 59_000)], W.signer())
    b = _backend(server.url_with(), server.url, timeout=1)
    server.faults.set(mode, method)
    deadline = _soon(2)
    with pytest.raises(BackendError) as err:
        b.tip(deadline)
        b.block(chain.height(), deadline)
        b.scan(_refs(W, 0, [0, 1]) + _refs(W, 1, [0, 1]), chain.height() - 2, deadline)
    text = str(err.value)
    assert server.faults.applied >= 1
    assert words in text and text.startswith(f"{server.url}: ")
    assert server.password not in text and server.user not in text
    assert time.monotonic() < deadline + 1  # the hang did not hold the read past its deadline


def test_scan_returns_by_the_deadline_while_scantxoutset_hangs(chain: SimChain, server: BitcoindServer) -> None:
    b = _backend(server.url_with(), server.url, timeout=30)  # scantxoutset is bounded by the deadline only
    server.faults.set("hang", "scantxoutset")
    deadline = _soon(1)
    with pytest.raises(BackendError, match="no answer"):
        b.scan(_refs(W, 0, [0]), chain.height(), deadline)
    assert time.monotonic() < deadline + 1
    server.faults.clear()
    before = server.calls["scantxoutset"]
    b.scan(_refs(W, 0, [0]), chain.height(), _soon())  # the timed-out scan is aborted first
    assert server.calls["scantxoutset"] == before + 2


def test_a_passed_deadline_fails_without_a_request(server: BitcoindServer, backend: BitcoindBackend) -> None:
    with pytest.raises(BackendError, match="deadline"):
        backend.tip(time.monotonic() - 1)
    assert server.requests == 0


def test_unreachable_node_is_a_backend_error(server: BitcoindServer) -> None:
    url = server.url
    server.stop()
    with pytest.raises(BackendError, match="connection failed"):
        _backend(url.replace("http://", "http://u:p@"), url).tip(_soon())


def test_checksums_match_bitcoin_cores_examples() -> None:
    assert descriptor_checksum("raw(76a91411b366edfc0a8b66feebae5c2e25a7b6a5d1cf3188ac)") == "fm24fxxy"
    assert descriptor_checksum("wpkh([d34db33f/84h/0h/0h]xpub6DJ2dNUysrn5Vt36jH2KLBT2i1auw1tTSSomg8PhqNiUtx8QX2Sv"
                               "C9nrHu81fT41fvDUnhMjEzQgXnQjKEu3oaqMSzhSrHMxyyoEAmUHQbY/0/*)") == "cjjspncu"
    assert with_checksum("wpkh([d34db33f/84h/0h/0h]0279be667ef9dcbbac55a06295Ce870b07029Bfcdb2dce28d959f2815b1"
                         "6f81798)#zzzzzzzz").endswith("#qwlqgth7")


# ---------------------------------------------------------------- transactions


def _detail_oracle(chain: SimChain, txid: str) -> tuple[int, str, tuple[tuple[str, int, str, int], ...]]:
    t = chain.tx(txid)
    inputs = tuple((p, v, *chain.tx(p).outputs[v]) for p, v in t.inputs)
    return t.height, chain.block(t.height).hash if t.height else "", inputs


def test_transactions_without_txindex_find_confirmed_ones_by_what_scans_saw(chain: SimChain,
                                                                          backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 30), 70_000)])
    chain.mine()
    with pytest.raises(BackendError, match="-txindex"):
        backend.transactions([fund], _soon())
    backend.scan(_refs(W, 0, [30]), chain.height() - 1, _soon())
    got = backend.transactions([fund], _soon())[fund]
    assert (got.height, got.block_hash, got.inputs) == _detail_oracle(chain, fund)
    assert got.timestamp == chain.tip().timestamp


def test_txindex_node_needs_no_scan(chain: SimChain) -> None:
    fund = chain.pay([(W.address(0, 31), 70_000)])
    chain.mine()
    with BitcoindServer(chain, txindex=True) as srv:
        b = _backend(srv.url_with(), srv.url)
        got = b.transactions([fund], _soon())[fund]
        b.close()
    assert (got.height, got.block_hash, got.inputs) == _detail_oracle(chain, fund)


def test_mempool_spends_read_spent_outputs_from_the_utxo_set_or_the_parent(
        chain: SimChain, server: BitcoindServer, backend: BitcoindBackend) -> None:
    fund = chain.pay([(W.address(0, 32), 70_000)])
    chain.mine()
    first = chain.spend([(fund, _vout(chain, fund, W.address(0, 32)))],
                        [(OUT.address(0, 32), 30_000), (W.address(1, 32), 39_000)], W.signer())
    second = chain.spend([(first, 1)], [(OUT.address(0, 33), 38_000)], W.signer())
    before = server.calls.copy()
    got = backend.transactions([first], _soon())  # its coin is confirmed: the UTXO set has it
    assert server.calls["gettxout"] - before["gettxout"] == 1
    got |= backend.transactions([second], _soon())  # its parent was just read: nothing more to ask
    assert server.calls["gettxout"] - before["gettxout"] == 1
    assert server.calls["getrawtransaction"] - before["getrawtransaction"] == 2
    fresh = _backend(server.url_with(), server.url)
    again = fresh.transactions([second], _soon())  # a coin made in the mempool: not in the UTXO set
    fresh.close()
    assert server.calls["gettxout"] - before["gettxout"] == 2
    assert server.calls["getrawtransaction"] - before["getrawtransaction"] == 4  # second, then its parent
    assert again == {second: got[second]}
    for txid in (first, second):
        assert (got[txid].height, got[txid].block_hash, got[txid].inputs) == _detail_oracle(chain, txid)
    assert got[second].outputs == ((OUT.script(0, 33), 38_000),)


def test_server_gettxout_sees_the_chainstate_or_the_mempool(chain: SimChain, server: BitcoindServer) -> None:
    fund = chain.pay([(W.address(0, 34), 70_000)])
    chain.mine()
    n = _vout(chain, fund, W.address(0, 34))
    spend = chain.spend([(fund, n)], [(OUT.address(0, 34), 69_000)], W.signer())
    answers = [json.loads(_post(server, {"jsonrpc": "2.0", "id": 1, "method": "gettxout", "params": params}).text,
                          parse_float=Decimal)["result"]
               for params in ([fund, n, False], [fund, n, True], [spend, 0, False], [spend, 0, True])]
    assert answers[0]["value"] == Decimal("0.00070000") and answers[0]["confirmations"] == 1
    assert answers[1] is None and answers[2] is None  # spent in the mempool / not in the chainstate
    assert answers[3]["confirmations"] == 0 and answers[3]["scriptPubKey"]["hex"] == OUT.script(0, 34)
