"""What `config_changed` compares, and its human-readable diff."""

from __future__ import annotations

import json

from test_config_fixtures import HOT, full_config, write

from auditor.config import config_material, diff_material, load_config


def _material(tmp_path, cfg: str, secret: str = "hush-secret") -> dict:
    return config_material(load_config(write(tmp_path, cfg), env={"SOC_SECRET": secret}))


def _strings_only(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _strings_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_strings_only(v) for v in value)
    return isinstance(value, str)


def test_material_is_strings_only_and_has_no_secrets(tmp_path):
    m = _material(tmp_path, full_config())
    assert _strings_only(m)
    text = json.dumps(m)
    assert "hush-secret" not in text and "soc.example" not in text and "8545" not in text
    assert set(m) == {"wallets", "allow", "approvals", "rules", "routes", "channels"}
    assert m["wallets"]["eth-hot-1"]["addresses"] == [HOT]
    assert m["rules"]["hot_ratio"] == {"warning": "0.04", "critical": "0.05"}
    assert m["channels"]["soc"] == {"type": "webhook"}
    assert m["approvals"]["items"]["2026-12-01-a"]["amount"] == "50"
    assert m["allow"] == []


def test_same_config_has_no_diff(tmp_path):
    m = _material(tmp_path, full_config())
    assert diff_material(m, json.loads(json.dumps(m))) == []


def test_diff_names_added_address_and_changed_threshold(tmp_path):
    old = _material(tmp_path, full_config())
    new_addr = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
    cfg = (full_config().replace(f'addresses: ["{HOT}"]', f'addresses: ["{HOT}", "{new_addr}"]')
           .replace("  preset: jp-fsa\n", "  preset: jp-fsa\n  hot_ratio: {critical: \"6%\"}\n"))
    new = _material(tmp_path, cfg)
    lines = diff_material(old, new)
    assert f"wallets.eth-hot-1.addresses: added {new_addr}" in lines
    assert "rules.hot_ratio.critical: 0.05 → 0.06" in lines
    assert len(lines) == 2


def test_diff_reports_removed_wallet_and_route_change(tmp_path):
    old = _material(tmp_path, full_config())
    cfg = (full_config().replace("channels: [soc]}", "channels: [console]}"))
    new = _material(tmp_path, cfg)
    new["wallets"].pop("eth-cold-1")
    lines = diff_material(old, new)
    assert "wallets.eth-cold-1: removed" in lines
    assert "routes[0].channels: added console" in lines
    assert "routes[0].channels: removed soc" in lines


def test_secret_change_alone_is_not_a_config_change(tmp_path):
    assert diff_material(_material(tmp_path, full_config(), "a"),
                         _material(tmp_path, full_config(), "b")) == []
