"""End to end through the real `auditor` CLI against a real anvil node.

Each test gets its own node, config, ledger and SQLite file; webhook delivery
goes to a real HTTP receiver on 127.0.0.1 that checks the HMAC signature.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address

from auditor import devchain

pytestmark = pytest.mark.integration

ETH = 10**18
SECRET = "whsec-e2e-0123456789"


def _addr(label: str) -> str:
    return to_checksum_address(keccak(text=f"e2e {label}")[12:])


HOT, DEP, COLD, GUAR, THIEF = (_addr(x) for x in ("hot", "dep", "cold", "guar", "thief"))


class Exchange:
    def __init__(self, anvil: devchain.Anvil, tmp: Path, usdc: str, hook_url: str):
        self.anvil, self.tmp, self.usdc = anvil, tmp, usdc
        self.cfg = tmp / "auditor.yaml"
        self.hook_url = hook_url

    def write_config(self, rpc_urls: list[str] | None = None, extra: str = "") -> None:
        rpcs = "\n".join(f'      - {{url: "{u}", timeout: 3s}}' for u in (rpc_urls or [self.anvil.url]))
        self.cfg.write_text(f"""
exchange: {{id: e2e-ex, name: E2E Exchange, fiat: JPY}}
store: {{path: var/auditor.db}}
daemon: {{listen: "127.0.0.1:0"}}
schedule: {{poll_every: 60s, timezone: Asia/Tokyo}}
chains:
  ethereum:
    type: ethereum
    rpc:
{rpcs}
    confirmations: 2
    max_head_age: 1h
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  USDC: {{class: stablecoin, chain: ethereum, token: "{self.usdc}", decimals: 6}}
wallets:
  - {{name: eth-hot-1, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-dep, chain: ethereum, tier: deposit, role: customer, addresses: ["{DEP}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
  - {{name: eth-guarantee, chain: ethereum, tier: cold, role: guarantee, addresses: ["{GUAR}"], assets: [ETH]}}
prices: {{source: static, static: {{ETH: "450000", USDC: "150"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 1d}}
rules: {{preset: jp-fsa}}
alerts:
  repeat_every: 1h
  channels:
    - {{name: console, type: log}}
    - {{name: soc, type: webhook, url: "{self.hook_url}", secret: "${{E2E_HOOK_SECRET}}"}}
  routes:
    - {{severity: [critical], channels: [soc, console]}}
    - {{severity: [warning], channels: [console]}}
{extra}
""")

    def auditor(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "E2E_HOOK_SECRET": SECRET}
        return subprocess.run([sys.executable, "-m", "auditor", *args, "-c", str(self.cfg)],
                              capture_output=True, text=True, env=env, timeout=120)

    def poll(self, *extra: str) -> tuple[int, dict]:
        r = self.auditor("poll", "--once", "--json", *extra)
        assert r.stdout.strip(), r.stderr
        return r.returncode, json.loads(r.stdout)


def _build_chain(anvil: devchain.Anvil, hot_wei: int) -> str:
    """The test exchange's wallets and token; the same calls give the same token address."""
    anvil.mine()
    devchain.install_multicall3(anvil)
    usdc = to_checksum_address(devchain.deploy_erc20(anvil, "USD Coin", "USDC", 6))
    anvil.set_balances({HOT: hot_wei, DEP: 1 * ETH, COLD: 388 * ETH, GUAR: 14 * ETH})
    devchain.mint(anvil, usdc, HOT, 1_000 * 10**6 + 1)
    anvil.mine(3)
    return usdc


@pytest.fixture
def receiver() -> Iterator[object]:
    from receivers import WebhookReceiver

    with WebhookReceiver(secret=SECRET.encode()) as rec:
        yield rec


@pytest.fixture
def exchange(tmp_path: Path, receiver: object) -> Iterator[Exchange]:
    with devchain.Anvil() as anvil:
        usdc = _build_chain(anvil, hot_wei=12 * ETH + 5)
        (tmp_path / "liabilities.csv").write_text("asset,amount\nETH,400\nUSDC,1000\n")
        ex = Exchange(anvil, tmp_path, usdc, receiver.url("/hooks/soc"))  # type: ignore[attr-defined]
        ex.write_config()
        yield ex


def test_poll_reports_wei_exact_exposure_the_regulators_way(exchange: Exchange) -> None:
    code, poll = exchange.poll()
    assert code == 0, poll
    assert poll["status"] == "ok"
    eth = poll["exposure"]["assets"]["ETH"]
    assert eth["hot"] == "12.000000000000000005"
    assert eth["deposit"] == "1" and eth["cold"] == "388" and eth["guarantee"] == "14"
    assert eth["online"] == "13.000000000000000005"  # N = max(O, L − C) = O here
    assert poll["exposure"]["assets"]["USDC"]["hot"] == "1000.000001"
    assert poll["exposure"]["hot_ratio"] == "0.0325"  # USDC is out of jp-fsa scope
    ch = poll["chains"]["ethereum"]
    head = exchange.anvil.block_number()
    assert ch["watch"]["block"] == head and ch["settled"]["block"] == head - 1
    assert ch["settled"]["block_hash"] == exchange.anvil.block(head - 1)["hash"]


def test_drain_pages_signed_webhook_and_a_person_resolves_it(exchange: Exchange, receiver: object) -> None:
    code, first = exchange.poll("--fail-on", "critical")
    assert code == 0, first
    exchange.anvil.send_tx(HOT, THIEF, value=11 * ETH)
    exchange.anvil.mine(2)
    code, poll = exchange.poll("--fail-on", "critical")
    assert code == 1
    drains = [a for a in poll["alerts"] if a["rule"] == "hot_drain"]
    assert [d["subject"] for d in drains] == ["eth-hot-1/ETH"]
    assert drains[0]["severity"] == "critical" and drains[0]["state"] == "firing"

    posts = receiver.requests  # type: ignore[attr-defined]
    assert posts and all(p.signature_ok for p in posts)
    body = json.loads(posts[-1].body)
    assert body["exchange"] == "e2e-ex" and len(body["head"]) == 64
    sent = {(a["rule"], a["transition"]) for a in body["alerts"]}
    assert ("hot_drain", "firing") in sent
    assert all(isinstance(a["seq"], int) for a in body["alerts"])

    # The next poll does not resolve an event rule; a person does.
    exchange.anvil.mine(1)
    _, again = exchange.poll()
    assert any(a["rule"] == "hot_drain" and a["state"] == "firing" for a in again["alerts"])
    fp = drains[0]["fingerprint"]
    r = exchange.auditor("alerts", "resolve", fp[:10], "--reason", "confirmed theft, IR-1", "--by", "alice")
    assert r.returncode == 0, r.stderr
    listed = json.loads(exchange.auditor("alerts", "list", "--json").stdout)
    assert fp not in {a["fingerprint"] for a in listed}
    history = json.loads(exchange.auditor("alerts", "history", fp, "--json").stdout)
    assert any("alice" in json.dumps(h) for h in history)
    v = exchange.auditor("verify", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True
    assert SECRET not in (exchange.tmp / "var" / "auditor.db").read_bytes().decode("latin-1")


def test_node_down_is_exit_3_and_stale_data_with_store_unchanged_otherwise(exchange: Exchange) -> None:
    code, ok_poll = exchange.poll()
    assert code == 0
    db = exchange.tmp / "var" / "auditor.db"
    before = _count(db, "exposures") if _has(db, "exposures") else None
    exchange.anvil.stop()
    code, poll = exchange.poll()
    assert code == 3
    assert poll["status"] == "failed" and poll["exposure"] is None
    assert poll["chains"]["ethereum"]["ok"] is False
    stale = [a for a in poll["alerts"] if a["rule"] == "stale_data"]
    assert stale and stale[0]["subject"] == "ethereum" and stale[0]["severity"] == "critical"
    if before is not None:
        assert _count(db, "exposures") == before
    status = json.loads(exchange.auditor("status", "--json").stdout)
    assert status["last_cycle"]["status"] == "failed"


def test_a_running_lock_holder_makes_poll_exit_4(exchange: Exchange) -> None:
    from auditor.store import cycle_lock

    exchange.poll()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from auditor.store import cycle_lock\n"
         f"with cycle_lock({str(exchange.tmp / 'var' / 'auditor.db')!r}):\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = exchange.auditor("poll", "--once")
        assert r.returncode == 4, r.stderr
        assert "lock" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    with cycle_lock(exchange.tmp / "var" / "auditor.db"):
        pass  # free again once the holder died


def test_two_rpcs_that_disagree_make_the_chain_unreadable(exchange: Exchange) -> None:
    with devchain.Anvil() as other:
        assert _build_chain(other, hot_wei=12 * ETH + 6) == exchange.usdc
        gap = exchange.anvil.block_number() - other.block_number()
        if gap > 0:
            other.mine(gap)
        exchange.write_config([exchange.anvil.url, other.url])
        code, poll = exchange.poll()
    assert code == 3
    assert poll["status"] == "failed" and poll["chains"]["ethereum"]["ok"] is False
    stale = [a for a in poll["alerts"] if a["rule"] == "stale_data"]
    assert stale and stale[0]["severity"] == "critical"


def test_one_failed_provider_among_agreeing_ones_is_a_warning_and_the_chain_stays_ok(
        exchange: Exchange) -> None:
    dead = "http://127.0.0.1:9/rpc-key-0123456789abcdef"
    exchange.write_config([exchange.anvil.url, dead])
    code, poll = exchange.poll()
    assert code == 0 and poll["status"] == "ok"
    stale = [a for a in poll["alerts"] if a["rule"] == "stale_data"]
    assert [a["severity"] for a in stale] == ["warning"]
    assert "rpc-key" not in json.dumps(poll)


def test_config_error_exits_2_with_key_path(exchange: Exchange) -> None:
    text = exchange.cfg.read_text().replace("role: guarantee", "role: guarantee, tier: hot", 1)
    text = text.replace("tier: cold, role: guarantee, tier: hot", "tier: hot, role: guarantee")
    exchange.cfg.write_text(text)
    r = exchange.auditor("poll", "--once", "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "wallets[3]" in r.stderr and "cold" in r.stderr


def _has(db: Path, table: str) -> bool:
    with sqlite3.connect(db) as c:
        return c.execute("select 1 from sqlite_master where name=?", (table,)).fetchone() is not None


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(f"select count(*) from {table}").fetchone()[0])
