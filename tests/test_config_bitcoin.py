"""`type: bitcoin` chains and the wallets and assets on them: a valid config
loads with the expected settings; every problem names its key path and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_config_fixtures import full_config, problems_of, write

from auditor.chains.bitcoin.codec import descriptor_checksum
from auditor.config import check_config, load_config
from auditor.settings import Secret

REPO = Path(__file__).resolve().parent.parent
XPUB44 = ("xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DS"
          "SSSoekkudhUd9yLb6qx39T9nMdj")
YPUB49 = ("ypub6Ww3ibxVfGzLrAH1PNcjyAWenMTbbAosGNB6VvmSEgytSER9azLDWCxoJwW7Ke7icmizBMXrzBx9979F"
          "faHxHcrArf3zbeJJJUZPf663zsP")
ZPUB84 = ("zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUU"
          "kgDKf31mGDtKsAYz2oz2AGutZYs")
TPUB = ("tpubDFH9dgzveyD8zTbPUFuLrGmCydNvxehyNdUXKJAQN8x4aZ4j6UZqGfnqFrD4NqyaTVGKbvEW54tsvPTK2Uo"
        "SbCC1PJY8iCNiwTL3RWZEheQ")
XPRV = ("xprv9s21ZrQH143K3GJpoapnV8SFfukcVBSfeCficPSGfubmSFDxo1kuHnLisriDvSnRRuL2Qrg5ggqHKNVpxR8"
        "6QEC8w35uxmGoggxtQTPvfUu")
P2WPKH = "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"
_MULTI = (f"wsh(sortedmulti(2,[73c5da0a/44h/0h/0h]{XPUB44}/<0;1>/*,[73c5da0a/49h/0h/0h]{YPUB49}"
          f"/<0;1>/*,[73c5da0a/84h/0h/0h]{ZPUB84}/<0;1>/*))")
MULTISIG = f"{_MULTI}#{descriptor_checksum(_MULTI)}"

CHAIN = """\
  bitcoin:
    type: bitcoin
    network: bitcoin
    backends:
      - {type: esplora, url: "https://esplora.example/api"}
      - {type: electrum, url: "ssl://electrum.example:50002", concurrency: 8}
      - {type: bitcoind, url: "http://auditor:s3cret@127.0.0.1:8332", timeout: 30s}
"""
ASSET = "  BTC: {class: crypto, chain: bitcoin, decimals: 8}\n"
WALLETS = f"""\
  - name: btc-hot
    chain: bitcoin
    tier: hot
    role: customer
    descriptors: ["{ZPUB84}"]
    addresses: ["{P2WPKH}"]
  - name: btc-cold
    chain: bitcoin
    tier: cold
    role: customer
    descriptors: ["{MULTISIG}"]
    gap_limit: 50
  - name: btc-deposits
    chain: bitcoin
    tier: deposit
    role: customer
    xpub: {XPUB44}
    issued: 1000
"""


def btc_config(chain: str = CHAIN, asset: str = ASSET, wallets: str = WALLETS) -> str:
    cfg = full_config().replace("assets:\n", chain + "assets:\n", 1)
    cfg = cfg.replace("wallets:\n", asset + "wallets:\n", 1)
    cfg = cfg.replace("prices:\n", wallets + "prices:\n", 1)
    return cfg.replace('static: {ETH: "450000.5"', 'static: {BTC: "15000000", ETH: "450000.5"', 1)


def line_of(cfg: str, fragment: str) -> int:
    return next(i for i, line in enumerate(cfg.splitlines(), 1) if fragment in line)


def only(tmp_path: Path, cfg: str, key_path: str, severity: str = "error"):
    (p,) = problems_of(write(tmp_path, cfg), key_path, severity=severity)
    return p


def errors(tmp_path: Path, cfg: str) -> list:
    _, problems = check_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    return [p for p in problems if p.severity == "error"]


# -- a valid config ------------------------------------------------------------------
def test_a_bitcoin_chain_with_descriptor_wallets_loads(tmp_path):
    s = load_config(write(tmp_path, btc_config()), env={"SOC_SECRET": "x"})
    chain = s.chains["bitcoin"]
    assert (chain.type, chain.network, chain.confirmations, chain.max_head_age) == (
        "bitcoin", "bitcoin", 3, 7200)
    assert chain.rpc == () and chain.multicall3 is None and chain.native_asset == "BTC"
    assert [(b.type, b.label, b.timeout, b.concurrency) for b in chain.backends] == [
        ("esplora", "https://esplora.example:443", 10, 16),
        ("electrum", "ssl://electrum.example:50002", 10, 8),
        ("bitcoind", "http://127.0.0.1:8332", 30, 16)]
    assert chain.backends[2].url == Secret("http://auditor:s3cret@127.0.0.1:8332")
    assert s.assets["BTC"].on_chain("bitcoin").decimals == 8
    hot, cold, deposits = (w for w in s.wallets if w.chain == "bitcoin")
    assert hot.addresses == (P2WPKH.lower(),) and hot.assets == ("BTC",)
    assert hot.descriptors == (
        "wpkh(xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMF"
        "MKHPJ4ZeZXYVUhLv1VMrjPC7PW6V/<0;1>/*)",)
    assert (hot.gap_limit, hot.issued) == (20, 0)
    (multisig,) = cold.descriptors
    assert multisig.startswith("wsh(sortedmulti(2,[73c5da0a/44'/0'/0']xpub6BosfCni")
    assert "#" not in multisig and "ypub" not in multisig and cold.gap_limit == 50
    assert deposits.descriptors == (f"pkh({XPUB44}/<0;1>/*)",) and deposits.issued == 1000
    assert deposits.addresses == ()
    assert not [w for w in s.warnings if "bitcoin" in w]


def test_defaults_can_be_overridden_and_a_single_backend_is_a_warning(tmp_path):
    chain = ("  bitcoin:\n    type: bitcoin\n    network: regtest\n    confirmations: 6\n"
             "    max_head_age: 30m\n    backends: [{type: esplora, url: \"http://127.0.0.1:3002\"}]\n")
    wallets = f"  - {{name: btc-hot, chain: bitcoin, tier: hot, role: customer, xpub: [{TPUB}]}}\n"
    cfg = btc_config(chain=chain, wallets=wallets)
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert (s.chains["bitcoin"].confirmations, s.chains["bitcoin"].max_head_age) == (6, 1800)
    assert s.wallets[-1].descriptors == (f"pkh({TPUB}/<0;1>/*)",)
    p = only(tmp_path, cfg, "chains.bitcoin.backends", "warning")
    assert "single backend" in p.message and p.line == line_of(cfg, "backends:")


# -- chain problems --------------------------------------------------------------------
@pytest.mark.parametrize("old,new,path,says", [
    ("    network: bitcoin\n", "", "chains.bitcoin", "`network` is required"),
    ("network: bitcoin", "network: mainnet", "chains.bitcoin.network",
     "'mainnet' is not one of bitcoin | testnet | signet | regtest"),
    ("      - {type: esplora", "      - {type: blockstream", "chains.bitcoin.backends[0].type",
     "'blockstream' is not one of esplora | electrum | bitcoind"),
    ('url: "https://esplora.example/api"', 'url: "tcp://esplora.example:80"',
     "chains.bitcoin.backends[0].url", "must start with http://, https://"),
    ('url: "ssl://electrum.example:50002"', 'url: "https://electrum.example"',
     "chains.bitcoin.backends[1].url", "must start with tcp://, ssl://"),
    ("concurrency: 8", "concurrency: 0", "chains.bitcoin.backends[1].concurrency", "use at least 1"),
    ("timeout: 30s", "timeout: 30", "chains.bitcoin.backends[2].timeout", "has no unit"),
    ('{type: esplora, url: "https://esplora.example/api"}',
     '{type: esplora, url: "https://esplora.example/api", cookie_file: .cookie}',
     "chains.bitcoin.backends[0].cookie_file", "`cookie_file` is for `type: bitcoind`"),
    ("timeout: 30s}", "timeout: 30s, cookie_file: /var/lib/bitcoin/.cookie}",
     "chains.bitcoin.backends[2].cookie_file", "either the credentials in the url or `cookie_file`"),
    ('url: "ssl://electrum.example:50002"', 'url: "tcp://electrum.example:50001", ca_file: ca.pem',
     "chains.bitcoin.backends[1].ca_file", "`ca_file` is for `type: electrum` servers at ssl://"),
    ('concurrency: 8', "ca_file: missing.pem", "chains.bitcoin.backends[1].ca_file",
     "missing.pem does not exist"),
    ("    network: bitcoin\n", "    network: bitcoin\n    rpc: [http://127.0.0.1:8545]\n",
     "chains.bitcoin.rpc", "`rpc` is a key of `type: ethereum` chains; a bitcoin chain lists its "
                           "servers under `backends`"),
    ("    network: bitcoin\n", "    network: bitcoin\n    multicall3: null\n",
     "chains.bitcoin.multicall3", "Multicall3 is an Ethereum contract"),
    ("    network: bitcoin\n", "    network: bitcoin\n    confirmation: 3\n",
     "chains.bitcoin.confirmation", "did you mean `confirmations`?"),
    ("    confirmations: 12\n", "    confirmations: 12\n    network: bitcoin\n",
     "chains.ethereum.network", "`network` is a key of `type: bitcoin` chains"),
    ("    confirmations: 12\n", "    confirmations: 12\n    backends: []\n",
     "chains.ethereum.backends", "`backends` is a key of `type: bitcoin` chains"),
])
def test_chain_problems_name_the_key_and_line(tmp_path, old, new, path, says):
    cfg = btc_config().replace(old, new, 1)
    assert cfg != btc_config()
    p = only(tmp_path, cfg, path)
    assert says in p.message and 'chain "' in p.message
    fragment = new.strip().split("\n")[-1] if new.strip() else "  bitcoin:"
    assert p.line == line_of(cfg, fragment.split(",")[0] if path.endswith("]") else fragment)


def test_backends_must_be_a_non_empty_list_without_repeats(tmp_path):
    empty = btc_config(chain=CHAIN.split("    backends:")[0] + "    backends: []\n")
    assert "expected a list of servers" in only(tmp_path, empty, "chains.bitcoin.backends").message
    twice = btc_config(chain=CHAIN + '      - {type: esplora, url: "https://esplora.example/api"}\n')
    p = only(tmp_path, twice, "chains.bitcoin.backends[3]")
    assert "https://esplora.example:443 is listed twice (as backends[0])" in p.message


def test_a_backend_url_with_a_password_is_never_shown(tmp_path):
    cfg = btc_config().replace("http://auditor:s3cret@127.0.0.1:8332", "ftp://auditor:s3cret@node:21")
    p = only(tmp_path, cfg, "chains.bitcoin.backends[2].url")
    assert "ftp://node:21" in p.message and "s3cret" not in p.message


# -- assets ------------------------------------------------------------------------------
def test_bitcoin_assets_are_native_with_8_decimals(tmp_path):
    p = only(tmp_path, btc_config(asset=ASSET.replace("decimals: 8", "decimals: 18")),
             "assets.BTC.decimals")
    assert "satoshis: `decimals` must be 8, not 18" in p.message
    token = ASSET.replace("decimals: 8", 'decimals: 8, token: "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"')
    p = only(tmp_path, btc_config(asset=token), "assets.BTC.token")
    assert "bitcoin chain: it has no tokens" in p.message


# -- wallets -------------------------------------------------------------------------------
@pytest.mark.parametrize("old,new,path,says", [
    (f'addresses: ["{P2WPKH}"]', 'addresses: ["tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"]',
     "wallets[3].addresses[0]", "is a testnet or signet address, but this chain's network is bitcoin"),
    (f'addresses: ["{P2WPKH}"]', 'addresses: ["0x000000000000000000000000000000000000dEaD"]',
     "wallets[3].addresses[0]", "Ethereum address"),
    (f'addresses: ["{P2WPKH}"]', f'addresses: ["{P2WPKH}", "{P2WPKH.lower()}"]',
     "wallets[3].addresses[1]", "is listed twice"),
    (f'descriptors: ["{ZPUB84}"]', f'descriptors: ["wpkh({XPUB44}/0h/*)"]',
     "wallets[3].descriptors[0]", "cannot be derived from a public key"),
    (f'descriptors: ["{ZPUB84}"]', f'descriptors: ["wpkh({TPUB}/0/*)"]',
     "wallets[3].descriptors[0]", "(tpub), but this chain's network is bitcoin"),
    (f'descriptors: ["{ZPUB84}"]', f'descriptors: ["{ZPUB84}", "wpkh({XPUB44.replace("xpub6Bos", "xpub6Cat")})"]',
     "wallets[3].descriptors[1]", "checksum does not match"),
    (f'descriptors: ["{ZPUB84}"]', f'descriptors: ["{ZPUB84}", "{ZPUB84}"]',
     "wallets[3].descriptors[1]", "listed twice"),
    (MULTISIG, MULTISIG[:-1] + ("q" if MULTISIG[-1] != "q" else "p"), "wallets[4].descriptors[0]",
     "does not match the descriptor"),
    ("    gap_limit: 50\n", "    gap_limit: 0\n", "wallets[4].gap_limit", "use at least 1"),
    ("    issued: 1000\n", "    issued: -1\n", "wallets[5].issued", "use at least 0"),
    (f"    xpub: {XPUB44}\n", f'    xpub: "pkh({XPUB44}/0/*)"\n', "wallets[5].xpub[0]",
     "is not a valid public key"),
    (f"    xpub: {XPUB44}\n", f'    addresses: ["{P2WPKH}"]\n', "wallets[5].issued",
     "it needs a ranged descriptor"),
    (f'descriptors: ["{ZPUB84}"]', 'descripters: ["x"]', "wallets[3].descripters",
     "did you mean `descriptors`?"),
])
def test_wallet_problems_name_the_wallet_key_and_line(tmp_path, old, new, path, says):
    cfg = btc_config().replace(old, new, 1)
    assert cfg != btc_config()
    p = only(tmp_path, cfg, path)
    assert says in p.message and 'wallet "btc-' in p.message
    at = "issued: 1000" if path.endswith("issued") and "issued" not in new else new.strip()
    assert p.line == line_of(cfg, at)


def test_a_private_key_in_a_descriptor_is_refused_once_without_echo(tmp_path):
    cfg = btc_config().replace(f'descriptors: ["{ZPUB84}"]', f'descriptors: ["wpkh({XPRV}/0/*)"]')
    problems = [p for p in errors(tmp_path, cfg) if p.path.startswith("wallets[3]")]
    assert [p.path for p in problems] == ["wallets[3].descriptors[0]"]
    assert "watch-only" in problems[0].message and XPRV[4:20] not in problems[0].message
    assert problems[0].line == line_of(cfg, "descriptors: [\"wpkh(xprv")


def test_a_raw_taproot_key_is_caught_by_the_private_key_guard(tmp_path):
    # 64 hex digits look like a private key wherever they are written; the docs say
    # to give the taproot key as an xpub instead.
    key = "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
    cfg = btc_config().replace(f'descriptors: ["{ZPUB84}"]', f'descriptors: ["tr({key})"]')
    p = only(tmp_path, cfg, "wallets[3].descriptors[0]")
    assert "64-hex-digit private key" in p.message and key[4:] not in p.message


def test_a_bare_multisig_zpub_asks_for_a_descriptor(tmp_path):
    from auditor.chains.bitcoin.codec import b58decode_check, b58encode_check
    big_z = b58encode_check(bytes.fromhex("02aa7ed3") + b58decode_check(ZPUB84)[4:])
    cfg = btc_config().replace(f'descriptors: ["{ZPUB84}"]', f'descriptors: ["{big_z}"]')
    p = only(tmp_path, cfg, "wallets[3].descriptors[0]")
    assert "multisig key (SLIP-132)" in p.message and "wsh(sortedmulti(" in p.message


def test_a_wallet_needs_descriptors_or_addresses(tmp_path):
    cfg = btc_config().replace(f"    xpub: {XPUB44}\n    issued: 1000\n", "")
    p = only(tmp_path, cfg, "wallets[5]")
    assert "give the wallet's `descriptors` (or `xpub`) and/or `addresses`" in p.message
    assert p.line == line_of(cfg, "name: btc-deposits")


def test_bitcoin_wallet_keys_on_an_ethereum_wallet_are_errors(tmp_path):
    cfg = btc_config().replace("    assets: [ETH]\n", f"    assets: [ETH]\n    xpub: {XPUB44}\n"
                               "    gap_limit: 5\n", 1)
    for key in ("xpub", "gap_limit"):
        p = only(tmp_path, cfg, f"wallets[2].{key}")
        assert f"`{key}` is for wallets on `type: bitcoin` chains" in p.message
        assert p.line == line_of(cfg, f"    {key}:")


def test_one_descriptor_in_two_wallets_is_an_error(tmp_path):
    cfg = btc_config().replace(f"xpub: {XPUB44}", f"descriptors: [\"pkh({XPUB44}/<0;1>/*)\", {ZPUB84}]")
    p = only(tmp_path, cfg, "wallets[5].descriptors[1]")
    assert 'also in wallet "btc-hot"' in p.message


def test_an_invalid_chain_does_not_cascade_into_its_wallets(tmp_path):
    cfg = btc_config().replace("network: bitcoin", "network: mainnet")
    assert [p.path for p in errors(tmp_path, cfg)] == ["chains.bitcoin.network"]


# -- documentation ---------------------------------------------------------------------------
BITCOIN_KEYS = [
    "chains.<name>.network", "chains.<name>.backends", "chains.<name>.backends[].type",
    "chains.<name>.backends[].url", "chains.<name>.backends[].url_file",
    "chains.<name>.backends[].timeout", "chains.<name>.backends[].concurrency",
    "chains.<name>.backends[].cookie_file", "chains.<name>.backends[].ca_file",
    "wallets[].descriptors", "wallets[].xpub", "wallets[].gap_limit", "wallets[].issued",
]


def test_every_bitcoin_key_is_documented():
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+(?:[.\[][^`\s]*)?)`", text))
    assert [k for k in BITCOIN_KEYS if k not in documented] == []
