"""Issue 5's "done when", end to end on anvil and the Bitcoin simulator through
`run_cycle` and the CLI: a sweep to cold is silent; a requested withdrawal is
silent; a theft pages within one poll with destination and tx hash; a cold
movement without an approval pages; any touch of a sanctioned address is a
critical alert on both chains; a reorg that removes an alerted outflow adds
`outflow_reorged`; `auditor transfers` lists it all."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from auditor import devchain
from auditor.config import load_config
from auditor.service import run_cycle
from auditor.store import Store

pytestmark = pytest.mark.integration
ETH = 10**18


def _addr(label: str) -> str:
    return to_checksum_address(keccak(text=f"flows-e2e {label}")[12:])


HOT, DEP, COLD, CUSTOMER, THIEF, MM, BAD = (_addr(x) for x in (
    "hot", "dep", "cold", "customer", "thief", "market-maker", "sanctioned"))


class Exchange:
    def __init__(self, anvil: devchain.Anvil, tmp: Path):
        self.anvil, self.tmp = anvil, tmp
        self.cfg = tmp / "auditor.yaml"
        self.requests: list[str] = []

    def write(self, extra: str = "") -> None:
        (self.tmp / "liabilities.csv").write_text(f"asset,amount,as_of\nETH,100,{_now()}\n")
        (self.tmp / "withdrawals.csv").write_text("id,asset,to,amount,approved_at\n" + "".join(self.requests))
        (self.tmp / "sanctioned.txt").write_text(f"{BAD}\n")
        self.cfg.write_text(f"""
exchange: {{id: flows-e2e, name: Flows E2E, fiat: JPY}}
store: {{path: auditor.db}}
daemon: {{listen: "127.0.0.1:0"}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "{self.anvil.url}"}}], confirmations: 2, max_head_age: 1h}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: eth-dep, chain: ethereum, tier: deposit, role: customer, addresses: ["{DEP}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {{source: static, static: {{ETH: "450000"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 1d}}
withdrawals: {{source: csv, path: withdrawals.csv}}
counterparties: {{allow: [{{chain: ethereum, address: "{MM}", name: market-maker}}]}}
sanctions: {{lists: [builtin, sanctioned.txt], max_age: 3650d}}
rules:
  preset: none
  hot_drain: {{min_value: "1", windows: [{{window: 10m, drop: "20%", severity: critical}}]}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{channels: [console]}}]}}
{extra}""")

    def send(self, src: str, dst: str, eth: float) -> str:
        receipt = self.anvil.send_tx(src, dst, value=int(eth * ETH))
        return str(receipt["transactionHash"]).lower()

    def poll(self) -> dict[str, Any]:
        self.anvil.mine(2)  # confirmations: the transfers are in the watch view at once anyway
        settings = load_config(self.cfg)
        store = Store.open(settings.store.path)
        try:
            return dict(run_cycle(settings, store, deadline_s=60).poll)
        finally:
            store.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def firing(poll: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [a for a in poll["alerts"] if a["rule"] == rule and a["state"] == "firing"]


@pytest.fixture
def ex(make_anvil: Any, tmp_path: Path) -> Iterator[Exchange]:
    node = make_anvil()
    node.set_balances({HOT: 30 * ETH, DEP: 5 * ETH, COLD: 80 * ETH, BAD: 10 * ETH, MM: 1 * ETH})
    e = Exchange(node, tmp_path)
    e.write()
    yield e


def test_sweeps_requested_withdrawals_and_allowed_counterparties_are_silent_a_theft_pages(ex: Exchange) -> None:
    first = ex.poll()
    assert first["status"] == "ok", first["chains"]
    # internal sweeps: deposit → hot, hot → cold (a 75% fall of hot: still no hot_drain)
    ex.send(DEP, HOT, 4)
    ex.send(HOT, COLD, 18)
    quiet = ex.poll()
    assert not firing(quiet, "hot_drain") and not firing(quiet, "unmatched_outflow"), quiet["alerts"]
    # a requested withdrawal, and a payment to the allow-listed market maker
    ex.requests.append(f"w-1,ETH,{CUSTOMER},1.5,{_now()}\n")
    ex.write()
    ex.send(HOT, CUSTOMER, 1.5)
    ex.send(HOT, MM, 0.5)
    quiet = ex.poll()
    assert not [a for a in quiet["alerts"] if a["rule"] != "stale_data"], quiet["alerts"]
    # the same request cannot cover a second payment; a theft pages within this poll
    ex.send(HOT, CUSTOMER, 1.5)
    theft = ex.send(HOT, THIEF, 3)
    out = ex.poll()
    unmatched = {a["subject"]: a for a in firing(out, "unmatched_outflow")}
    assert f"ethereum:{theft}:{THIEF.lower()}" in unmatched
    alert = unmatched[f"ethereum:{theft}:{THIEF.lower()}"]
    assert alert["severity"] == "critical"
    assert theft in json.dumps(alert) and THIEF.lower() in json.dumps(alert)
    assert len(unmatched) == 2  # the repeated 1.5 ETH to the customer too
    assert out["chains"]["ethereum"]["transfers"]["new"]["unknown"] == 2
    assert out["chains"]["ethereum"]["transfers"]["ingested_to"] == out["chains"]["ethereum"]["watch"]["block"]
    # the CLI lists the transfers with their class
    res = subprocess.run([sys.executable, "-m", "auditor", "-c", str(ex.cfg), "transfers", "--json",
                          "--wallet", "eth-hot"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    classes = {(r["to"], r["amount"], r["class"]) for r in rows if r["kind"] == "native"}
    assert (COLD.lower(), "18", "internal") in classes
    assert (MM.lower(), "0.5", "allowed") in classes
    assert (THIEF.lower(), "3", "unknown") in classes
    assert any(r["class"] == "withdrawal" and r["match"] == "w-1" for r in rows)
    only = json.loads(subprocess.run([sys.executable, "-m", "auditor", "-c", str(ex.cfg), "transfers", "--json",
                                      "--class", "allowed", "--chain", "ethereum"],
                                     capture_output=True, text=True, timeout=60).stdout)
    assert [(r["to"], r["class"], r["match"]) for r in only] == [(MM.lower(), "allowed", "market-maker")]
    status = json.loads(subprocess.run([sys.executable, "-m", "auditor", "-c", str(ex.cfg), "status", "--json"],
                                       capture_output=True, text=True, timeout=60).stdout)
    assert status["transfers"][0]["tx"] in {theft, *[r["tx"] for r in rows]}
    assert status["ingested_to"]["ethereum"] == int(ex.anvil.rpc("eth_blockNumber"), 16)
    theft_alert = next(a for a in status["firing"] if a["subject"] == f"ethereum:{theft}:{THIEF.lower()}")
    assert theft in json.dumps(theft_alert["details"])


def test_a_cold_movement_without_an_approval_pages_and_an_approved_one_does_not(ex: Exchange) -> None:
    ex.write(extra="""approvals:
  items:
    - {id: top-up-1, wallet: eth-cold, asset: ETH, to: eth-hot, amount: "5",
       not_after: "2099-01-01T00:00:00Z"}
""")
    ex.poll()
    ex.send(COLD, HOT, 5)
    quiet = ex.poll()
    assert not firing(quiet, "cold_outflow"), quiet["alerts"]
    tx = ex.send(COLD, THIEF, 7)
    out = ex.poll()
    cold = firing(out, "cold_outflow")
    assert cold and cold[0]["severity"] == "critical" and cold[0]["subject"] == "eth-cold/ETH"
    assert tx in json.dumps(cold[0])


def test_a_transfer_from_a_sanctioned_address_is_critical_in_either_direction(ex: Exchange) -> None:
    ex.poll()
    tx_in = ex.send(BAD, DEP, 2)
    out = ex.poll()
    hits = firing(out, "sanctioned_counterparty")
    assert [h["subject"] for h in hits] == [f"ethereum:{tx_in}:{BAD.lower()}"]
    assert hits[0]["severity"] == "critical"
    assert "Ministry of Finance" in hits[0]["summary"] and "FSA" in hits[0]["summary"]
    ex.requests.append(f"w-2,ETH,{BAD},1,{_now()}\n")  # even a requested payout to it
    ex.write()
    tx_out = ex.send(HOT, BAD, 1)
    out = ex.poll()
    assert f"ethereum:{tx_out}:{BAD.lower()}" in {h["subject"] for h in firing(out, "sanctioned_counterparty")}


def test_a_reorg_that_removes_an_alerted_theft_adds_outflow_reorged_and_keeps_it_open(ex: Exchange) -> None:
    ex.poll()
    snap = ex.anvil.rpc("evm_snapshot")
    theft = ex.send(HOT, THIEF, 3)
    out = ex.poll()
    assert firing(out, "unmatched_outflow")
    ex.anvil.rpc("evm_revert", snap)
    ex.anvil.mine(5)  # a longer chain without the theft
    settings = load_config(ex.cfg)
    store = Store.open(settings.store.path)
    try:
        outcome = run_cycle(settings, store, deadline_s=60)
        kinds = [(t.kind, t.rule) for t in outcome.transitions]
        assert ("outflow_reorged", "unmatched_outflow") in kinds
        assert firing(dict(outcome.poll), "unmatched_outflow")  # resolved by a person only
        assert not [t for t in store.list_transfers() if t["tx"] == theft]
    finally:
        store.close()


def test_the_bybit_takeover_of_a_cold_safe_pages_safe_changed_then_the_sweep_pages_cold_outflow(
        make_anvil: Any, tmp_path: Path) -> None:
    from auditor import devsafe

    node = make_anvil()
    owners = list(devchain.DEV_ACCOUNTS[:3])
    safe = to_checksum_address(devsafe.deploy_safe(node, owners, 2))
    node.set_balances({HOT: 5 * ETH, safe: 50 * ETH})
    ex = Exchange(node, tmp_path)
    ex.write()
    ex.cfg.write_text(ex.cfg.read_text().replace(
        f'  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}',
        f'  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["{safe}"], safe: true}}'))
    base = ex.poll()
    assert base["status"] == "ok" and not firing(base, "safe_changed")
    drainer = devsafe.deploy_drainer(node)
    devsafe.swap_singleton(node, safe, owners[:2], drainer)  # looks like a token transfer; no event
    out = ex.poll()
    changed = firing(out, "safe_changed")
    assert [a["subject"] for a in changed] == ["eth-cold"] and changed[0]["severity"] == "critical"
    assert "implementation was replaced" in changed[0]["summary"]
    assert not firing(out, "cold_outflow")  # nothing has left yet
    node.set_balance(THIEF, ETH)
    sweep = node.send_tx(THIEF, safe, data=devsafe.safe_calldata("sweepETH(address)", THIEF))
    out = ex.poll()
    cold = firing(out, "cold_outflow")
    assert cold and cold[0]["subject"] == "eth-cold/ETH"
    assert str(sweep["transactionHash"]).lower() in json.dumps(cold[0])


def test_a_provider_that_hides_a_token_transfer_log_is_caught_by_the_reconciliation(
        make_anvil: Any, tmp_path: Path) -> None:
    from rpc_proxy import Proxy

    node = make_anvil()
    devchain.install_multicall3(node)
    usdc = to_checksum_address(devchain.deploy_erc20(node, "USD Coin", "USDC", 6))
    devchain.mint(node, usdc, HOT, 1_000_000 * 10**6)
    node.set_balances({HOT: 5 * ETH})
    proxy = Proxy(node.url)
    try:
        ex = Exchange(node, tmp_path)
        ex.write()
        text = ex.cfg.read_text().replace(f'rpc: [{{url: "{node.url}"}}]', f'rpc: [{{url: "{proxy.url}"}}]')
        text = text.replace('  ETH: {class: crypto, chain: ethereum, decimals: 18}',
                            '  ETH: {class: crypto, chain: ethereum, decimals: 18}\n'
                            f'  USDC: {{class: stablecoin, chain: ethereum, token: "{usdc}", decimals: 6}}')
        text = text.replace('static: {ETH: "450000"}', 'static: {ETH: "450000", USDC: "150"}')
        ex.cfg.write_text(text)
        (tmp_path / "liabilities.csv").write_text(f"asset,amount,as_of\nETH,100,{_now()}\nUSDC,1000000,{_now()}\n")
        assert ex.poll()["status"] == "ok"
        # the provider now hides every token log: balances still show the money leaving
        proxy.edit = lambda method, params, result: [] if method == "eth_getLogs" else result
        devchain.transfer(node, usdc, HOT, THIEF, 400_000 * 10**6)
        out = ex.poll()
        stale = [a for a in firing(out, "stale_data") if a["subject"] == "ethereum:eth-hot/USDC"]
        assert stale and stale[0]["severity"] == "critical", out["alerts"]
    finally:
        proxy.close()


def test_while_the_withdrawal_feed_is_unreadable_a_cold_outflow_still_pages_and_transfers_wait(
        ex: Exchange) -> None:
    ex.poll()
    (ex.tmp / "withdrawals.csv").unlink()
    tx = ex.send(COLD, THIEF, 7)
    out = ex.poll()
    assert [a["severity"] for a in firing(out, "stale_data") if a["subject"] == "withdrawals"] == ["critical"]
    assert [a["subject"] for a in firing(out, "cold_outflow")] == ["eth-cold/ETH"]  # by balance, at once
    settings = load_config(ex.cfg)
    store = Store.open(settings.store.path)
    try:
        assert not [t for t in store.list_transfers() if t["tx"] == tx]  # not ingested yet
    finally:
        store.close()
    ex.write()  # the feed is back: the transfer is read, none skipped
    out = ex.poll()
    store = Store.open(settings.store.path)
    try:
        assert [t["class"] for t in store.list_transfers() if t["tx"] == tx and t["kind"] == "native"] == ["unknown"]
    finally:
        store.close()


def test_a_cold_movement_with_its_quorum_of_signatures_is_silent_one_with_a_forged_signature_pages(
        ex: Exchange, tmp_path: Path) -> None:
    import shutil

    from auditor.approvals import canonical_item

    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen (OpenSSH client) is not installed; install openssh-client")
    keys = {}
    for name in ("ciso", "cfo"):
        path = tmp_path / name
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example", "-f", str(path)],
                       check=True)
        keys[name] = path

    def sign(name: str, item: dict[str, str]) -> str:
        msg = tmp_path / f"{name}-{item['id']}.json"
        msg.write_bytes(canonical_item(item))
        subprocess.run([keygen, "-Y", "sign", "-f", str(keys[name]), "-n", "auditor-approval", str(msg)],
                       check=True, capture_output=True)
        return msg.with_name(msg.name + ".sig").read_text()

    good = {"id": "top-up-2", "wallet": "eth-cold", "asset": "ETH", "to": "eth-hot", "amount": "5",
            "not_after": "2099-01-01T00:00:00Z"}
    forged = {**good, "id": "top-up-3", "amount": "7"}
    forged_sigs = [sign("ciso", forged), sign("cfo", {**forged, "amount": "0.7"})]  # cfo signed another amount

    def item_yaml(item: dict[str, str], sigs: list[str]) -> str:
        body = "".join(f"    {k}: \"{v}\"\n" for k, v in item.items())
        armored = "".join("      - |\n" + "".join(f"        {line}\n" for line in s.strip().splitlines())
                          for s in sigs)
        return "  -\n" + body + "    signatures:\n" + armored

    pubs = "".join(f"    - \"{(keys[n].with_suffix('.pub')).read_text().strip()}\"\n" for n in keys)
    approvals = ("approvals:\n  items:\n" + item_yaml(good, [sign("ciso", good), sign("cfo", good)])
                 + item_yaml(forged, forged_sigs) + "  keys:\n" + pubs + "  quorum: 2\n")
    ex.write(extra=approvals)
    ex.poll()
    ex.send(COLD, HOT, 5)
    quiet = ex.poll()
    assert not firing(quiet, "cold_outflow"), quiet["alerts"]
    tx = ex.send(COLD, HOT, 7)
    out = ex.poll()
    cold = firing(out, "cold_outflow")
    assert cold and cold[0]["subject"] == "eth-cold/ETH" and tx in json.dumps(cold[0])
