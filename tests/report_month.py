"""A stored month for the report tests: cycles through the real `run_cycle` with
scripted chain clients (irregular times, partial and failed cycles, a hot-ratio
breach with its alert, an acknowledgement and a silence by named people)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor.config import load_config
from auditor.model import BlockRef, ChainReading, ChainView
from auditor.service import run_cycle
from auditor.settings import AssetSettings, Settings, WalletSettings
from auditor.store import Store

__all__ = ["MonthStore", "month_config", "store_month", "START"]

ETH = 10**18
USDC = 10**6
A = {k: "0x" + c * 20 for k, c in (("eh", "11"), ("ec", "22"), ("eg", "55"), ("ph", "33"),
                                    ("pc", "44"), ("pg", "66"))}
# Month of November 2026 in Tokyo: cycles from two days before to two days after it.
START = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)


def month_config(tmp: Path, with_ledger: bool = True, reports: str = "") -> Settings:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\nPOL,1000\nUSDC,5000\n")
    ledger = ("liabilities: {source: csv, path: liabilities.csv, max_age: 100000d}\n"
              if with_ledger else "")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: month-ex, name: Month Exchange}}
store: {{path: var/a.db}}
schedule: {{poll_every: 60s, timezone: Asia/Tokyo, records_cutoff: "00:00"}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
  polygon: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:2"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  POL: {{class: crypto, chain: polygon, decimals: 18}}
  USDC: {{class: stablecoin, deployments: [{{chain: ethereum, token: "0x{'77' * 20}", decimals: 6}}]}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{A['eh']}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{A['ec']}"]}}
  - {{name: eth-guar, chain: ethereum, tier: cold, role: guarantee, addresses: ["{A['eg']}"]}}
  - {{name: pol-hot, chain: polygon, tier: hot, role: customer, addresses: ["{A['ph']}"]}}
  - {{name: pol-cold, chain: polygon, tier: cold, role: customer, addresses: ["{A['pc']}"]}}
  - {{name: pol-guar, chain: polygon, tier: cold, role: guarantee, addresses: ["{A['pg']}"]}}
prices: {{source: static, static: {{ETH: "450000.5", POL: "81.25", USDC: "150"}}}}
{ledger}rules: {{preset: jp-fsa}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{severity: [warning, critical], channels: [console]}}]}}
{reports}""")
    return load_config(cfg, env={})


class Scripted:
    """A chain client answering with the balances the month script sets."""

    def __init__(self, name: str, balances: Mapping[tuple[str, str], int], head: int,
                 ts: int, ok: bool = True):
        self.name, self.balances, self.head, self.ts, self.ok = name, balances, head, ts, ok

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        if not self.ok:
            return ChainReading(self.name, False, None, None, error="connection refused")
        bal = {(a.lower(), s): v for (a, s), v in self.balances.items()}
        nonces = {a.lower(): 0 for a, _ in self.balances}
        settled = ChainView(BlockRef(self.head - 2, f"0x{self.head - 2:064x}", self.ts - 24),
                            bal, nonces)
        watch = ChainView(BlockRef(self.head, f"0x{self.head:064x}", self.ts), bal, nonces)
        return ChainReading(self.name, True, settled, watch, head_timestamp=self.ts)

    def close(self) -> None:
        pass


def _clients(i: int, at: datetime, rnd: random.Random, eth_ok: bool, pol_ok: bool
             ) -> dict[str, Scripted]:
    eth_hot = ETH * rnd.randint(1, 4) + rnd.randint(0, 10**15)  # wei-exact fractions
    if 200 <= i < 204:
        eth_hot = 9 * ETH  # a breach of the 5% limit
    pol_hot = ETH * rnd.randint(10, 60)
    ts = int(at.timestamp())
    eth = {(A["eh"], "ETH"): eth_hot, (A["ec"], "ETH"): 100 * ETH - eth_hot,
           (A["eg"], "ETH"): 8 * ETH, (A["eh"], "USDC"): 500 * USDC,
           (A["ec"], "USDC"): 4500 * USDC, (A["eg"], "USDC"): 0}
    pol = {(A["ph"], "POL"): pol_hot, (A["pc"], "POL"): 1000 * ETH - pol_hot,
           (A["pg"], "POL"): 55 * ETH}
    return {"ethereum": Scripted("ethereum", eth, 1000 + 10 * i, ts, eth_ok),
            "polygon": Scripted("polygon", pol, 50000 + 3 * i, ts, pol_ok)}


class MonthStore:
    def __init__(self, settings: Settings, store: Store, times: list[datetime]):
        self.settings, self.store, self.times = settings, store, times


def store_month(tmp: Path, cycles: int = 330, with_ledger: bool = True,
                reports: str = "") -> MonthStore:
    """About 34 days of cycles ~2.5 h apart (jittered), from START."""
    settings = month_config(tmp, with_ledger, reports)
    store = Store.open(settings.store.path)
    rnd = random.Random(8)
    at, times = START, []
    for i in range(cycles):
        at += timedelta(minutes=rnd.randint(100, 200), seconds=rnd.randint(0, 59),
                        microseconds=rnd.choice([0, 250000]))
        eth_ok = i % 97 != 50  # now and then a failed cycle (both down)
        pol_ok = eth_ok and i % 41 != 7  # and partial ones (polygon down: null ratio)
        run_cycle(settings, store, now=at, clients=_clients(i, at, rnd, eth_ok, pol_ok))
        times.append(at)
        if i == 201:
            fp = next(a.fingerprint for a in store.list_alerts() if a.rule == "hot_ratio")
            store.ack_alert(fp, "alice", "moving coins to cold", at + timedelta(minutes=5))
    return MonthStore(settings, store, times)
