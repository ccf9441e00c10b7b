"""`auditor alerts …` and `auditor test-alert` through the real CLI (click's CliRunner),
the real store and a real local webhook receiver."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from receivers import WebhookReceiver
from test_silences import Chain

from auditor.cli import cli
from auditor.config import load_config
from auditor.service import run_cycle
from auditor.store import Store

SECRET = "whsec-cli-alerts-0123"
TOKEN = "tok-in-the-path-9876"


def write_config(tmp: Path, good: str, bad: str) -> Path:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: cli-ex, name: CLI Exchange}}
store: {{path: var/a.db}}
schedule: {{poll_every: 1h}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: eth-hot, chain: ethereum, tier: hot, role: customer, addresses: ["0x{'11' * 20}"]}}
  - {{name: eth-cold, chain: ethereum, tier: cold, role: customer, addresses: ["0x{'22' * 20}"]}}
prices: {{source: static, static: {{ETH: "100"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, guarantee_coverage: off, reserve_coverage: off, commingling: off}}
alerts:
  channels:
    - {{name: console, type: log}}
    - {{name: soc, type: webhook, url: "{good}", secret: "{SECRET}"}}
    - {{name: broken, type: webhook, url: "{bad}"}}
  routes:
    - {{severity: [critical], channels: [soc, console]}}
    - {{severity: [warning], channels: [console]}}
""")
    return cfg


class Env:
    def __init__(self, tmp: Path, good: WebhookReceiver, bad: WebhookReceiver):
        self.cfg = write_config(tmp, good.url("/soc"), bad.url(f"/hooks/{TOKEN}"))
        self.settings = load_config(self.cfg, env={})
        self.good, self.bad = good, bad

    def run(self, *args: str, where: str = "after") -> Result:
        argv = [*args, "-c", str(self.cfg)] if where == "after" else ["-c", str(self.cfg), *args]
        return CliRunner().invoke(cli, argv)

    def json(self, *args: str) -> Any:
        r = self.run(*args)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    def fire_hot_ratio(self) -> str:
        chain = Chain()
        chain.hot = 45 * 10**17  # 4.5% of 100 ETH: warning
        chain.at = datetime.now(UTC)
        with Store.open(self.settings.store.path) as store:
            run_cycle(self.settings, store, now=chain.at, clients={"ethereum": chain})
            (a,) = store.list_alerts()
        return a.fingerprint

    def audit(self, kind: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.settings.store.path) as db:
            rows = db.execute("SELECT payload FROM audit_log WHERE kind = ?", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with WebhookReceiver(secret=SECRET.encode()) as good, WebhookReceiver() as bad:
        bad.respond(400)
        yield Env(tmp_path, good, bad)


# -- -c anywhere ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["-c", "CFG", "alerts", "list", "--json"],
                                  ["alerts", "-c", "CFG", "list", "--json"],
                                  ["alerts", "list", "--json", "-c", "CFG"]])
def test_config_option_works_before_between_and_after_the_subcommands(
        env: Env, argv: list[str]) -> None:
    env.fire_hot_ratio()
    r = CliRunner().invoke(cli, [str(env.cfg) if a == "CFG" else a for a in argv])
    assert r.exit_code == 0, r.output
    assert [a["rule"] for a in json.loads(r.stdout)] == ["hot_ratio"]


# -- test-alert -----------------------------------------------------------------------

def test_test_alert_reaches_a_working_channel_marked_as_a_test(env: Env) -> None:
    r = env.run("test-alert", "--channel", "soc", "--by", "alice")
    assert r.exit_code == 0, r.output
    assert "soc: delivered" in r.stdout
    (post,) = env.good.requests
    body = post.json()
    assert post.signature_ok and body["test"] is True
    (alert,) = body["alerts"]
    assert (alert["rule"], alert["severity"]) == ("test", "warning")
    assert alert["summary"] == ("custody-auditor test alert from CLI Exchange — if you see "
                                "this, channel soc works")
    (rec,) = env.audit("test")
    assert rec["channels"] == ["soc"] and rec["by"] == "alice"
    assert alert["seq"] == json.loads(env.run("verify", "--json").stdout)["records"]


def test_test_alert_reports_a_failing_channel_redacted_and_exits_1(env: Env) -> None:
    r = env.run("test-alert", "--channel", "broken")
    assert r.exit_code == 1
    assert "broken: FAILED" in r.stdout and "400" in r.stdout and TOKEN not in r.output
    assert len(env.bad.requests) == 1
    again = env.run("test-alert", "--channel", "soc")  # the failed test is not retried
    assert again.exit_code == 0 and len(env.bad.requests) == 1


def test_test_alert_without_channel_tries_every_channel(env: Env) -> None:
    r = env.run("test-alert")
    assert r.exit_code == 1
    assert "console: delivered" in r.stdout and "soc: delivered" in r.stdout
    assert "broken: FAILED" in r.stdout
    assert "ALERT TEST cli-ex WARNING firing test console" in r.stderr


def test_test_alert_unknown_channel_exits_2(env: Env) -> None:
    r = env.run("test-alert", "--channel", "nope")
    assert r.exit_code == 2 and "no channel named 'nope'" in r.stderr
    assert env.good.requests == [] and env.audit("test") == []


def test_test_alert_leaves_other_pending_notifications_alone(env: Env) -> None:
    with Store.open(env.settings.store.path) as store:
        store.enqueue("soc", [{"seq": 99, "kind": "firing", "rule": "hot_drain"}],
                      datetime.now(UTC) - timedelta(minutes=1))
        assert env.run("test-alert", "--channel", "soc").exit_code == 0
        assert store.outbox_counts()["pending"] == 1
    assert [a["rule"] for r in env.good.requests for a in r.json()["alerts"]] == ["test"]


# -- ack and silence --------------------------------------------------------------------

def test_ack_is_shown_in_list_and_announced(env: Env) -> None:
    fp = env.fire_hot_ratio()
    r = env.run("alerts", "ack", fp[:8], "--note", "rebalancing", "--by", "alice")
    assert r.exit_code == 0, r.output
    (row,) = env.json("alerts", "list", "--json")
    assert row["acked"].startswith("alice ") and row["silenced"] is None
    with Store.open(env.settings.store.path) as store:
        kinds = [(i.channel, t["kind"]) for i in store.pending_outbox(datetime.now(UTC), 100)
                 for t in i.transitions]
    assert ("soc", "acknowledged") in kinds and ("console", "acknowledged") in kinds


@pytest.mark.parametrize("target", ["hot_drain", "cold_outflow", "stale_data",
                                    "config_changed", "delivery_failed"])
def test_protected_rules_cannot_be_silenced_from_the_cli(env: Env, target: str) -> None:
    r = env.run("alerts", "silence", target, "--for", "1h", "--reason", "noise")
    assert r.exit_code == 2
    assert f"{target} cannot be silenced" in r.stderr
    assert env.audit("silence") == []


def test_silence_longer_than_24h_exits_2_with_the_reason(env: Env) -> None:
    r = env.run("alerts", "silence", "hot_ratio", "--for", "25h", "--reason", "weekend")
    assert r.exit_code == 2 and "at most 24h" in r.stderr


def test_silence_list_unsilence_and_history_from_the_cli(env: Env) -> None:
    fp = env.fire_hot_ratio()
    r = env.run("alerts", "silence", fp[:10], "--for", "2h", "--reason", "top-up", "--by", "bob")
    assert r.exit_code == 0, r.output
    (s,) = env.json("alerts", "silences", "--json")
    assert (s["rule"], s["fingerprint"], s["by"], s["reason"], s["state"]) == (
        "hot_ratio", fp, "bob", "top-up", "active")
    (row,) = env.json("alerts", "list", "--json")
    assert row["silenced"].startswith("until ") and f"silence {s['id']}" in row["silenced"]
    assert "top-up" in env.run("alerts", "silences").stdout
    r = env.run("alerts", "unsilence", str(s["id"]), "--reason", "done", "--by", "carol")
    assert r.exit_code == 0, r.output
    assert env.json("alerts", "silences", "--json") == []
    (ended,) = env.json("alerts", "silences", "--all", "--json")
    assert (ended["state"], ended["ended_by"], ended["end_reason"]) == ("ended", "carol", "done")
    history = env.json("alerts", "history", fp, "--json")
    assert [(h["kind"], h.get("by"), h.get("reason")) for h in history][1:] == [
        ("silence", "bob", "top-up"), ("unsilence", "carol", "done")]
    assert json.loads(env.run("verify", "--json").stdout)["ok"] is True
