"""Pure parts of the Ethereum reader: ABI encoding, the read plan. No node needed."""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode

from auditor.chains.ethereum import _unique_labels
from auditor.chains.ethereum_read import build_plan
from auditor.chains.multicall import (
    AGGREGATE3,
    BALANCE_OF,
    GET_ETH_BALANCE,
    address_call,
    decode_aggregate3,
    decode_uint256,
    encode_aggregate3,
)
from auditor.settings import AssetSettings, ChainSettings, Deployment, RpcEndpoint, Secret, WalletSettings

MC = "0xcA11bde05977b3631167028862bE2a173976CA11"
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
HOLDER = "0x00000000219ab540356cBB839Cbe05303d7705Fa"


def test_aggregate3_calldata_matches_the_reference_abi_encoder():
    calls = [(MC, address_call(GET_ETH_BALANCE, HOLDER)), (TOKEN, address_call(BALANCE_OF, HOLDER)),
             (TOKEN, "deadbeef")]
    encoded = encode_aggregate3(calls)
    assert encoded[:10] == "0x" + AGGREGATE3
    (decoded,) = abi_decode(["(address,bool,bytes)[]"], bytes.fromhex(encoded[10:]))
    assert [(t.lower(), ok, data.hex()) for t, ok, data in decoded] == [
        (t.lower(), True, d) for t, d in calls]


def test_aggregate3_results_decode_like_the_reference_abi_encoder():
    results = [(True, (2**130 + 5).to_bytes(32, "big")), (False, b"\x08\xc3\x79\xa0" + b"x" * 40),
               (True, b"")]
    raw = abi_encode(["(bool,bytes)[]"], [results])
    assert decode_aggregate3(raw, 3) == results


def test_aggregate3_decoder_refuses_truncated_or_miscounted_answers():
    raw = abi_encode(["(bool,bytes)[]"], [[(True, (7).to_bytes(32, "big"))] * 2])
    with pytest.raises(ValueError, match="2 results for 3 calls"):
        decode_aggregate3(raw, 3)
    with pytest.raises(ValueError, match="truncated"):
        decode_aggregate3(raw[:-40], 2)
    with pytest.raises(ValueError, match="truncated"):
        decode_aggregate3(b"", 0)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_uint256_return_must_be_exactly_32_bytes(size):
    with pytest.raises(ValueError, match=f"returned {size} bytes, not 32"):
        decode_uint256(b"\x00" * size)
    assert decode_uint256((2**256 - 1).to_bytes(32, "big")) == 2**256 - 1


def _chain() -> ChainSettings:
    return ChainSettings("ethereum", "ethereum", (RpcEndpoint(Secret("http://x:1"), "http://x:1"),),
                         native_asset="ETH")


def test_read_plan_dedupes_addresses_lowercases_and_skips_other_chains():
    assets = {"ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
              "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", TOKEN, 6),)),
              "POL": AssetSettings("POL", "crypto", 18, (Deployment("polygon", None, 18),))}
    wallets = [WalletSettings("hot", "ethereum", "hot", "customer", (HOLDER,), ("ETH", "USDC")),
               WalletSettings("dup", "ethereum", "warm", "customer", (HOLDER.lower(),), ("USDC",)),
               WalletSettings("pol", "polygon", "hot", "customer", (MC,), ("POL",))]
    plan = build_plan(_chain(), wallets, assets)
    assert plan.addresses == (HOLDER.lower(),)
    assert plan.keys == ((HOLDER.lower(), "ETH"), (HOLDER.lower(), "USDC"))
    assert plan.tokens == {"ETH": None, "USDC": TOKEN.lower()}


def test_providers_on_one_host_and_port_get_distinct_labels():
    assert _unique_labels(["http://a:1", "http://b:2", "http://a:1"]) == [
        "http://a:1#1", "http://b:2", "http://a:1#2"]
