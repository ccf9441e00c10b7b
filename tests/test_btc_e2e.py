"""Bitcoin end to end: a config with descriptor wallets and three backends (Esplora,
Electrum, Bitcoin Core RPC simulators over one chain of real signed transactions)
through `load_config` → `run_cycle` → the store, and the real `auditor poll
--once --json` CLI: exact per-tier BTC, the settled/watch split, discovery
state in the store, backends failing and disagreeing, and a reorg."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.config import load_config
from auditor.devbtc import keys
from auditor.devbtc.bitcoind_server import BitcoindServer
from auditor.devbtc.chain import SimChain
from auditor.devbtc.electrum_server import ElectrumServer
from auditor.devbtc.esplora_server import EsploraServer
from auditor.service import run_cycle
from auditor.store import Store

pytestmark = pytest.mark.integration

BTC = 100_000_000
HOT, COLD, DEP, GUAR = (keys.wallet(k, "e2e") for k in ("wpkh", "wsh-sortedmulti", "sh-wpkh", "pkh"))
STRANGER = keys.wallet("wpkh", "e2e-stranger")


@dataclass
class World:
    chain: SimChain
    esplora: EsploraServer
    electrum: ElectrumServer
    bitcoind: BitcoindServer
    tmp: Path

    def config(self, backends: list[str] | None = None, issued: int = 30) -> Path:
        urls = {"esplora": self.esplora.url, "electrum": self.electrum.url,
                "bitcoind": self.bitcoind.url_with()}
        lines = "\n".join(f'      - {{type: {b}, url: "{urls[b]}", timeout: 5s}}'
                          for b in (backends or ["esplora", "electrum", "bitcoind"]))
        (self.tmp / "liabilities.csv").write_text(f"asset,amount,as_of\nBTC,45,{_now()}\n")
        cfg = self.tmp / "auditor.yaml"
        cfg.write_text(f"""
exchange: {{id: btc-e2e, name: BTC E2E, fiat: JPY}}
store: {{path: auditor.db}}
daemon: {{listen: "127.0.0.1:0"}}
chains:
  bitcoin:
    type: bitcoin
    network: regtest
    backends:
{lines}
    confirmations: 3
assets:
  BTC: {{class: crypto, chain: bitcoin, decimals: 8}}
wallets:
  - {{name: btc-hot, chain: bitcoin, tier: hot, role: customer, gap_limit: 5,
      descriptors: ["{HOT.descriptor}"]}}
  - {{name: btc-cold, chain: bitcoin, tier: cold, role: customer, gap_limit: 5,
      descriptors: ["{COLD.descriptor}"]}}
  - {{name: btc-deposits, chain: bitcoin, tier: deposit, role: customer, gap_limit: 5,
      issued: {issued}, descriptors: ["{DEP.descriptor}"]}}
  - {{name: btc-guarantee, chain: bitcoin, tier: cold, role: guarantee,
      addresses: ["{GUAR.address(0, 0)}"]}}
prices: {{source: static, static: {{BTC: "15000000"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 1d}}
rules: {{preset: jp-fsa}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{channels: [console]}}]}}
""")
        return cfg


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chain = SimChain(faucet_coins=20)
    with EsploraServer(chain) as es, ElectrumServer(chain) as el, BitcoindServer(chain) as bd:
        yield World(chain, es, el, bd, tmp_path)


def fund(world: World) -> None:
    world.chain.pay([(HOT.address(0, 0), 150_000_000), (HOT.address(0, 3), 50_000_000),
                     (COLD.address(0, 0), 40 * BTC), (COLD.address(1, 2), 2 * BTC),
                     (DEP.address(0, 25), 25_000_000),  # beyond the gap, inside `issued`
                     (DEP.address(0, 34), 1_000_000),  # within the gap after issued-1 = 29
                     (GUAR.address(0, 0), 3 * BTC)])
    world.chain.mine(3)


def poll(cfg: Path) -> dict:  # type: ignore[type-arg]
    settings = load_config(cfg)
    store = Store.open(settings.store.path)
    try:
        return dict(run_cycle(settings, store, deadline_s=30).poll)
    finally:
        store.close()


def test_three_backends_agree_and_exposure_has_exact_btc_per_tier(world: World) -> None:
    fund(world)
    cfg = world.config()
    out = poll(cfg)
    assert out["status"] == "ok", out["chains"]
    btc = out["exposure"]["assets"]["BTC"]
    assert (btc["hot"], btc["cold"], btc["deposit"], btc["guarantee"]) == ("2", "42", "0.26", "3")
    assert btc["liabilities"] == "45" and btc["online"] == "3"  # max(O=2.26, L−C=3)
    chain = out["chains"]["bitcoin"]
    assert chain["ok"] and chain["problems"] == []
    assert chain["settled"]["block"] == world.chain.tip().height - 2
    assert chain["settled"]["block_hash"] == world.chain.block(world.chain.tip().height - 2).hash
    assert chain["addresses"] == {"btc-hot": 2, "btc-cold": 2, "btc-deposits": 2, "btc-guarantee": 1}
    store = Store.open(load_config(cfg).store.path)
    try:
        known = store.discovery("bitcoin")
    finally:
        store.close()
    receive = {k.split("|")[0]: v for k, v in known.items() if "/0/*" in k}
    change = {k.split("|")[0]: v for k, v in known.items() if "/1/*" in k}
    assert receive == {"btc-hot": 3, "btc-cold": 0, "btc-deposits": 34}
    assert change == {"btc-cold": 2}


def test_the_cli_prints_exact_btc_and_a_shallow_coin_waits_for_its_confirmations(world: World) -> None:
    fund(world)
    world.chain.pay([(HOT.address(0, 1), 12_345_678)])
    world.chain.mine(2)  # two confirmations of three: watch view only
    cfg = world.config(["esplora"])
    res = subprocess.run([sys.executable, "-m", "auditor", "-c", str(cfg), "poll", "--once", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["exposure"]["assets"]["BTC"]["hot"] == "2"
    world.chain.mine(1)
    assert poll(cfg)["exposure"]["assets"]["BTC"]["hot"] == "2.12345678"


def test_a_hot_payment_with_change_drops_the_watch_view_at_once_and_pages(world: World) -> None:
    fund(world)
    cfg = world.config(["esplora", "electrum"])
    poll(cfg)
    coin = [(t, v) for t, v, _val, _h in world.chain.utxos(HOT.script(0, 0))][0]
    # 1.5 BTC in: 0.9 to a stranger, 0.5999 back as change, 0.0001 fee; in the mempool only
    world.chain.spend([coin], [(STRANGER.address(0, 0), 90_000_000), (HOT.address(1, 0), 59_990_000)],
                      HOT.signer(), fee=10_000)
    out = poll(cfg)
    assert out["status"] == "ok"
    assert out["exposure"]["assets"]["BTC"]["hot"] == "2"  # settled: not spent at S
    drains = [a for a in out["alerts"] if a["rule"] == "hot_drain"]
    assert drains and drains[0]["subject"] == "btc-hot/BTC" and drains[0]["severity"] == "critical"
    settings = load_config(cfg)
    store = Store.open(settings.store.path)
    try:
        watch = store.last_watch()
    finally:
        store.close()
    assert watch is not None and watch[0][("btc-hot", "BTC")] == 50_000_000 + 59_990_000


def test_one_failing_backend_is_a_warning_and_all_failing_is_stale_data(world: World) -> None:
    fund(world)
    cfg = world.config()
    world.electrum.faults.set("error")
    out = poll(cfg)
    assert out["status"] == "ok"
    problems = out["chains"]["bitcoin"]["problems"]
    assert [(p["severity"], p["provider"]) for p in problems] == [("warning", world.electrum.url)]
    assert any(a["rule"] == "stale_data" and a["severity"] == "warning" for a in out["alerts"])
    world.esplora.faults.set("garbage")
    world.bitcoind.faults.set("error")
    out = poll(cfg)
    assert out["status"] == "failed" and out["exposure"] is None
    assert not out["chains"]["bitcoin"]["ok"]
    stale = [a for a in out["alerts"] if a["rule"] == "stale_data" and a["subject"] == "bitcoin"]
    assert stale and stale[0]["severity"] == "critical"


def test_two_backends_on_different_chains_disagree_and_the_chain_is_unreadable(world: World) -> None:
    fund(world)
    other = SimChain(faucet_coins=20)
    other.pay([(HOT.address(0, 0), 150_000_000), (COLD.address(0, 0), 41 * BTC)])
    other.mine(3 + world.chain.tip().height - other.tip().height)
    with ElectrumServer(other) as forked:
        cfg = world.config(["esplora"])
        text = cfg.read_text().replace(
            f'      - {{type: esplora, url: "{world.esplora.url}", timeout: 5s}}',
            f'      - {{type: esplora, url: "{world.esplora.url}", timeout: 5s}}\n'
            f'      - {{type: electrum, url: "{forked.url}", timeout: 5s}}')
        cfg.write_text(text)
        out = poll(cfg)
    assert out["status"] == "failed"
    crit = [p for p in out["chains"]["bitcoin"]["problems"] if p["severity"] == "critical"]
    assert crit and set(crit[0]["values"]) == {world.esplora.url, forked.url}


def test_a_reorg_that_removes_a_deposit_removes_it_from_the_next_poll(world: World) -> None:
    fund(world)
    txid = world.chain.pay([(HOT.address(0, 2), 70_000_000)])
    world.chain.mine(3)
    cfg = world.config(["esplora", "bitcoind"])
    assert poll(cfg)["exposure"]["assets"]["BTC"]["hot"] == "2.7"
    world.chain.reorg(3, drop=[txid], new_blocks=4)
    out = poll(cfg)
    assert out["status"] == "ok"
    assert out["exposure"]["assets"]["BTC"]["hot"] == "2"


def test_bitcoin_flows_sweeps_silent_theft_pages_and_a_sanctioned_sender_is_critical(world: World) -> None:
    fund(world)
    cfg = world.config(["esplora", "electrum"])
    (world.tmp / "withdrawals.csv").write_text("id,asset,to,amount,approved_at\n")
    (world.tmp / "sanctioned.txt").write_text(world.chain.faucet.address + "\n")
    cfg.write_text(cfg.read_text() + "withdrawals: {source: csv, path: withdrawals.csv}\n"
                   "sanctions: {lists: [builtin, sanctioned.txt], max_age: 3650d}\n")
    poll(cfg)  # the ingestion starts at the tip
    # a deposit from the (sanctioned) faucet → critical, naming its input address
    deposit = world.chain.pay([(HOT.address(0, 4), 10_000_000)])
    out = poll(cfg)
    hits = [a for a in out["alerts"] if a["rule"] == "sanctioned_counterparty"]
    assert [h["subject"] for h in hits] == [f"bitcoin:{deposit}:{world.chain.faucet.address}"]
    assert hits[0]["severity"] == "critical"
    # a sweep hot → cold (mempool first, then mined): internal, silent
    coins = [(t, v) for t, v, _val, _h in world.chain.utxos(HOT.script(0, 0))]
    world.chain.spend(coins, [(COLD.address(0, 1), 149_990_000)], HOT.signer(), fee=10_000)
    out = poll(cfg)
    assert not [a for a in out["alerts"] if a["rule"] in ("unmatched_outflow", "hot_drain", "cold_outflow")]
    world.chain.mine(1)
    poll(cfg)
    # a theft from hot, still in the mempool: pages with destination and txid
    coins = [(t, v) for t, v, _val, _h in world.chain.utxos(HOT.script(0, 3))]
    theft = world.chain.spend(coins, [(STRANGER.address(0, 1), 49_990_000)], HOT.signer(), fee=10_000)
    out = poll(cfg)
    subjects = {a["subject"] for a in out["alerts"] if a["rule"] == "unmatched_outflow"}
    assert f"bitcoin:{theft}:{STRANGER.address(0, 1)}" in subjects
    settings = load_config(cfg)
    store = Store.open(settings.store.path)
    try:
        rows = {(t["tx"], t["kind"]): (t["class"], t["block"]) for t in store.list_transfers()}
    finally:
        store.close()
    assert rows[(theft, "native")] == ("unknown", 0)  # still in the mempool
    assert rows[(deposit, "native")][0] == "sanctioned" and rows[(deposit, "native")][1] > 0


def test_a_backend_that_cannot_even_be_set_up_is_a_failed_backend_not_a_crash(world: World) -> None:
    from auditor.chains.bitcoin.client import BitcoinClient
    from auditor.settings import BackendSettings, ChainSettings, Secret, WalletSettings

    fund(world)
    good = BackendSettings("esplora", Secret(world.esplora.url), world.esplora.url)
    bad = BackendSettings("electrum", Secret("udp://127.0.0.1:1"), "ssl://127.0.0.1:1")  # refused at set-up
    chain = ChainSettings(name="bitcoin", type="bitcoin", network="regtest", confirmations=3,
                          native_asset="BTC", backends=(good, bad))
    hot = WalletSettings(name="btc-hot", chain="bitcoin", tier="hot", role="customer", addresses=(),
                         assets=("BTC",), descriptors=(HOT.descriptor,), gap_limit=5)
    r = BitcoinClient(chain).read([hot], {}, time.monotonic() + 20)
    assert r.ok and r.settled is not None and sum(r.settled.balances.values()) == 200_000_000
    assert [(p.severity, p.provider) for p in r.problems] == [("warning", "ssl://127.0.0.1:1")]
    assert "cannot be set up" in r.problems[0].message
    only_bad = ChainSettings(name="bitcoin", type="bitcoin", network="regtest", confirmations=3,
                             native_asset="BTC", backends=(bad,))
    r = BitcoinClient(only_bad).read([hot], {}, time.monotonic() + 20)
    assert not r.ok and r.settled is None
