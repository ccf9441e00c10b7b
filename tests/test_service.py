"""run_cycle() with scripted chain clients: partial and failed cycles, the
deadline, config_changed, and a crash mid-write leaving the store as it was."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.config import load_config
from auditor.model import BlockRef, ChainReading, ChainView
from auditor.service import poll_exit_code, run_cycle
from auditor.settings import AssetSettings, Settings, WalletSettings
from auditor.store import Store

ETH = 10**18
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
A1 = "0x" + "11" * 20
A2 = "0x" + "22" * 20
B1 = "0x" + "33" * 20
B2 = "0x" + "44" * 20


def _config(tmp: Path, hot_ratio_critical: str = "5%") -> Settings:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\nPOL,1000\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: svc-ex}}
store: {{path: var/a.db}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
  polygon: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:2"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  POL: {{class: crypto, chain: polygon, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{A1}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{A2}"]}}
  - {{name: pol-hot, chain: polygon, tier: hot, role: customer, addresses: ["{B1}"]}}
  - {{name: pol-cold, chain: polygon, tier: cold, role: customer, addresses: ["{B2}"]}}
prices: {{source: static, static: {{ETH: "100", POL: "1"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, hot_ratio: {{critical: "{hot_ratio_critical}"}}, guarantee_coverage: off}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{severity: [warning, critical], channels: [console]}}]}}
""")
    return load_config(cfg, env={})


class Scripted:
    """A ChainClient whose next answers are set by the test."""

    def __init__(self, name: str, balances: Mapping[str, int], *, ok: bool = True,
                 sleep: float = 0.0, head: int = 100):
        self.name, self.balances, self.ok, self.sleep, self.head = name, dict(balances), ok, sleep, head

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        if self.sleep:
            time.sleep(self.sleep)
        if not self.ok:
            return ChainReading(self.name, False, None, None, error="connection refused")
        asset = "ETH" if self.name == "ethereum" else "POL"
        bal = {(a.lower(), asset): v for a, v in self.balances.items()}
        nonces = {a.lower(): 0 for a in self.balances}
        ts = int(NOW.timestamp())
        settled = ChainView(BlockRef(self.head - 1, "0x" + "aa" * 32, ts - 12), bal, nonces)
        watch = ChainView(BlockRef(self.head, "0x" + "bb" * 32, ts), bal, nonces)
        return ChainReading(self.name, True, settled, watch, head_timestamp=ts)

    def close(self) -> None:
        pass


@pytest.fixture
def env(tmp_path: Path):
    settings = _config(tmp_path)
    store = Store.open(settings.store.path)
    yield settings, store
    store.close()


def clients(eth_hot: int = 3 * ETH, pol_ok: bool = True, pol_sleep: float = 0.0) -> dict[str, Scripted]:
    return {"ethereum": Scripted("ethereum", {A1: eth_hot, A2: 100 * ETH - eth_hot}),
            "polygon": Scripted("polygon", {B1: 30 * ETH, B2: 970 * ETH}, ok=pol_ok, sleep=pol_sleep)}


def test_partial_cycle_counts_the_chains_read_and_neither_fires_nor_resolves_the_rest(env) -> None:
    settings, store = env
    first = run_cycle(settings, store, now=NOW, clients=clients(eth_hot=6 * ETH))
    assert first.status == "ok"
    # 6 ETH × 100 + 30 POL × 1 over 100 ETH × 100 + 1000 POL: (600 + 30) / 11000
    assert first.poll["exposure"]["hot_ratio"] == "0.057272727273"
    assert [a["rule"] for a in first.poll["alerts"]] == ["hot_ratio"]

    second = run_cycle(settings, store, now=NOW + timedelta(minutes=1),
                       clients=clients(eth_hot=3 * ETH, pol_ok=False))
    assert second.status == "partial" and poll_exit_code(second, None) == 0
    assert second.poll["exposure"]["hot_ratio"] is None  # POL unreadable: no combined ratio
    assert second.poll["exposure"]["assets"]["ETH"]["hot"] == "3"
    firing = {(a["rule"], a["subject"]): a["state"] for a in second.poll["alerts"]}
    assert firing[("hot_ratio", "combined")] == "firing"  # not resolved from a partial view
    assert firing[("stale_data", "polygon")] == "firing"

    third = run_cycle(settings, store, now=NOW + timedelta(minutes=2), clients=clients(eth_hot=3 * ETH))
    states = {(a["rule"], a["subject"]): a["state"] for a in third.poll["alerts"]}
    assert states[("hot_ratio", "combined")] == "resolved"
    assert states[("stale_data", "polygon")] == "resolved"


def test_failed_cycle_stores_no_exposure_and_exits_3(env) -> None:
    settings, store = env
    dead = {n: Scripted(n, {}, ok=False) for n in ("ethereum", "polygon")}
    out = run_cycle(settings, store, now=NOW, clients=dead)
    assert out.status == "failed" and poll_exit_code(out, None) == 3
    assert out.poll["exposure"] is None
    assert all(not c["ok"] for c in out.poll["chains"].values())
    assert {a["rule"] for a in out.poll["alerts"]} == {"stale_data"}
    with sqlite3.connect(settings.store.path) as c:
        kinds = {k for (k,) in c.execute("select kind from audit_log")}
    assert "exposure" not in kinds and "cycle" in kinds


def test_a_chain_not_read_by_the_deadline_is_unreadable_and_the_others_count(env) -> None:
    settings, store = env
    started = time.monotonic()
    out = run_cycle(settings, store, now=NOW, deadline_s=0.5, clients=clients(pol_sleep=3.0))
    assert time.monotonic() - started < 3.0  # did not wait for the slow chain
    assert out.status == "partial"
    assert out.poll["chains"]["polygon"]["ok"] is False
    assert "deadline" in out.poll["chains"]["polygon"]["error"]
    assert out.poll["exposure"]["assets"]["ETH"]["hot"] == "3"


def test_config_change_fires_config_changed_with_the_diff(env, tmp_path: Path) -> None:
    settings, store = env
    run_cycle(settings, store, now=NOW, clients=clients())
    changed = _config(tmp_path, hot_ratio_critical="6%")
    out = run_cycle(changed, store, now=NOW + timedelta(minutes=1), clients=clients())
    cc = [a for a in out.poll["alerts"] if a["rule"] == "config_changed"]
    assert cc and cc[0]["severity"] == "critical" and cc[0]["subject"] == "config"
    t = [t for t in out.transitions if t.rule == "config_changed"][0]
    assert any("rules.hot_ratio.critical" in line for line in t.details.get("diff", []))
    again = run_cycle(changed, store, now=NOW + timedelta(minutes=2), clients=clients())
    assert not [t for t in again.transitions if t.rule == "config_changed"]


def test_a_crash_while_writing_leaves_the_store_as_it_was(env, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, store = env
    run_cycle(settings, store, now=NOW, clients=clients())
    head, cycle = store.head(), store.last_cycle()

    import auditor.store as sc

    real = sc.write_cycle_tx

    def crash(*a, **k):
        real(*a, **k)  # everything inserted, then the process "dies" before COMMIT
        raise OSError("disk gone")

    monkeypatch.setattr(sc, "write_cycle_tx", crash)
    with pytest.raises(Exception):
        run_cycle(settings, store, now=NOW + timedelta(minutes=1), clients=clients(eth_hot=1 * ETH))
    monkeypatch.setattr(sc, "write_cycle_tx", real)
    assert store.head() == head
    assert store.last_cycle() == cycle
    assert store.verify().ok


def test_a_chain_client_that_cannot_be_created_is_an_unreadable_chain_not_a_crash(env, monkeypatch) -> None:
    import auditor.service as service

    settings, store = env

    def broken(chain):
        raise RuntimeError("boom with a secret in it: https://user:pw@node")

    monkeypatch.setattr(service, "make_client", broken)
    out = run_cycle(settings, store, now=NOW)
    assert out.status == "failed"
    assert all(not c["ok"] for c in out.poll["chains"].values())
    text = json.dumps(out.poll)
    assert "client could not be set up (RuntimeError)" in text and "pw@node" not in text
    assert any(a["rule"] == "stale_data" for a in out.poll["alerts"])
