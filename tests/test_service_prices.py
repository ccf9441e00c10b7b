"""run_cycle with live price sources: a failing source makes hot_ratio null and fires
stale_data `prices:ASSET`; the next good cycle resolves it; prices are stored with
their source, round and time; Chainlink is read at the cycle's settled block."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_prices_chainlink import deploy_feed, set_round
from test_prices_http import PriceServer

from auditor import devchain
from auditor.config import load_config
from auditor.model import BlockRef, ChainReading, ChainView
from auditor.service import run_cycle
from auditor.settings import AssetSettings, Settings, WalletSettings
from auditor.store import Store

ETH = 10**18
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
HOT = "0x" + "11" * 20
COLD = "0x" + "22" * 20


class OneChain:
    """A scripted ethereum client: 5 ETH hot, 95 ETH cold."""

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        bal = {(HOT, "ETH"): 5 * ETH, (COLD, "ETH"): 95 * ETH}
        nonces = {HOT: 0, COLD: 0}
        ts = int(NOW.timestamp())
        return ChainReading("ethereum", True,
                            ChainView(BlockRef(99, "0x" + "aa" * 32, ts - 12), bal, nonces),
                            ChainView(BlockRef(100, "0x" + "bb" * 32, ts), bal, nonces),
                            head_timestamp=ts)

    def close(self) -> None:
        pass


def config(tmp: Path, prices: str, rpc: str = "http://127.0.0.1:1", confirmations: int = 2) -> Settings:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: price-ex}}
store: {{path: var/a.db}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "{rpc}"}}], confirmations: {confirmations}}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {prices}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, guarantee_coverage: off}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{severity: [warning, critical], channels: [console]}}]}}
""")
    return load_config(cfg, env={})


@pytest.fixture
def server() -> Iterator[PriceServer]:
    s = PriceServer()
    yield s
    s.close()


def states(poll: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(a["rule"], a["subject"]): a["state"] for a in poll["alerts"]}


def test_failing_http_prices_make_hot_ratio_null_and_fire_stale_data_then_resolve(
        tmp_path, server) -> None:
    settings = config(tmp_path, f'{{source: http, url: "{server.url()}", paths: {{ETH: "eth"}}, '
                                'timeout: 1s}')
    store = Store.open(settings.store.path)
    try:
        server.body = b'{"eth": "450000.5"}'
        good = run_cycle(settings, store, now=NOW, clients={"ethereum": OneChain()})
        assert good.status == "ok" and good.poll["exposure"]["hot_ratio"] == "0.05"
        eth = good.poll["exposure"]["assets"]["ETH"]
        assert eth["price"] == "450000.5" and eth["price_as_of"] == "2026-11-24T10:00:00Z"
        assert eth["price_source"] == f"http:http://127.0.0.1:{server.server.server_address[1]}"
        assert eth["price_round"] is None

        server.status = 500
        bad = run_cycle(settings, store, now=NOW + timedelta(minutes=1),
                        clients={"ethereum": OneChain()})
        assert bad.status == "partial"
        assert bad.poll["exposure"]["hot_ratio"] is None
        assert bad.poll["exposure"]["assets"]["ETH"]["price"] is None  # never the old price
        assert states(bad.poll)[("stale_data", "prices:ETH")] == "firing"
        alert = next(a for a in bad.poll["alerts"] if a["subject"] == "prices:ETH")
        assert "HTTP 500" in alert["summary"] and "api_key" not in alert["summary"]

        server.status = 200
        again = run_cycle(settings, store, now=NOW + timedelta(minutes=2),
                          clients={"ethereum": OneChain()})
        assert again.status == "ok" and again.poll["exposure"]["hot_ratio"] == "0.05"
        assert states(again.poll)[("stale_data", "prices:ETH")] == "resolved"
    finally:
        store.close()


def test_chainlink_prices_are_read_at_the_cycles_settled_block_and_stored(
        tmp_path, anvil: devchain.Anvil, eth_world) -> None:
    eth_feed = deploy_feed(anvil, 8, "ETH / USD")
    jpy_feed = deploy_feed(anvil, 8, "JPY / USD")
    set_round(anvil, jpy_feed, 1, 666666, updated=NOW)
    set_round(anvil, eth_feed, 10, 300000000000, updated=NOW)  # 3000 USD
    anvil.mine(3)
    # Newer answers after the settled block: S is the block just before round 11's.
    r11 = int(set_round(anvil, eth_feed, 11, 100000000000, updated=NOW)["blockNumber"], 16)
    set_round(anvil, eth_feed, 12, 100000000000, updated=NOW)
    confirmations = anvil.block_number() - (r11 - 1) + 1  # S = head - confirmations + 1
    settings = config(tmp_path, f'{{source: chainlink, chain: ethereum, feeds: {{ETH: "{eth_feed}"}}, '
                                f'fiat_feed: "{jpy_feed}", max_age: 10m}}',
                      rpc=anvil.url, confirmations=confirmations)
    store = Store.open(settings.store.path)
    try:
        out = run_cycle(settings, store, now=NOW + timedelta(minutes=1))
        assert out.poll["chains"]["ethereum"]["ok"] is True
        settled = out.poll["chains"]["ethereum"]["settled"]["block"]
        assert settled == r11 - 1
        eth = out.poll["exposure"]["assets"]["ETH"]
        assert eth["price_round"] == "10/1"  # not round 12, set after the settled block
        assert eth["price_source"] == f"chainlink:{eth_feed.lower()}/{jpy_feed.lower()}@{settled}"
        assert eth["price"] == "450000.45000045000045"  # 3000 ÷ 0.00666666, half-even at 18
        assert eth["price_as_of"] == "2026-11-24T10:00:00Z"
        stored = store.last_cycle()  # the poll JSON as stored with the cycle
        assert stored is not None
        assert stored["exposure"]["assets"]["ETH"]["price_source"] == eth["price_source"]
    finally:
        store.close()
