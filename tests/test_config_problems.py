"""Each class of config problem: key path, line and a message that says how to fix it."""

from __future__ import annotations

import pytest
from test_config_fixtures import COLD, HOT, USDC, full_config, problems_of, write

from auditor.config import check_config, load_config
from auditor.errors import ConfigError


def _line_of(cfg: str, fragment: str) -> int:
    return next(i for i, line in enumerate(cfg.splitlines(), 1) if fragment in line)


def test_wrong_case_checksum_shows_the_correct_form(tmp_path):
    bad = HOT[:2] + HOT[2:].swapcase()
    cfg = full_config().replace(HOT, bad)
    (p,) = problems_of(write(tmp_path, cfg), "wallets[0].addresses[0]")
    assert "EIP-55" in p.message and HOT in p.message and 'wallet "eth-hot-1"' in p.message
    assert p.line == _line_of(cfg, bad)


def test_ens_names_are_refused(tmp_path):
    cfg = full_config().replace(f'"{HOT}"', '"hot.example.eth"')
    (p,) = problems_of(write(tmp_path, cfg), "wallets[0].addresses[0]")
    assert "ENS" in p.message and "0x address" in p.message


def test_wrong_case_token_address_is_refused(tmp_path):
    cfg = full_config().replace(USDC, USDC[:2] + USDC[2:].swapcase())
    (p,) = problems_of(write(tmp_path, cfg), "assets.USDC.deployments[0].token")
    assert USDC in p.message


def test_guarantee_wallet_must_be_cold(tmp_path):
    cfg = full_config().replace("    tier: cold\n    role: guarantee", "    tier: hot\n    role: guarantee")
    (p,) = problems_of(write(tmp_path, cfg), "wallets[2].tier")
    assert "must be `tier: cold`" in p.message and 'wallet "eth-guarantee"' in p.message


def test_missing_role_explains_why_it_is_required(tmp_path):
    cfg = full_config().replace("    tier: hot\n    role: customer\n", "    tier: hot\n")
    (p,) = problems_of(write(tmp_path, cfg), "wallets[0]")
    assert "role" in p.message and "flatters every ratio" in p.message
    assert p.line == _line_of(cfg, "name: eth-hot-1")


def test_address_in_two_wallets_is_an_error(tmp_path):
    cfg = full_config().replace(f'addresses: ["{COLD}"]', f'addresses: ["{HOT}"]')
    (p,) = problems_of(write(tmp_path, cfg), "wallets[1].addresses[0]")
    assert 'also in wallet "eth-hot-1"' in p.message


def test_duplicate_wallet_names_are_an_error(tmp_path):
    cfg = full_config().replace("name: eth-cold-1", "name: eth-hot-1")
    (p,) = problems_of(write(tmp_path, cfg), "wallets[1].name")
    assert "unique" in p.message


def test_wallet_on_unknown_chain_and_unknown_asset(tmp_path):
    cfg = full_config().replace("    assets: [ETH]\n", "    assets: [ETH, DOGE]\n")
    cfg = cfg.replace("name: eth-cold-1\n    chain: ethereum", "name: eth-cold-1\n    chain: solana")
    path = write(tmp_path, cfg)
    (chain,) = problems_of(path, "wallets[1].chain")
    assert "unknown chain `solana`" in chain.message and "ethereum" in chain.message
    (asset,) = problems_of(path, "wallets[2].assets[1]")
    assert "unknown asset `DOGE`" in asset.message


def test_unknown_key_suggests_the_closest(tmp_path):
    cfg = full_config().replace("    confirmations: 12", "    confirmation: 12")
    (p,) = problems_of(write(tmp_path, cfg), "chains.ethereum.confirmation")
    assert "unknown key `confirmation`; did you mean `confirmations`?" in p.message
    assert p.line == _line_of(cfg, "confirmation: 12")


def test_float_price_is_refused_with_the_quoted_form(tmp_path):
    cfg = full_config().replace('ETH: "450000.5"', "ETH: 450000.5")
    (p,) = problems_of(write(tmp_path, cfg), "prices.static.ETH")
    assert 'write "450000.5" in quotes: floats lose precision' in p.message


def test_asset_without_price_is_a_warning(tmp_path):
    cfg = full_config().replace(', USDC: 150', "")
    path = write(tmp_path, cfg)
    (p,) = problems_of(path, "prices.static", severity="warning")
    assert "USDC" in p.message and "hot_ratio will be null" in p.message
    assert load_config(path, env={"SOC_SECRET": "x"}).prices.static.keys() == {"ETH"}


def test_duration_without_unit_is_an_error(tmp_path):
    cfg = full_config().replace("max_head_age: 2m", "max_head_age: 120")
    (p,) = problems_of(write(tmp_path, cfg), "chains.ethereum.max_head_age")
    assert "write 120s" in p.message


def test_single_rpc_provider_is_a_warning(tmp_path):
    cfg = full_config().replace("      - {url: http://127.0.0.1:8546, timeout: 5s}\n", "")
    path = write(tmp_path, cfg)
    (p,) = problems_of(path, "chains.ethereum.rpc", severity="warning")
    assert "single provider" in p.message and "add a second rpc entry" in p.message
    s = load_config(path, env={"SOC_SECRET": "x"})
    assert any("single provider" in w for w in s.warnings)


def test_rpc_url_scheme_is_checked(tmp_path):
    cfg = full_config().replace("http://127.0.0.1:8546", "ftp://127.0.0.1:8546")
    (p,) = problems_of(write(tmp_path, cfg), "chains.ethereum.rpc[1].url")
    assert "http://" in p.message


def test_multicall3_null_means_none(tmp_path):
    cfg = full_config().replace("    max_head_age: 2m\n", "    max_head_age: 2m\n    multicall3: null\n")
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.chains["ethereum"].multicall3 is None


def test_two_native_assets_on_one_chain_are_an_error(tmp_path):
    cfg = full_config().replace("  USDC:\n", "  WETH2: {class: crypto, chain: ethereum, decimals: 18}\n  USDC:\n")
    (p,) = problems_of(write(tmp_path, cfg), "assets.WETH2")
    assert "already has a native coin, ETH" in p.message


def test_asset_class_must_be_known(tmp_path):
    cfg = full_config().replace("class: stablecoin", "class: security")
    (p,) = problems_of(write(tmp_path, cfg), "assets.USDC.class")
    assert "crypto | stablecoin" in p.message


def test_exchange_id_must_be_a_slug(tmp_path):
    cfg = full_config().replace("id: example-ex", "id: Example_Ex")
    (p,) = problems_of(write(tmp_path, cfg), "exchange.id")
    assert "lowercase letters, digits and `-`" in p.message


def test_timezone_and_cutoff_are_checked(tmp_path):
    cfg = (full_config().replace("timezone: Asia/Tokyo", "timezone: Mars/Olympus")
           .replace('records_cutoff: "00:00"', 'records_cutoff: "25:00"'))
    path = write(tmp_path, cfg)
    assert "IANA" in problems_of(path, "schedule.timezone")[0].message
    assert "HH:MM" in problems_of(path, "schedule.records_cutoff")[0].message


def test_daemon_listen_off_disables_the_endpoint(tmp_path):
    cfg = full_config().replace('listen: "127.0.0.1:9464"', "listen: off")
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.daemon.listen_port is None


def test_daemon_listen_must_be_host_and_port(tmp_path):
    cfg = full_config().replace('listen: "127.0.0.1:9464"', 'listen: "localhost"')
    (p,) = problems_of(write(tmp_path, cfg), "daemon.listen")
    assert "host:port" in p.message


def test_missing_liabilities_file_is_only_a_warning(tmp_path):
    cfg = full_config().replace("path: liabilities.csv", "path: ledger/today.csv")
    path = write(tmp_path, cfg)
    (p,) = problems_of(path, "liabilities.path", severity="warning")
    assert "does not exist" in p.message
    assert load_config(path, env={"SOC_SECRET": "x"}).liabilities is not None


def test_approvals_as_a_plain_list_explains_the_mapping_form(tmp_path):
    cfg = full_config().replace("approvals:\n  items:\n", "approvals:\n")
    cfg = cfg.replace("  keys: [\"ssh", "  # keys: [\"ssh")
    (p,) = problems_of(write(tmp_path, cfg), "approvals")
    assert "`items:`" in p.message


def test_approval_item_without_to_or_amount_is_refused(tmp_path):
    cfg = full_config().replace(' to: eth-hot-1, amount: "50",', "")
    messages = [p.message for p in problems_of(write(tmp_path, cfg), "approvals.items[0]")]
    assert len(messages) == 2
    assert "`to` is required" in messages[0] and "`amount` is required" in messages[1]
    assert "would approve any movement" in messages[0]


def test_problems_are_listed_in_file_order(tmp_path):
    cfg = full_config().replace("poll_every: 60s", "poll_every: 60") + "foo: 1\n"
    _, problems = check_config(write(tmp_path, cfg), env={})  # SOC_SECRET missing too
    lines = [p.line for p in problems if p.severity == "error"]
    assert len(lines) == 3 and lines == sorted(lines)


def test_invalid_wallet_does_not_cascade_into_its_references(tmp_path):
    cfg = full_config().replace("name: eth-cold-1\n    chain: ethereum\n    tier: cold",
                                "name: eth-cold-1\n    chain: ethereum\n    tier: frozen")
    _, problems = check_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert [p.path for p in problems if p.severity == "error"] == ["wallets[1].tier"]


def test_approval_must_name_a_cold_wallet_and_a_zoned_time(tmp_path):
    cfg = (full_config().replace("wallet: eth-cold-1, asset", "wallet: eth-hot-1, asset")
           .replace('"2026-12-01T06:00:00Z"', '"2026-12-01T06:00:00"'))
    path = write(tmp_path, cfg)
    assert "not cold" in problems_of(path, "approvals.items[0].wallet")[0].message
    assert "time zone" in problems_of(path, "approvals.items[0].not_after")[0].message


def test_unsigned_approvals_are_a_warning(tmp_path):
    cfg = full_config().replace("  keys: [\"ssh", "  # keys: [\"ssh")
    (p,) = problems_of(write(tmp_path, cfg), "approvals", severity="warning")
    assert "approvals are unsigned" in p.message and "add approvals.keys" in p.message


def test_quorum_above_the_number_of_keys_is_an_error(tmp_path):
    cfg = full_config().replace("rules:\n", "  quorum: 2\nrules:\n")
    (p,) = problems_of(write(tmp_path, cfg), "approvals.quorum")
    assert "more than the 1 keys" in p.message


def test_route_naming_an_unknown_channel_is_an_error(tmp_path):
    cfg = full_config().replace("channels: [soc]}", "channels: [pager]}")
    (p,) = problems_of(write(tmp_path, cfg), "alerts.routes[0].channels[0]")
    assert "unknown channel `pager`" in p.message and "console" in p.message


def test_webhook_needs_a_url(tmp_path):
    cfg = full_config().replace('url: "https://soc.example/hook", ', "")
    (p,) = problems_of(write(tmp_path, cfg), "alerts.channels[1]")
    assert "`url` is required" in p.message


def test_without_channels_a_console_channel_is_defaulted_with_a_warning(tmp_path):
    cfg = full_config().split("alerts:\n")[0]
    path = write(tmp_path, cfg)
    (p,) = problems_of(path, "alerts.channels", severity="warning")
    assert "console" in p.message
    s = load_config(path, env={})
    assert [c.name for c in s.alerts.channels] == ["console"]
    assert s.alerts.routes[0].channels == ("console",)
    assert set(s.alerts.routes[0].severity) == {"warning", "critical"}


def test_channel_rate_accepts_per_second_text(tmp_path):
    cfg = full_config().replace('secret: "${SOC_SECRET}"}', 'secret: "${SOC_SECRET}", rate: 30/m}')
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert str(s.alerts.channels[1].rate) == "0.5"


def test_empty_config_says_how_to_start(tmp_path):
    _, problems = check_config(write(tmp_path, ""))
    assert "auditor init" in problems[0].message


def test_config_error_carries_the_warnings_too(tmp_path):
    cfg = (full_config().replace("      - {url: http://127.0.0.1:8546, timeout: 5s}\n", "")
           .replace("tier: hot\n", "tier: hott\n"))
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert [p.path for p in e.value.problems] == ["wallets[0].tier"]
    assert [p.path for p in e.value.warnings] == ["chains.ethereum.rpc"]
