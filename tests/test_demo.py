"""`auditor demo` tells the whole story and leaves a store `status` can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _auditor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_demo_fires_escalates_resolves_and_leaves_a_verifiable_store(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = _auditor("demo", "--fast", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    text = r.stdout
    assert "firing warning  hot_ratio combined" in text
    assert "escalated critical hot_ratio combined" in text
    assert "resolved critical hot_ratio combined" in text
    assert "firing critical hot_drain eth-hot-1/ETH" in text
    assert "firing critical hot_drain btc-hot/BTC" in text
    assert "firing critical sanctioned_counterparty" in text  # the OFAC-listed deposit
    drain = text.split("A Coincheck-style drain")[1]
    assert drain.count("firing critical unmatched_outflow") == 3  # ETH, USDC and BTC theft transactions
    assert "resolved hot_drain eth-hot-1/ETH by demo-operator" in text
    assert "stale_data" not in text.split("the end")[0]  # both chains read every cycle (Bitcoin via Esplora)
    # Before the drain, every ledger asset is fully covered: no reserve alert of any kind.
    assert "reserve_coverage" not in text.split("A Coincheck-style drain")[0]
    # The approved top-up and the sweep to cold page nobody.
    assert "cold_outflow" not in text.split("A Coincheck-style drain")[0].replace("cold_outflow stays quiet", "")
    before_drain = text.split("A Coincheck-style drain")[0]
    assert "hot_drain" not in before_drain
    assert "unmatched_outflow" not in before_drain  # requested withdrawals match their requests
    cfg = str(out / "demo.yaml")
    status = json.loads(_auditor("status", "--json", "-c", cfg).stdout)
    assert status["last_cycle"]["status"] == "ok"
    rules = {a["rule"] for a in status["firing"]}
    assert "reserve_coverage" in rules and "hot_drain" not in rules
    assert {a["subject"] for a in status["firing"] if a["rule"] == "reserve_coverage"} == {"ETH", "USDC", "BTC"}
    verify = _auditor("verify", "--json", "-c", cfg)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True
