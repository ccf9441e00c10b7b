"""`withdrawals`, `counterparties.allow`, `rules.large_outflow` and
`rules.unknown_destination`: valid configs load; every problem names its key path
and line; `config_changed` covers the allow list and the rules."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from test_config_bitcoin import P2WPKH, btc_config
from test_config_fixtures import full_config, problems_of, write

from auditor.config import PRESETS, check_config, config_material, diff_material, load_config, preset_rules
from auditor.settings import Counterparty, LargeOutflowRule, Secret, UnknownDestinationRule

MM = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
BAD_CHECKSUM = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A6a"


def load(tmp_path: Path, cfg: str, env: dict[str, str] | None = None):
    return load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x", **(env or {})})


def only(tmp_path: Path, cfg: str, key_path: str, severity: str = "error"):
    found = problems_of(write(tmp_path, cfg), key_path, severity=severity)
    assert len(found) == 1, check_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})[1]
    return found[0]


def line_of(cfg: str, fragment: str) -> int:
    return next(i for i, line in enumerate(cfg.splitlines(), 1) if fragment in line)


def with_rules(extra: str) -> str:
    return full_config().replace("  preset: jp-fsa\n", "  preset: jp-fsa\n" + extra)


# -- withdrawals ---------------------------------------------------------------------


def test_withdrawals_csv_with_max_age_and_fee_tolerance(tmp_path):
    (tmp_path / "withdrawals.csv").write_text("id,asset,to,amount,approved_at\n")
    s = load(tmp_path, full_config() + "withdrawals:\n  path: withdrawals.csv\n  max_age: 5m\n"
                                       '  fee_tolerance: {ETH: "0.001"}\n')
    w = s.withdrawals
    assert w is not None and w.source == "csv" and w.path == tmp_path / "withdrawals.csv"
    assert w.max_age == 300 and w.fee_tolerance == {"ETH": Decimal("0.001")}


def test_withdrawals_sql_url_is_a_secret_from_env_or_file(tmp_path):
    (tmp_path / "dsn").write_text("postgresql+psycopg://auditor:pw@db:5432/bo\n")
    s = load(tmp_path, full_config() + "withdrawals:\n  source: sql\n  url_file: dsn\n"
                                       "  query: select * from approved\n")
    w = s.withdrawals
    assert w is not None and w.url == Secret("postgresql+psycopg://auditor:pw@db:5432/bo")
    assert w.url_label == "postgresql+psycopg://auditor@db:5432/bo" and w.max_age is None


def test_without_withdrawals_nothing_is_configured(tmp_path):
    s = load(tmp_path, full_config())
    assert s.withdrawals is None and s.counterparties == ()


def test_missing_withdrawals_file_is_a_warning(tmp_path):
    p = only(tmp_path, full_config() + "withdrawals: {path: nowhere.csv}\n", "withdrawals.path",
             severity="warning")
    assert "does not exist yet" in p.message


@pytest.mark.parametrize("section,path,says", [
    ("withdrawals: {source: xml, path: w.csv}\n", "withdrawals.source", "csv | json | sql"),
    ("withdrawals: {source: csv}\n", "withdrawals", "`path` is required"),
    ("withdrawals: {source: sql, query: x}\n", "withdrawals", "`url` is required"),
    ("withdrawals: {source: sql, url: x, query: q}\n", "withdrawals.url", "SQLAlchemy URL"),
    ("withdrawals: {source: sql, url: 'sqlite:///x.db', url_file: f, query: q}\n",
     "withdrawals.url_file", "both set"),
    ("withdrawals: {source: sql, url: 'sqlite:///x.db', path: w.csv, query: q}\n",
     "withdrawals.path", "unknown key"),
    ("withdrawals: {path: w.csv, max_age: 60}\n", "withdrawals.max_age", "no unit"),
    ("withdrawals: {path: w.csv, fee_tolerance: {DOGE: '1'}}\n", "withdrawals.fee_tolerance.DOGE",
     "unknown asset"),
    ("withdrawals: {path: w.csv, fee_tolerance: {USDC: '0.0000001'}}\n",
     "withdrawals.fee_tolerance.USDC", "more than 6 decimal places"),
    ("withdrawals: {path: w.csv, fee_tolerance: {ETH: 0.1}}\n", "withdrawals.fee_tolerance.ETH",
     "in quotes"),
    ("withdrawals: {path: w.csv, fee_tolerance: [ETH]}\n", "withdrawals.fee_tolerance",
     "expected a mapping"),
    ("withdrawals: [w.csv]\n", "withdrawals", "expected a mapping"),
])
def test_withdrawals_problems_name_the_key_and_line(tmp_path, section, path, says):
    cfg = full_config() + section
    p = only(tmp_path, cfg, path)
    assert says in p.message and p.line == line_of(cfg, "withdrawals:")


def test_withdrawals_sql_url_never_shows_in_problems(tmp_path):
    cfg = full_config() + "withdrawals: {source: sql, url: 'hunter2 at db', query: q}\n"
    _, problems = check_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert problems and all("hunter2" not in p.message for p in problems)


# -- counterparties --------------------------------------------------------------------


def test_allow_list_on_both_chain_types(tmp_path):
    cfg = btc_config() + (f"counterparties:\n  allow:\n"
                          f"    - {{chain: ethereum, address: \"{MM}\", name: market-maker}}\n"
                          f"    - {{chain: bitcoin, address: \"{P2WPKH}\", name: otc-desk}}\n")
    s = load(tmp_path, cfg)
    assert s.counterparties == (Counterparty("ethereum", MM.lower(), "market-maker"),
                                Counterparty("bitcoin", P2WPKH.lower(), "otc-desk"))


@pytest.mark.parametrize("entry,path,says", [
    (f'{{chain: ethereum, address: "{BAD_CHECKSUM}", name: mm}}', "counterparties.allow[0].address",
     "EIP-55"),
    ('{chain: ethereum, address: "mm.eth", name: mm}', "counterparties.allow[0].address", "ENS"),
    (f'{{chain: bitcoin, address: "{MM}", name: mm}}', "counterparties.allow[0].address",
     "not a Bitcoin address"),
    ('{chain: bitcoin, address: "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", name: mm}',
     "counterparties.allow[0].address", "network is bitcoin"),
    (f'{{chain: solana, address: "{MM}", name: mm}}', "counterparties.allow[0].chain",
     "unknown chain `solana`"),
    (f'{{chain: ethereum, address: "{MM}"}}', "counterparties.allow[0]", "`name` is required"),
    (f'{{chain: ethereum, address: "{MM}", name: mm, note: x}}', "counterparties.allow[0].note",
     "unknown key"),
    ("mm", "counterparties.allow[0]", "expected a mapping"),
])
def test_allow_entry_problems_name_the_key_and_line(tmp_path, entry, path, says):
    cfg = btc_config() + f"counterparties:\n  allow:\n    - {entry}\n"
    p = only(tmp_path, cfg, path)
    assert says in p.message and p.line == line_of(cfg, f"    - {entry}")


def test_allow_list_repeats_and_shape(tmp_path):
    twice = (f"counterparties:\n  allow:\n    - {{chain: ethereum, address: \"{MM}\", name: a}}\n"
             f"    - {{chain: ethereum, address: \"{MM.lower()}\", name: b}}\n")
    assert "already allowed on ethereum (as a)" in only(
        tmp_path, full_config() + twice, "counterparties.allow[1].address").message
    assert "expected a list" in only(tmp_path, full_config() + "counterparties: {allow: x}\n",
                                     "counterparties.allow").message
    assert "unknown key `deny`" in only(tmp_path, full_config() + "counterparties: {deny: []}\n",
                                        "counterparties.deny").message


# -- rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_unknown_destination_on_and_large_outflow_off(preset):
    r = preset_rules(preset)
    assert r.large_outflow is None
    assert r.unknown_destination == UnknownDestinationRule({}, "warning")
    assert r.unmatched_outflow and r.sanctioned_counterparty and r.safe_changed


def test_transfer_rule_keys_load(tmp_path):
    s = load(tmp_path, with_rules('  large_outflow: {max_single: "100000000"}\n'
                                  '  unknown_destination: {assets: {ETH: "1", USDC: "1000"}, '
                                  "severity: critical}\n"))
    assert s.rules.large_outflow == LargeOutflowRule(Decimal("100000000"), "critical")
    assert s.rules.unknown_destination == UnknownDestinationRule(
        {"ETH": Decimal("1"), "USDC": Decimal("1000")}, "critical")
    off = load(tmp_path, with_rules("  large_outflow: off\n  unknown_destination: off\n"))
    assert off.rules.large_outflow is None and off.rules.unknown_destination is None


@pytest.mark.parametrize("extra,path,says", [
    ("  large_outflow: {severity: warning}\n", "rules.large_outflow", "`max_single` is required"),
    ('  large_outflow: {max_single: "x"}\n', "rules.large_outflow.max_single", "not a number"),
    ('  large_outflow: {max_single: "1", severity: info}\n', "rules.large_outflow.severity",
     "warning | critical"),
    ("  large_outflow: 5\n", "rules.large_outflow", "expected a mapping"),
    ('  unknown_destination: {assets: {DOGE: "1"}}\n', "rules.unknown_destination.assets.DOGE",
     "unknown asset"),
    ('  unknown_destination: {assets: {ETH: "-1"}}\n', "rules.unknown_destination.assets.ETH",
     "0 or more"),
    ("  unknown_destination: {limit: 1}\n", "rules.unknown_destination.limit", "unknown key"),
    ("  unmatched_outflow: off\n", "rules.unmatched_outflow", "always on"),
    ("  sanctioned_counterparty: {}\n", "rules.sanctioned_counterparty", "always on"),
])
def test_transfer_rule_problems_name_the_key_and_line(tmp_path, extra, path, says):
    cfg = with_rules(extra)
    p = only(tmp_path, cfg, path)
    assert says in p.message and p.line == line_of(cfg, extra.split(":")[0])


# -- config_changed material ------------------------------------------------------------------


def _material(tmp_path: Path, cfg: str) -> dict:
    return config_material(load(tmp_path, cfg))


def test_material_of_an_ethereum_config_has_no_new_keys(tmp_path):
    m = _material(tmp_path, full_config())
    assert m["allow"] == [] and "large_outflow" not in m["rules"]
    assert "unknown_destination" not in m["rules"]
    assert all(set(w) == {"chain", "tier", "role", "addresses", "assets"}
               for w in m["wallets"].values())


def test_allow_list_and_transfer_rules_changes_show_in_the_diff(tmp_path):
    old = _material(tmp_path, full_config())
    cfg = with_rules('  large_outflow: {max_single: "5000000"}\n'
                     '  unknown_destination: {assets: {ETH: "2"}}\n') + (
        f"counterparties:\n  allow:\n    - {{chain: ethereum, address: \"{MM}\", name: mm}}\n")
    new = _material(tmp_path, cfg)
    assert json.loads(json.dumps(new)) == new
    lines = diff_material(old, new)
    assert f"allow: added ethereum:{MM.lower()} mm" in lines
    assert any(line.startswith("rules.large_outflow: added") for line in lines)
    assert any(line.startswith("rules.unknown_destination: added") for line in lines)
    off = _material(tmp_path, with_rules("  unknown_destination: off\n"))
    assert "rules.unknown_destination: added off" in diff_material(old, off)


def test_bitcoin_wallet_keys_are_material_when_set(tmp_path):
    m = _material(tmp_path, btc_config())
    assert m["wallets"]["btc-hot"]["descriptors"] and "gap_limit" not in m["wallets"]["btc-hot"]
    assert m["wallets"]["btc-cold"]["gap_limit"] == "50"
    assert m["wallets"]["btc-deposits"]["issued"] == "1000"
    changed = _material(tmp_path, btc_config().replace("gap_limit: 50", "gap_limit: 60"))
    assert diff_material(m, changed) == ["wallets.btc-cold.gap_limit: 50 → 60"]


# -- sanctions (read by config_sanctions, wired here) ------------------------------------------


def test_sanctions_section_is_read_and_defaults_to_the_builtin_list(tmp_path):
    s = load(tmp_path, full_config())
    assert [x.label for x in s.sanctions.lists] == ["builtin"]
    assert s.sanctions.cache_dir == tmp_path / "var" / "sanctions"
    s2 = load(tmp_path, full_config() + "sanctions: {lists: [builtin], max_age: 2d}\n")
    assert s2.sanctions.max_age == 2 * 86400
    assert "no unit" in only(tmp_path, full_config() + "sanctions: {max_age: 60}\n",
                             "sanctions.max_age").message
