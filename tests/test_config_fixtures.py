"""Shared config text and helpers for the config tests (no tests here)."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.config import check_config
from auditor.errors import ConfigProblem

HOT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
COLD = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
GUARANTEE = "0x90F79BF6EB2c4f870365E785982E1f101e3b906e"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"

_FULL = """\
exchange:
  id: example-ex
  name: Example Exchange
  fiat: JPY
store:
  path: var/auditor.db
daemon:
  listen: "127.0.0.1:9464"
schedule:
  poll_every: 60s
  timezone: Asia/Tokyo
  records_cutoff: "00:00"
chains:
  ethereum:
    type: ethereum
    rpc:
      - url: http://127.0.0.1:8545
      - {url: http://127.0.0.1:8546, timeout: 5s}
    confirmations: 12
    max_head_age: 2m
assets:
  ETH: {class: crypto, chain: ethereum, decimals: 18}
  USDC:
    class: stablecoin
    deployments:
      - {chain: ethereum, token: "USDC_ADDR", decimals: 6}
wallets:
  - name: eth-hot-1
    chain: ethereum
    tier: hot
    role: customer
    addresses: ["HOT_ADDR"]
  - name: eth-cold-1
    chain: ethereum
    tier: cold
    role: customer
    addresses: ["COLD_ADDR"]
  - name: eth-guarantee
    chain: ethereum
    tier: cold
    role: guarantee
    addresses: ["GUARANTEE_ADDR"]
    assets: [ETH]
prices:
  source: static
  static: {ETH: "450000.5", USDC: 150}
  max_age: 10m
liabilities:
  source: csv
  path: liabilities.csv
  max_age: 1h
approvals:
  items:
    - {id: "2026-12-01-a", wallet: eth-cold-1, asset: ETH, to: eth-hot-1, amount: "50",
       not_after: "2026-12-01T06:00:00Z", signatures: [SIGNATURE]}
  keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGL84QpAf36w2a98HYBSkQq4lB9aIuxlnu9eNN0+KJ4l ciso@example"]
rules:
  preset: jp-fsa
alerts:
  repeat_every: 1h
  channels:
    - {name: console, type: log}
    - {name: soc, type: webhook, url: "https://soc.example/hook", secret: "${SOC_SECRET}"}
  routes:
    - {severity: [critical], channels: [soc]}
    - {severity: [warning], channels: [console]}
"""


# ssh-keygen -Y sign -n auditor-approval over the item's canonical JSON (tests/test_approvals.py).
_SIGNATURE = json.dumps("""-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgYvzhCkB/frDZr3wdgFKRCriUH1
oi7GWe71403T4oniUAAAAQYXVkaXRvci1hcHByb3ZhbAAAAAAAAAAGc2hhNTEyAAAAUwAA
AAtzc2gtZWQyNTUxOQAAAEAa/K4TycLcb3x35+nTht7JbV1uh1QdiTbblPJcH+6Zv5EwPs
leso9rgNIKs/rbu3HJKVDiSwwbFQoAIFOR8dQL
-----END SSH SIGNATURE-----
""")


def full_config() -> str:
    return (_FULL.replace("HOT_ADDR", HOT).replace("COLD_ADDR", COLD)
            .replace("GUARANTEE_ADDR", GUARANTEE).replace("USDC_ADDR", USDC)
            .replace("SIGNATURE", _SIGNATURE))


def write(directory: Path, text: str, name: str = "auditor.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    if not (directory / "liabilities.csv").exists():
        (directory / "liabilities.csv").write_text("asset,amount\nETH,400\nUSDC,0\n")
    return path


def problems_of(path: Path, key_path: str, env: dict[str, str] | None = None,
                severity: str = "error") -> list[ConfigProblem]:
    """The problems reported at one key path."""
    _, problems = check_config(path, env={"SOC_SECRET": "x"} if env is None else env)
    return [p for p in problems if p.path == key_path and p.severity == severity]
