"""rawtx: the strict raw transaction / header parser, checked against bitcoinlib
on real signed transactions and against Bitcoin's genesis block."""

from __future__ import annotations

import hashlib

import pytest

import auditor.devbtc  # noqa: F401  (points BCL_DATA_DIR at a temp folder before bitcoinlib loads)
from auditor.chains.bitcoin.rawtx import MAX_MONEY, parse_header_hex, parse_tx, parse_tx_hex

bitcoinlib_keys = pytest.importorskip("bitcoinlib.keys")
bitcoinlib_tx = pytest.importorskip("bitcoinlib.transactions")
Key = bitcoinlib_keys.Key
Transaction = bitcoinlib_tx.Transaction

GENESIS_TX = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104"
    "455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f662073"
    "65636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe554827"
    "1967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d"
    "578a4c702b6bf11d5fac00000000"
)
GENESIS_TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
GENESIS_HEADER = (
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e"
    "67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


def _prev(n: int) -> str:
    """A distinct, asymmetric previous txid (display order) per n."""
    return hashlib.sha256(n.to_bytes(4, "big")).hexdigest()


def _signed(kind: str) -> str:
    """A real signed regtest transaction of `kind`, as hex."""
    k1, k2, k3 = (Key(network="regtest") for _ in range(3))
    if kind == "legacy":
        tx = Transaction(network="regtest", witness_type="legacy")
        tx.add_input(_prev(1), 3, keys=k1, value=80_000, witness_type="legacy")
        tx.add_input(_prev(2), 0, keys=k2, value=20_000, witness_type="legacy")
        tx.add_output(60_000, k2.address())
        tx.add_output(39_000, k1.address())
    elif kind == "segwit":
        tx = Transaction(network="regtest", witness_type="segwit")
        tx.add_input(_prev(3), 1, keys=k1, value=100_000, witness_type="segwit")
        tx.add_output(99_000, k2.address(encoding="bech32"))
    elif kind == "mixed":
        tx = Transaction(network="regtest", witness_type="segwit")
        tx.add_input(_prev(4), 7, keys=k1, value=100_000, witness_type="segwit")
        tx.add_input(_prev(5), 0, keys=k2, value=50_000, witness_type="legacy")
        tx.add_output(90_000, k2.address())
        tx.add_output(59_000, k1.address(encoding="bech32"))
    elif kind == "p2sh-segwit":
        tx = Transaction(network="regtest", witness_type="segwit")
        tx.add_input(_prev(6), 2, keys=k1, value=70_000, witness_type="p2sh-segwit")
        tx.add_output(69_000, k3.address())
    elif kind == "multisig":
        tx = Transaction(network="regtest", witness_type="segwit")
        tx.add_input(_prev(7), 0, keys=[k1, k2, k3], sigs_required=2, value=500_000, witness_type="segwit")
        tx.add_output(300_000, k1.address(encoding="bech32"))
        tx.add_output(199_000, k3.address())
        tx.sign([k1, k3])
        assert tx.verify()
        return str(tx.raw_hex())
    else:
        raise AssertionError(kind)
    tx.sign()
    assert tx.verify()
    return str(tx.raw_hex())


@pytest.mark.parametrize("kind", ["legacy", "segwit", "mixed", "p2sh-segwit", "multisig"])
def test_parse_matches_bitcoinlib_on_signed_transactions(kind: str) -> None:
    raw = _signed(kind)
    ours = parse_tx_hex(raw)
    theirs = Transaction.parse_hex(raw, network="regtest")
    assert ours.txid == theirs.txid
    assert ours.outputs == tuple((o.lock_script.hex(), o.value) for o in theirs.outputs)
    assert ours.inputs == tuple((i.prev_txid.hex(), i.output_n_int) for i in theirs.inputs)
    assert all(len(prev) == 64 for prev, _ in ours.inputs)


def test_segwit_txid_ignores_the_witness() -> None:
    raw = bytes.fromhex(_signed("segwit"))
    tx = parse_tx(raw)
    # strip marker, flag and witness by hand: version | body | locktime
    theirs = Transaction.parse_hex(raw.hex(), network="regtest")
    legacy = theirs.raw(witness_type="legacy")
    assert hashlib.sha256(hashlib.sha256(legacy).digest()).digest()[::-1].hex() == tx.txid
    assert parse_tx(legacy).txid == tx.txid


def test_genesis_coinbase_txid_and_output() -> None:
    tx = parse_tx_hex(GENESIS_TX)
    assert tx.txid == GENESIS_TXID
    assert tx.inputs == (("00" * 32, 0xFFFFFFFF),)
    assert tx.outputs[0][1] == 50 * 100_000_000
    assert tx.outputs[0][0].startswith("4104678afdb0") and tx.outputs[0][0].endswith("ac")


def test_genesis_header_hash_prev_and_time() -> None:
    h = parse_header_hex(GENESIS_HEADER)
    assert h.hash == GENESIS_HASH
    assert h.prev_hash == "00" * 32
    assert h.timestamp == 1231006505


@pytest.mark.parametrize("bad", [GENESIS_HEADER[:-2], GENESIS_HEADER + "00", "zz" * 80, ""])
def test_header_of_wrong_size_or_not_hex_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_header_hex(bad)


def _mutations(raw: str) -> dict[str, str]:
    b = bytes.fromhex(raw)
    return {
        "truncated by one byte": raw[:-2],
        "truncated in the outputs": raw[: len(raw) // 2],
        "trailing byte": raw + "00",
        "odd hex": raw + "0",
        "spaces": raw[:10] + " " + raw[10:],
        "not hex": "zz" + raw[2:],
        "empty": "",
        "input count too large": (b[:4] + b"\xfd\xff\xff" + b[5:]).hex(),
        "non-canonical input count": (b[:4] + b"\xfd\x01\x00" + b[5:]).hex(),
        "zero-input marker with unknown flag": (b[:4] + b"\x00\x02" + b[4:]).hex(),
    }


@pytest.mark.parametrize("name", list(_mutations(GENESIS_TX)))
def test_malformed_legacy_bytes_raise_value_error(name: str) -> None:
    with pytest.raises(ValueError):
        parse_tx_hex(_mutations(GENESIS_TX)[name])


def test_segwit_flag_without_witness_data_is_rejected() -> None:
    b = bytes.fromhex(GENESIS_TX)
    # marker + flag inserted, and one empty witness stack for the single input
    fake = b[:4] + b"\x00\x01" + b[4:-4] + b"\x00" + b[-4:]
    with pytest.raises(ValueError, match="witness"):
        parse_tx(fake)


def test_truncated_segwit_witness_is_rejected() -> None:
    raw = _signed("segwit")
    with pytest.raises(ValueError):
        parse_tx_hex(raw[:-12])  # cuts into the witness before the locktime


def test_output_value_above_21_million_btc_is_rejected() -> None:
    b = bytearray(bytes.fromhex(GENESIS_TX))
    tx = parse_tx(bytes(b))
    value_at = bytes(b).index((tx.outputs[0][1]).to_bytes(8, "little"))
    b[value_at:value_at + 8] = (MAX_MONEY + 1).to_bytes(8, "little")
    with pytest.raises(ValueError, match="outside"):
        parse_tx(bytes(b))
    b[value_at:value_at + 8] = (-1).to_bytes(8, "little", signed=True)
    with pytest.raises(ValueError, match="outside"):
        parse_tx(bytes(b))


def test_transaction_without_outputs_is_rejected() -> None:
    b = bytes.fromhex(GENESIS_TX)
    tx_no_outputs = b[: b.index(bytes.fromhex("ffffffff0100f2052a")) + 4] + b"\x00" + b[-4:]
    with pytest.raises(ValueError, match="at least one"):
        parse_tx(tx_no_outputs)
