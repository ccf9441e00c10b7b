"""The simulated regtest chain: real signed transactions, mining, mempool, reorgs,
and the history/utxo/spender answers every simulated server is built on."""

from __future__ import annotations

import bdkpython as bdk
import pytest
from bitcoinlib.transactions import Transaction

from auditor.devbtc import keys
from auditor.devbtc.chain import COIN, SimChain
from auditor.devbtc.codec import address_to_script, merkle_root, parse_tx, script_to_address, sha256d
from auditor.devbtc.faults import Faults
from auditor.devbtc.verify import InvalidSpend, check_input

OTHER = keys.wallet("wpkh", "outsider")


@pytest.fixture
def chain() -> SimChain:
    return SimChain(clock=lambda: 1_700_000_000, faucet_coins=10)


def _vout(chain: SimChain, txid: str, address: str) -> int:
    script = address_to_script(address)
    return next(i for i, (s, _) in enumerate(chain.tx(txid).outputs) if s == script)


def test_addresses_of_every_descriptor_type_match_bdk() -> None:
    for w in keys.all_wallets():
        for branch in (0, 1):
            desc = bdk.Descriptor(w.branch_descriptor(branch), bdk.NetworkKind.TEST)
            for index in (0, 7):
                assert str(desc.derive_address(index, bdk.Network.REGTEST)) == w.address(branch, index)
                assert address_to_script(w.address(branch, index)) == w.script(branch, index)
                assert script_to_address(bytes.fromhex(w.script(branch, index))) == w.address(branch, index)


def test_wallets_have_regtest_prefixes_and_slip132_forms() -> None:
    prefixes = {"pkh": ("m", "n"), "sh-wpkh": ("2",), "wpkh": ("bcrt1q",), "wsh-sortedmulti": ("bcrt1q",),
                "wsh-multi": ("bcrt1q",), "tr": ("bcrt1p",)}
    for w in keys.all_wallets():
        assert w.address(0, 0).startswith(prefixes[w.kind])
        assert all(t.startswith("tpub") for t in w.tpubs) and "<0;1>/*" in w.descriptor
    assert keys.wallet("wpkh").slip132[0].startswith("vpub")
    assert keys.wallet("sh-wpkh").slip132[0].startswith("upub")
    assert keys.wallet("wsh-sortedmulti").slip132[0].startswith("Vpub")
    assert keys.wallet("pkh").slip132 == ()


def test_multi_and_sortedmulti_give_different_scripts_for_unsorted_keys() -> None:
    w = keys.wallet("wsh-multi")
    d = w.derive(0, 0)
    assert list(d.public_keys) != sorted(d.public_keys)  # the fixed seeds give an unsorted order
    assert keys.wallet("wsh-sortedmulti").derive(0, 0).public_keys == tuple(
        sorted(keys.wallet("wsh-sortedmulti").derive(0, 0).public_keys))


def test_chain_starts_with_matured_faucet_coins_and_valid_headers(chain: SimChain) -> None:
    assert chain.tip().height == 110
    assert len(chain.utxos(chain.faucet.script)) == 10
    assert all(v == 50 * COIN and h <= 10 for _, _, v, h in chain.utxos(chain.faucet.script))
    for h in range(1, chain.tip().height + 1):
        b = chain.block(h)
        header = bytes.fromhex(b.header_hex)
        assert len(header) == 80 and sha256d(header)[::-1].hex() == b.hash
        assert header[4:36][::-1].hex() == chain.block(h - 1).hash == b.prev_hash
        assert header[36:68] == merkle_root(list(b.txids))
        assert parse_tx(bytes.fromhex(chain.tx(b.txids[0]).raw_hex)).coinbase


def test_pay_builds_a_real_signed_transaction_with_change(chain: SimChain) -> None:
    ws = keys.all_wallets()
    txid = chain.pay([(w.address(0, 0), 100_000 + i) for i, w in enumerate(ws)], fee=1234)
    t = chain.tx(txid)
    raw = bytes.fromhex(t.raw_hex)
    assert parse_tx(raw).txid == txid  # own txid computation from the witness-stripped bytes
    back = Transaction.parse_hex(t.raw_hex, network="testnet")
    assert back.txid == txid and len(back.outputs) == len(ws) + 1
    assert t.fee == 1234 and sum(t.input_values) - sum(v for _, v in t.outputs) == 1234
    assert t.outputs[-1][0] == chain.faucet.script  # change back to the faucet
    assert t.height == 0 and chain.mempool() == [txid]
    assert t.weight > t.size and t.vsize == (t.weight + 3) // 4  # segwit: witness discount


@pytest.mark.parametrize("kind", ["pkh", "sh-wpkh", "wpkh", "wsh-sortedmulti", "wsh-multi"])
def test_spend_of_each_kind_verifies_independently_of_bitcoinlib(chain: SimChain, kind: str) -> None:
    w = keys.wallet(kind)
    fund = chain.pay([(w.address(0, 3), 300_000)])
    chain.mine()
    spend = chain.spend([(fund, _vout(chain, fund, w.address(0, 3)))],
                        [(OTHER.address(0, 0), 200_000), (w.address(1, 3), 99_000)], w.signer())
    t = chain.tx(spend)
    parsed = parse_tx(bytes.fromhex(t.raw_hex))
    check_input(parsed, 0, bytes.fromhex(w.script(0, 3)), 300_000)
    assert Transaction.parse_hex(t.raw_hex, network="testnet").txid == spend
    with pytest.raises(InvalidSpend):  # the same input does not unlock another coin of the wallet
        check_input(parsed, 0, bytes.fromhex(w.script(0, 4)), 300_000)
    with pytest.raises(InvalidSpend):  # nor the right coin with another amount (segwit commits to it)
        check_input(parsed, 0, bytes.fromhex(w.script(0, 3)), 300_001) if kind != "pkh" else \
            check_input(parsed, 0, bytes.fromhex(OTHER.script(0, 0)), 300_000)


def test_spend_of_mixed_legacy_and_segwit_coins(chain: SimChain) -> None:
    a, b = keys.wallet("pkh"), keys.wallet("wsh-sortedmulti")
    fund = chain.pay([(a.address(0, 9), 70_000), (b.address(0, 9), 80_000)])
    coins = [(fund, _vout(chain, fund, a.address(0, 9))), (fund, _vout(chain, fund, b.address(0, 9)))]
    spend = chain.spend(coins, [(OTHER.address(0, 1), 149_000)], keys.WalletSigner(a, b))
    parsed = parse_tx(bytes.fromhex(chain.tx(spend).raw_hex))
    assert parsed.inputs[0].witness == () and len(parsed.inputs[1].witness) == 4
    assert chain.tx(spend).fee == 1000 and chain.mempool() == [fund, spend]  # a chain of mempool txs


def test_spend_refuses_double_spends_and_wrong_sums(chain: SimChain) -> None:
    w = keys.wallet("wpkh")
    fund = chain.pay([(w.address(0, 11), 10_000)])
    coin = (fund, _vout(chain, fund, w.address(0, 11)))
    with pytest.raises(ValueError, match="inputs − fee"):
        chain.spend([coin], [(OTHER.address(0, 2), 9_500)], w.signer())
    chain.spend([coin], [(OTHER.address(0, 2), 9_000)], w.signer())
    with pytest.raises(ValueError, match="already spent"):
        chain.spend([coin], [(OTHER.address(0, 3), 9_000)], w.signer())
    with pytest.raises(ValueError, match="regtest"):
        chain.pay([("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 1_000)])


def test_mine_takes_the_mempool_into_one_block_with_fees_to_the_miner(chain: SimChain) -> None:
    t1 = chain.pay([(OTHER.address(0, 4), 5_000)], fee=700)
    t2 = chain.pay([(OTHER.address(0, 5), 6_000)], fee=800)
    hashes = chain.mine(3)
    b = chain.block_by_hash(hashes[0])
    assert b.txids[1:] == (t1, t2) and chain.mempool() == []
    assert chain.tx(b.txids[0]).outputs[0][1] == 50 * COIN + 1500  # subsidy + fees
    assert chain.tx(t1).height == b.height and len(chain.block_by_hash(hashes[1]).txids) == 1
    assert chain.tip().hash == hashes[-1] and chain.tip().timestamp > b.timestamp


def test_history_utxos_and_spender_follow_esplora_semantics(chain: SimChain) -> None:
    w = keys.wallet("wpkh")
    addr, script = w.address(0, 20), w.script(0, 20)
    fund = chain.pay([(addr, 40_000)])
    chain.mine()
    fund2 = chain.pay([(addr, 5_000)])  # unconfirmed deposit
    v = _vout(chain, fund, addr)
    spend = chain.spend([(fund, v)], [(OTHER.address(0, 6), 39_000)], w.signer())
    h = chain.tip().height
    assert chain.history(script) == [(fund, h), (fund2, 0), (spend, 0)]
    assert chain.utxos(script) == [(fund2, _vout(chain, fund2, addr), 5_000, 0)]  # mempool spend removed
    assert chain.spender(fund, v) == (spend, 0)
    assert (fund, v, script, 40_000, h, False) in list(chain.confirmed_utxo_set())  # chainstate ignores mempool
    chain.mine()
    assert chain.spender(fund, v) == (spend, h + 1)
    assert all(row[0] != fund or row[1] != v for row in chain.confirmed_utxo_set())


def test_reorg_returns_transactions_to_the_mempool_with_new_block_hashes(chain: SimChain) -> None:
    w = keys.wallet("sh-wpkh")
    fund = chain.pay([(w.address(0, 21), 30_000)])
    old = chain.mine(2)
    height = chain.tip().height
    new = chain.reorg(2)
    assert len(new) == 3 and not set(old) & set(new)
    assert chain.tip().height == height + 1 and chain.tip().hash == new[-1]
    assert chain.mempool() == [fund] and chain.tx(fund).height == 0
    assert chain.history(w.script(0, 21)) == [(fund, 0)]
    with pytest.raises(KeyError):
        chain.block_by_hash(old[0])


def test_reorg_with_drop_removes_the_deposit_and_its_descendants(chain: SimChain) -> None:
    w = keys.wallet("wpkh")
    fund = chain.pay([(w.address(0, 22), 30_000)])
    chain.mine()
    spend = chain.spend([(fund, _vout(chain, fund, w.address(0, 22)))], [(OTHER.address(0, 7), 29_000)],
                        w.signer())
    faucet_before = chain.tx(fund).inputs
    chain.reorg(1, drop=[fund], new_blocks=1)
    assert chain.mempool() == [] and not chain.has_tx(fund) and not chain.has_tx(spend)
    assert chain.history(w.script(0, 22)) == [] and chain.utxos(OTHER.script(0, 7)) == []
    assert all(chain.spender(t, v) is None for t, v in faucet_before)  # the faucet coin is unspent again
    with pytest.raises(ValueError, match="drop"):
        chain.reorg(1, drop=["00" * 32])


def test_faults_apply_to_matching_requests_and_count_down() -> None:
    f = Faults()
    assert f.pick("/blocks/tip/height") is None
    f.set("error", match="/utxo", times=2)
    assert f.pick("/blocks/tip/height") is None
    assert [f.pick("/address/x/utxo") for _ in range(3)] == ["error", "error", None]
    f.set("garbage")
    assert f.pick("anything") == "garbage"
    f.clear()
    assert f.pick("anything") is None
