"""Descriptors, xpubs and addresses: bdk's derivation against published test
vectors (BIP 44/49/84 via SLIP-132, BIP 86, BIP 173/350) and against
bitcoinlib's HD derivation with scripts built by hand; every refusal."""

from __future__ import annotations

import hashlib
import os
import tempfile

import bdkpython as bdk
import pytest

os.environ.setdefault("BCL_DATA_DIR", tempfile.mkdtemp(prefix="bcl-"))  # before bitcoinlib
from bitcoinlib import encoding as bcl_enc  # noqa: E402
from bitcoinlib.keys import HDKey  # noqa: E402
from fastecdsa.curve import secp256k1  # noqa: E402
from fastecdsa.point import Point  # noqa: E402

from auditor.chains.bitcoin.descriptors import (  # noqa: E402
    Branch,
    address_script,
    branches,
    check_address,
    check_descriptor,
    derive,
    descriptor_checksum,
    xpub_descriptor,
)

MNEMONIC = "abandon " * 11 + "about"
FP = "73c5da0a"  # its master fingerprint
# SLIP-132 test vectors (account keys of MNEMONIC and their first receive address).
XPUB44 = ("xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DS"
          "SSSoekkudhUd9yLb6qx39T9nMdj")
YPUB49 = ("ypub6Ww3ibxVfGzLrAH1PNcjyAWenMTbbAosGNB6VvmSEgytSER9azLDWCxoJwW7Ke7icmizBMXrzBx9979F"
          "faHxHcrArf3zbeJJJUZPf663zsP")
ZPUB84 = ("zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUU"
          "kgDKf31mGDtKsAYz2oz2AGutZYs")
# A 2-of-3 testnet multisig exported by real wallet software, with its checksum.
TESTNET_MULTISIG = (
    "wsh(sortedmulti(2,[02e8bff2/48h/1h/0h/2h]tpubDESmyzX6RMHRHvzxgLVXymd193CSYYT6C9M9wa4XK649tbAy2W"
    "eEvkPwBgoC7i76MypQxpuruUazQjqibbCogTZuENJX6YiuZ5Fy8sf7GNi/<0;1>/*,[8cb36b38/48h/1h/0h/2h]tpubD"
    "ESTVwqbbaSoN2mPq7tcWkPBpRBkaEADrUzUhRTVnNef6oVn6w2PHL4zoUjUAJSPLJQRBetkgX4sDRcoaCyFHxqHGyWyaiV"
    "8REKDkh7zQac/<0;1>/*,[73c5da0a/48h/1h/0h/2h]tpubDFH9dgzveyD8zTbPUFuLrGmCydNvxehyNdUXKJAQN8x4aZ4"
    "j6UZqGfnqFrD4NqyaTVGKbvEW54tsvPTK2UoSbCC1PJY8iCNiwTL3RWZEheQ/<0;1>/*))#jpxgnm0a")
XPRV_ROOT = ("xprv9s21ZrQH143K3GJpoapnV8SFfukcVBSfeCficPSGfubmSFDxo1kuHnLisriDvSnRRuL2Qrg5ggqHKNVp"
             "xR86QEC8w35uxmGoggxtQTPvfUu")
WIF = "KyrpTEubafHDheWBJ9VRM4QVo78Zw5GFXmKv1sUr1gK1Fb4t3JeE"


def account_xpub(path: str, network: str = "bitcoin") -> str:
    """The account xpub of MNEMONIC at `path` with its key origin (bdk)."""
    kind = bdk.NetworkKind.MAIN if network == "bitcoin" else bdk.NetworkKind.TEST
    secret = bdk.DescriptorSecretKey(kind, bdk.Mnemonic.from_string(MNEMONIC.strip()), None)
    return str(secret.derive(bdk.DerivationPath(path)).as_public())


def bare(key: str) -> str:
    return key.split("]")[-1]


def first(descriptor: str, network: str, receive: bool = True, n: int = 1) -> list[str]:
    (branch,) = [b for b in branches(descriptor) if b.receive == receive]
    return [a for a, _ in derive(branch.descriptor, network, 0, n)]


# -- published vectors ----------------------------------------------------------
@pytest.mark.parametrize("key,address,change", [
    (XPUB44, "1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", None),
    (YPUB49, "37VucYSaXLCAsxYyAPfbSi9eh4iEcbShgf", None),
    (ZPUB84, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"),
])
def test_bare_slip132_keys_become_the_matching_descriptor(key, address, change):
    descriptor = xpub_descriptor(key, "bitcoin")
    assert descriptor.startswith({"x": "pkh(xpub", "y": "sh(wpkh(xpub", "z": "wpkh(xpub"}[key[0]])
    assert descriptor.endswith("/<0;1>/*)" + (")" if key[0] == "y" else ""))
    assert first(descriptor, "bitcoin") == [address]
    if change:
        assert first(descriptor, "bitcoin", receive=False) == [change]
    assert check_descriptor(key, "bitcoin") == descriptor  # a bare key in `descriptors`


def test_bip86_taproot_vectors():
    key = account_xpub("m/86'/0'/0'")
    descriptor = check_descriptor(f"tr({key}/<0;1>/*)", "bitcoin")
    assert first(descriptor, "bitcoin", n=2) == [
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
        "bc1p4qhjn9zdvkux4e44uhx8tc55attvtyu358kutcqkudyccelu0was9fqzwh"]
    assert first(descriptor, "bitcoin", receive=False) == [
        "bc1p3qkhfews2uk44qtvauqyr2ttdsw7svhkl9nkm9s9c3x4ax5h60wqwruhk7"]
    (branch,) = [b for b in branches(descriptor) if b.receive]
    assert derive(branch.descriptor, "bitcoin", 0, 1)[0][1] == (
        "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c")


def test_descriptor_with_key_origin_derives_the_bip84_vector():
    key = account_xpub("m/84'/0'/0'")
    descriptor = check_descriptor(f"wpkh({key}/0/*)", "bitcoin")
    assert descriptor.startswith(f"wpkh([{FP}/84'/0'/0']xpub6CatWdiZ")
    assert first(descriptor, "bitcoin") == ["bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"]


# -- against bitcoinlib -----------------------------------------------------------
_PREFIX = {"bitcoin": ("bc", b"\x00", b"\x05"), "testnet": ("tb", b"\x6f", b"\xc4"),
           "regtest": ("bcrt", b"\x6f", b"\xc4")}


def _child_pubkeys(xpub: str, branch: int, indexes: range) -> list[bytes]:
    network = "bitcoin" if xpub.startswith("xpub") else "testnet"
    node = HDKey(xpub, network=network).child_public(branch)
    return [node.child_public(i).public_byte for i in indexes]


def _segwit(network: str, version: int, program: bytes) -> tuple[str, str]:
    xor = 1 if version == 0 else 0x2BC830A3
    address = bcl_enc.pubkeyhash_to_addr_bech32(program, prefix=_PREFIX[network][0], witver=version,
                                                checksum_xor=xor)
    return address, (bytes([0x50 + version if version else 0, len(program)]) + program).hex()


def _p2sh(network: str, redeem: bytes) -> tuple[str, str]:
    h = bcl_enc.hash160(redeem)
    return bcl_enc.pubkeyhash_to_addr_base58(h, prefix=_PREFIX[network][2]), "a914" + h.hex() + "87"


def _single(kind: str, network: str, pubkey: bytes) -> tuple[str, str]:
    h = bcl_enc.hash160(pubkey)
    if kind == "pkh":
        return (bcl_enc.pubkeyhash_to_addr_base58(h, prefix=_PREFIX[network][1]),
                "76a914" + h.hex() + "88ac")
    if kind == "wpkh":
        return _segwit(network, 0, h)
    return _p2sh(network, b"\x00\x14" + h)  # sh(wpkh)


def _multisig(kind: str, network: str, k: int, pubkeys: list[bytes]) -> tuple[str, str]:
    ordered = sorted(pubkeys) if "sortedmulti" in kind else pubkeys
    redeem = bytes([0x50 + k]) + b"".join(b"\x21" + p for p in ordered) + bytes(
        [0x50 + len(pubkeys), 0xAE])
    if kind.startswith("wsh"):
        return _segwit(network, 0, hashlib.sha256(redeem).digest())
    if kind.startswith("sh(wsh"):
        return _p2sh(network, b"\x00\x20" + hashlib.sha256(redeem).digest())
    return _p2sh(network, redeem)


@pytest.mark.parametrize("network", ["bitcoin", "regtest"])
@pytest.mark.parametrize("kind", ["pkh", "sh_wpkh", "wpkh"])
def test_single_key_addresses_match_bitcoinlib(kind, network):
    purpose = {"pkh": 44, "sh_wpkh": 49, "wpkh": 84}[kind]
    xpub = bare(account_xpub(f"m/{purpose}'/{0 if network == 'bitcoin' else 1}'/0'", network))
    text = {"pkh": "pkh({})", "sh_wpkh": "sh(wpkh({}))", "wpkh": "wpkh({})"}[kind]
    descriptor = check_descriptor(text.format(xpub + "/<0;1>/*"), network)
    for branch in branches(descriptor):
        step = 0 if branch.receive else 1
        for indexes in (range(0, 25), range(1000, 1005)):
            want = [_single(kind, network, p)
                    for p in _child_pubkeys(xpub, step, indexes)]
            assert derive(branch.descriptor, network, indexes.start, indexes.stop) == want


def _lift_x(x: int) -> Point:
    p = secp256k1.p
    y = pow(x ** 3 + 7, (p + 1) // 4, p)
    return Point(x, y if y % 2 == 0 else p - y, curve=secp256k1)


def _bip86_output_key(pubkey: bytes) -> bytes:
    """BIP 341 key-path tweak without a script tree, computed independently."""
    internal = pubkey[1:]
    tag = hashlib.sha256(b"TapTweak").digest()
    t = int.from_bytes(hashlib.sha256(tag + tag + internal).digest(), "big")
    q = _lift_x(int.from_bytes(internal, "big")) + t * secp256k1.G
    return q.x.to_bytes(32, "big")


def test_taproot_addresses_match_an_independent_bip86_tweak():
    xpub = bare(account_xpub("m/86'/1'/0'", "testnet"))
    (branch,) = branches(check_descriptor(f"tr({xpub}/0/*)", "testnet"))
    want = [_segwit("testnet", 1, _bip86_output_key(p)) for p in _child_pubkeys(xpub, 0, range(12))]
    assert derive(branch.descriptor, "testnet", 0, 12) == want


def _cosigners(network: str) -> list[str]:
    coin = 0 if network == "bitcoin" else 1
    keys = [HDKey.from_seed(bytes([i]) * 32, network="bitcoin" if coin == 0 else "testnet")
            for i in (1, 2, 3)]
    return [k.subkey_for_path(f"m/48'/{coin}'/0'/2'").wif_public(witness_type="legacy") for k in keys]


@pytest.mark.parametrize("kind,network", [
    ("wsh(sortedmulti", "bitcoin"), ("wsh(multi", "bitcoin"), ("wsh(sortedmulti", "regtest"),
    ("sh(wsh(sortedmulti", "bitcoin"), ("sh(sortedmulti", "testnet"), ("sh(multi", "bitcoin"),
])
def test_multisig_addresses_match_scripts_built_from_bitcoinlib_keys(kind, network):
    keys = _cosigners(network)
    inner = kind.split("(")[-1]
    text = f"{inner}(2,{','.join(k + '/<0;1>/*' for k in keys)})"
    for outer in reversed(kind.split("(")[:-1]):
        text = f"{outer}({text})"
    descriptor = check_descriptor(text, network)
    for branch in branches(descriptor):
        step = 0 if branch.receive else 1
        per_key = [_child_pubkeys(k, step, range(15)) for k in keys]
        want = [_multisig(kind, network, 2, [pks[i] for pks in per_key]) for i in range(15)]
        assert derive(branch.descriptor, network, 0, 15) == want


def test_sortedmulti_and_multi_differ_when_keys_are_not_in_order():
    keys = _cosigners("bitcoin")
    multi = check_descriptor(f"wsh(multi(2,{','.join(k + '/0/*' for k in keys)}))", "bitcoin")
    sorted_ = check_descriptor(f"wsh(sortedmulti(2,{','.join(k + '/0/*' for k in keys)}))", "bitcoin")
    rev = check_descriptor(f"wsh(sortedmulti(2,{','.join(k + '/0/*' for k in reversed(keys))}))",
                           "bitcoin")
    a, b, c = (derive(d, "bitcoin", 0, 10) for d in (multi, sorted_, rev))
    assert b == c  # sortedmulti: the order keys are written in does not matter
    assert a != b  # multi: it does (the derived keys are not all in sorted order)


def test_the_exported_testnet_multisig_checksum_is_verified_and_dropped():
    descriptor = check_descriptor(TESTNET_MULTISIG, "testnet")
    assert "#" not in descriptor and "<0;1>" in descriptor
    receive, change = branches(descriptor)
    assert (receive.receive, change.receive) == (True, False)
    assert receive.descriptor.count("/0/*") == 3 and change.descriptor.count("/1/*") == 3
    assert derive(receive.descriptor, "signet", 0, 1)[0][0].startswith("tb1q")
    assert derive(receive.descriptor, "regtest", 0, 1)[0][0].startswith("bcrt1q")


# -- derive edges -------------------------------------------------------------------
def test_parallel_derivation_equals_chunked_serial_derivation():
    (branch, _) = branches(xpub_descriptor(ZPUB84, "bitcoin"))
    whole = derive(branch.descriptor, "bitcoin", 0, 2600)  # big enough for the thread pool
    parts = [derive(branch.descriptor, "bitcoin", a, min(a + 900, 2600)) for a in range(0, 2600, 900)]
    assert whole == [x for p in parts for x in p]
    assert derive(branch.descriptor, "bitcoin", 2500, 2600) == whole[2500:]
    assert derive(branch.descriptor, "bitcoin", 7, 7) == []


def test_non_ranged_descriptor_has_index_zero_only():
    key = account_xpub("m/84'/0'/0'")
    descriptor = check_descriptor(f"wpkh({key}/0/0)", "bitcoin")
    (branch,) = branches(descriptor)
    assert branch == Branch(descriptor, ranged=False, receive=True)
    assert [a for a, _ in derive(branch.descriptor, "bitcoin", 0, 5)] == [
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"]
    assert derive(branch.descriptor, "bitcoin", 1, 5) == []


def test_single_hex_key_descriptor():
    pubkey = "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"
    (branch,) = branches(check_descriptor(f"wpkh({pubkey})", "regtest"))
    [(address, script)] = derive(branch.descriptor, "regtest", 0, 1)
    assert script == "0014" + bcl_enc.hash160(bytes.fromhex(pubkey)).hex()
    assert address.startswith("bcrt1q")


@pytest.mark.parametrize("steps,receive", [("/0/*", True), ("/1/*", False), ("/*", True),
                                           ("/7/*", True)])
def test_branch_of_a_single_path_descriptor(steps, receive):
    (branch,) = branches(check_descriptor(f"wpkh({ZPUB84}{steps})", "bitcoin"))
    assert branch.receive is receive and branch.ranged


def test_derive_refuses_a_multipath_descriptor_and_bad_ranges():
    descriptor = xpub_descriptor(ZPUB84, "bitcoin")
    with pytest.raises(ValueError, match="branches"):
        derive(descriptor, "bitcoin", 0, 1)
    (branch, _) = branches(descriptor)
    with pytest.raises(ValueError, match="outside"):
        derive(branch.descriptor, "bitcoin", 5, 2)


# -- checksums ------------------------------------------------------------------------
def test_descriptor_checksum_matches_bdk_and_bip380():
    assert descriptor_checksum("raw(deadbeef)") == "89f8spxm"  # BIP 380's example
    text = f"wpkh({ZPUB84}/0/*)"
    parsed = str(bdk.Descriptor(check_descriptor(text, "bitcoin"), bdk.NetworkKind.MAIN))
    body, _, checksum = parsed.partition("#")
    assert descriptor_checksum(body) == checksum
    assert check_descriptor(parsed, "bitcoin") == body


def test_a_wrong_checksum_is_refused():
    body = TESTNET_MULTISIG.split("#")[0]
    with pytest.raises(ValueError, match="checksum #jpxgnm0b does not match"):
        check_descriptor(body + "#jpxgnm0b", "testnet")
    tampered = TESTNET_MULTISIG.replace("sortedmulti(2,", "sortedmulti(1,")
    with pytest.raises(ValueError, match="changed or mistyped"):
        check_descriptor(tampered, "testnet")


# -- addresses ------------------------------------------------------------------------
def _base58(version: int, h: bytes) -> str:
    return bcl_enc.pubkeyhash_to_addr_base58(h, prefix=bytes([version]))


def _bech32(hrp: str, version: int, program: bytes, const: int) -> str:
    """BIP 173's reference encoder with a chosen checksum constant (to build wrong ones)."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    acc, bits, data = 0, 0, [version]
    for byte in program:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data + [0] * 6
    chk = 1
    for v in values:
        top, chk = chk >> 25, (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= g if (top >> i) & 1 else 0
    mod = chk ^ const
    return hrp + "1" + "".join(charset[d] for d in data + [(mod >> 5 * (5 - i)) & 31 for i in range(6)])


_H = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
VALID_ADDRESSES = [  # (as written, network, canonical, scriptPubKey)
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "bitcoin",
     "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "0014" + _H.hex()),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "signet", None,
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    ("bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr", "bitcoin", None,
     "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c"),
    ("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", "bitcoin", None,
     "76a914d986ed01b7a22225a70edbf2ba7cfb63a15cb3aa88ac"),
    ("37VucYSaXLCAsxYyAPfbSi9eh4iEcbShgf", "bitcoin", None,
     "a9143fb6e95812e57bb4691f9a4a628862a61a4f769b87"),
    (_base58(0x6F, _H), "regtest", None, "76a914" + _H.hex() + "88ac"),
    (_base58(0xC4, _H), "testnet", None, "a914" + _H.hex() + "87"),
    (_segwit("regtest", 0, _H)[0], "regtest", None, "0014" + _H.hex()),
    (_segwit("regtest", 1, _H + _H[:12])[0], "regtest", None, "5120" + (_H + _H[:12]).hex()),
]
_BDK_NET = {"bitcoin": bdk.Network.BITCOIN, "testnet": bdk.Network.TESTNET,
            "signet": bdk.Network.SIGNET, "regtest": bdk.Network.REGTEST}


@pytest.mark.parametrize("address,network,canonical,script", VALID_ADDRESSES)
def test_valid_addresses_are_canonical_with_their_script(address, network, canonical, script):
    assert check_address(address, network) == (canonical or address)
    assert address_script(address, network) == script
    assert bdk.Address(address, _BDK_NET[network]).script_pubkey().to_bytes().hex() == script


@pytest.mark.parametrize("address,network,says", [
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "testnet",
     "is a mainnet (bitcoin) address, but this chain's network is testnet"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "regtest",
     "is a testnet or signet address, but this chain's network is regtest"),
    (_segwit("regtest", 0, _H)[0], "signet", "is a regtest address, but this chain's network is signet"),
    (_base58(0x6F, _H), "bitcoin", "is a testnet, signet or regtest address"),
    ("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", "regtest", "is a mainnet (bitcoin) address"),
])
def test_an_address_of_another_network_names_its_network(address, network, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        check_address(address, network)


@pytest.mark.parametrize("address,says", [
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7KV8F3T4", "mixes upper and lower case"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "checksum does not match"),
    ("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabB", "checksum does not match"),
    ("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeab0", "'0' is not used in base58"),
    ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "Ethereum address"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
     "segwit v1 address of 40 bytes, not a type the auditor reads"),
    ("BC1SW50QGDZ25J", "segwit v16 address of 2 bytes"),
    (_bech32("bc", 0, _H, 0x2BC830A3), "segwit v0 uses bech32 checksums"),
    (_bech32("bc", 1, _H + _H[:12], 1), "segwit v1 uses bech32m"),
    (bcl_enc.pubkeyhash_to_addr_bech32(_H, prefix="ltc", witver=0), "prefix ltc1, which no Bitcoin"),
    (_base58(0x30, _H), "unknown base58 version 48"),
    (" 1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", "contains spaces"),
    ("", "expected an address"),
])
def test_invalid_addresses_say_what_is_wrong(address, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        check_address(address, "bitcoin")


def test_a_wif_private_key_given_as_address_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="WIF private key") as e:
        check_address(WIF, "bitcoin")
    assert WIF not in str(e.value) and WIF[4:12] not in str(e.value)


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match="unknown network 'mainnet'; use one of bitcoin"):
        check_address("1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA", "mainnet")
    with pytest.raises(ValueError, match="unknown network"):
        check_descriptor(f"wpkh({ZPUB84}/0/*)", "main")


# -- refusals ---------------------------------------------------------------------------
def _zpub_as(version: int) -> str:
    from auditor.chains.bitcoin.codec import b58decode_check, b58encode_check
    return b58encode_check(version.to_bytes(4, "big") + b58decode_check(ZPUB84)[4:])


@pytest.mark.parametrize("text", [
    f"wpkh({XPRV_ROOT}/84h/0h/0h/0/*)",
    f"wsh(sortedmulti(2,{XPUB44}/0/*,[{FP}/48h/0h/0h/2h]{XPRV_ROOT}/0/*))",
    f"pkh({WIF})",
    XPRV_ROOT,
])
def test_private_keys_are_refused_and_not_echoed(text):
    with pytest.raises(ValueError, match="private key; the auditor is watch-only: use the public") as e:
        check_descriptor(text, "bitcoin")
    assert XPRV_ROOT[4:12] not in str(e.value) and WIF[4:12] not in str(e.value)


def test_a_tprv_is_refused_as_a_private_key():
    tprv = _zpub_as(0x04358394)
    with pytest.raises(ValueError, match="private key"):
        check_descriptor(f"wpkh({tprv}/0/*)", "testnet")


@pytest.mark.parametrize("text,network,says", [
    (f"wpkh({_zpub_as(0x043587CF)}/0/*)", "bitcoin",
     "is a testnet, signet or regtest key (tpub), but this chain's network is bitcoin"),
    (f"wpkh({ZPUB84}/0/*)", "regtest", "is a mainnet (bitcoin) key (zpub), but this chain's network is regtest"),
    (XPUB44, "testnet", "mainnet (bitcoin) key (xpub)"),
])
def test_keys_of_another_network_are_refused_naming_the_network(text, network, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        check_descriptor(text, network)


@pytest.mark.parametrize("steps", ["/0h/*", "/0'/*", "/0/*'", "/0/*h", "/1H/5"])
def test_hardened_steps_after_an_xpub_are_refused(steps):
    with pytest.raises(ValueError, match="cannot be derived from a public key"):
        check_descriptor(f"wpkh({XPUB44}{steps})", "bitcoin")


def test_ypub_and_zpub_inside_a_descriptor_become_xpubs():
    descriptor = check_descriptor(f"wpkh([{FP}/84h/0h/0h]{ZPUB84}/<0;1>/*)", "bitcoin")
    assert ZPUB84 not in descriptor and f"[{FP}/84'/0'/0']xpub6CatWdiZ" in descriptor
    assert first(descriptor, "bitcoin") == ["bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"]


@pytest.mark.parametrize("version", [0x02AA7ED3, 0x0295B43F])  # Zpub, Ypub
def test_bare_slip132_multisig_keys_ask_for_a_descriptor(version):
    with pytest.raises(ValueError, match=r"multisig key \(SLIP-132\); write the wallet as a descriptor"):
        xpub_descriptor(_zpub_as(version), "bitcoin")


@pytest.mark.parametrize("text,says", [
    ("combo(" + XPUB44 + "/0/*)", "`combo(…)` descriptors of this shape are not supported"),
    ("sh(pkh(" + XPUB44 + "/0/*))", "not supported; use one of pkh(KEY)"),
    ("wsh(pk(" + XPUB44 + "/0/*))", "not supported"),
    ("raw(deadbeef)", "not supported"),
    (f"tr({XPUB44}/0/*,pk({ZPUB84}/0/*))", "taproot script trees are not supported"),
    (f"wpkh({XPUB44}/0/*", "is not a descriptor"),
    (f"wsh(multi(0,{XPUB44}/0/*))", "threshold '0' must be a number from 1 to the number of keys (1)"),
    (f"wsh(multi(3,{XPUB44}/0/*,{ZPUB84}/0/*))", "threshold '3'"),
    (f"wsh(multi(x,{XPUB44}/0/*))", "threshold 'x'"),
    (f"wsh(sortedmulti(1,{XPUB44}/0/*,{XPUB44}/0/*))", "appears twice"),
    (f"wsh(sortedmulti(1,{XPUB44}/<0;1>/*,{ZPUB84}/0/*))", "every key ends in /<0;1>/*"),
    (f"wsh(sortedmulti(1,{XPUB44}/0/*,{ZPUB84}/0/1))", "every key ends in /*"),
    (f"wpkh({XPUB44}/<1;0>/*)", "only one /<0;1>/ (receive;change) step"),
    (f"wpkh({XPUB44}/<0;1>/<0;1>/*)", "only one /<0;1>/"),
    (f"wpkh({XPUB44}/*/0)", "`*` must be the last step"),
    (f"wpkh({XPUB44}/x/*)", "/x after xpub6BosfCni… is not a derivation step"),
    (f"wpkh([{FP}/84h/0h]{XPUB44[:-1]}k/0/*)", "is not a valid public key: its checksum"),
    (f"wpkh([xyz/84h]{XPUB44}/0/*)", "key origin [xyz/84h] must be the 8-hex-digit master fingerprint"),
    ("wpkh(0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c/0/*)",
     "plain public key: it has no derivation steps"),
    ("wpkh(0530d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c)", "is not a public key"),
    ("wpkh(04" + "ab" * 64 + ")", "the descriptor is not valid"),
    ("wpkh(é)#aaaaaaaa", "cannot appear in a descriptor"),
])
def test_malformed_descriptors_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)").replace(
            "[", r"\[").replace("]", r"\]").replace("*", r"\*").replace(";", ";")):
        check_descriptor(text, "bitcoin")


def test_a_bare_key_with_steps_asks_for_a_descriptor():
    with pytest.raises(ValueError, match="a bare key takes none"):
        xpub_descriptor(ZPUB84 + "/0/*", "bitcoin")
    # with a key origin it is still a bare key
    descriptor = xpub_descriptor(f"[{FP}/84h/0h/0h]{ZPUB84}", "bitcoin")
    assert descriptor.startswith(f"wpkh([{FP}/84'/0'/0']xpub6CatWdiZ")


@pytest.mark.parametrize("text,hidden", [
    (XPRV_ROOT, XPRV_ROOT[4:]), (XPUB44, XPUB44[4:]),
    (WIF[:-1] + ("a" if WIF[-1] != "a" else "b"), WIF[4:12]),  # a WIF with a typo
])
def test_keys_given_as_addresses_are_refused_without_echo(text, hidden):
    with pytest.raises(ValueError) as e:
        check_address(text, "bitcoin")
    assert hidden not in str(e.value)


def test_a_mistyped_wif_inside_a_descriptor_is_not_echoed():
    typo = WIF[:-1] + ("a" if WIF[-1] != "a" else "b")
    with pytest.raises(ValueError, match="is not a valid public key") as e:
        check_descriptor(f"pkh({typo})", "bitcoin")
    assert WIF[4:12] not in str(e.value)
