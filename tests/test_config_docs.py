"""docs/configuration.md documents every key the example and starter configs use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
# Mapping levels whose keys are names chosen by the user, not config keys.
_NAMED = {"chains": "<name>", "assets": "<symbol>", "prices.static": "<ASSET>",
          "rules.asset_hot_ratio.assets": "<ASSET>", "rules.hot_floor.assets": "<ASSET>",
          "rules.unknown_destination.assets": "<ASSET>", "withdrawals.fee_tolerance": "<ASSET>"}


def _key_paths(data: Any, path: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            name = _NAMED.get(path, key)
            p = f"{path}.{name}" if path else name
            out.add(p)
            out |= _key_paths(value, p)
    elif isinstance(data, list):
        for item in data:
            out |= _key_paths(item, f"{path}[]")
    return out


def _documented() -> set[str]:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"`([a-z_]+(?:[.\[][^`\s]*)?)`", text))


def test_every_key_of_the_example_and_starter_configs_is_documented():
    documented = _documented()
    paths: set[str] = set()
    for f in (REPO / "config" / "auditor.example.yaml", REPO / "auditor" / "templates" / "auditor.yaml"):
        paths |= _key_paths(yaml.safe_load(f.read_text(encoding="utf-8")))
    # A mapping rule key such as `rules.hot_ratio` is documented by its own row.
    missing = sorted(p.replace("[]", "[]") for p in paths if p not in documented)
    assert missing == []


# Keys the example config does not use (optional or alternative forms).
_OTHER_KEYS = [
    "daemon.heartbeat", "daemon.heartbeat.url", "daemon.heartbeat.url_file",
    "daemon.heartbeat.timeout", "chains.<name>.rpc[].url_file", "assets.<symbol>.chain",
    "assets.<symbol>.token", "assets.<symbol>.decimals", "approvals.items[].not_before",
    "rules.guarantee_coverage", "rules.guarantee_coverage.warning",
    "rules.guarantee_coverage.critical", "rules.reserve_coverage.warning",
    "rules.commingling.critical", "alerts.channels[].url_file",
    "alerts.channels[].secret_file", "alerts.channels[].retry", "alerts.routes[].rule",
    "alerts.routes[].chain", "alerts.routes[].wallet", "alerts.routes[].asset",
    "alerts.routes[].continue", "alerts.routes[].repeat_every",
    "withdrawals.source", "withdrawals.path", "withdrawals.url", "withdrawals.url_file",
    "withdrawals.query", "withdrawals.max_age", "withdrawals.fee_tolerance",
    "counterparties.allow", "counterparties.allow[].chain", "counterparties.allow[].address",
    "counterparties.allow[].name", "rules.large_outflow", "rules.large_outflow.max_single",
    "rules.large_outflow.severity", "rules.unknown_destination",
    "rules.unknown_destination.assets", "rules.unknown_destination.assets.<ASSET>",
    "rules.unknown_destination.severity",
]


def test_optional_keys_missing_from_the_example_are_documented():
    documented = _documented()
    assert [k for k in _OTHER_KEYS if k not in documented] == []
