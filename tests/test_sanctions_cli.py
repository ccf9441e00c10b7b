"""`auditor sanctions update` and `auditor sanctions check` through the real CLI.

The config file is the shared full config; its `sanctions` settings are put in
place after loading (the section's reader is tested in test_config_sanctions).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner, Result
from test_config_fixtures import full_config, write
from test_sanctions_update import ListServer

import auditor.config
from auditor.cli import cli
from auditor.settings import SanctionsList, SanctionsSettings, Secret

ETH_LISTED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"
BTC_LISTED = "bc1q05aktddf9ce4p7hh3stgsf253m4vweu7nkhtmw"
BUILTIN = SanctionsList(source="builtin", label="builtin")


@pytest.fixture
def run(tmp_path, monkeypatch):
    cfg = write(tmp_path, full_config())

    def invoke(*argv: str, sanctions: SanctionsSettings | None = None) -> Result:
        if sanctions is not None:
            real = auditor.config.load_config

            def load(path, env=None):
                return dataclasses.replace(real(path, env), sanctions=sanctions)

            monkeypatch.setattr(auditor.config, "load_config", load)
        return CliRunner(env={"SOC_SECRET": "x"}).invoke(cli, ["-c", str(cfg), *argv])

    return invoke


def url_list(url: str) -> SanctionsList:
    return SanctionsList(source="http://127.0.0.1/list.txt", label="remote", url=Secret(url))


def test_update_fetches_url_lists_and_checks_the_others(run, tmp_path):
    server = ListServer()
    try:
        server.routes["/list.txt"] = (200, f"{ETH_LISTED}\n".encode(), 0.0)
        s = SanctionsSettings(lists=(BUILTIN, url_list(server.url("/list.txt"))))
        r = run("sanctions", "update", sanctions=s)
    finally:
        server.close()
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("builtin: the shipped snapshot, nothing to fetch: 156 Ethereum")
    assert lines[1].startswith("remote: fetched 43 bytes: 1 Ethereum and 0 Bitcoin addresses")
    assert "SECRET" not in r.output
    # the default cache is next to the store (store.path: var/auditor.db)
    assert len(list((tmp_path / "var" / "sanctions").glob("list-*.json"))) == 1


def test_update_exits_1_when_a_list_fails(run):
    server = ListServer()
    try:
        server.routes["/list.txt"] = (503, b"down", 0.0)
        s = SanctionsSettings(lists=(BUILTIN, url_list(server.url("/list.txt"))))
        r = run("sanctions", "update", "--timeout", "5", sanctions=s)
    finally:
        server.close()
    assert r.exit_code == 1
    assert "remote: failed: HTTP 503; no earlier copy" in r.stderr
    assert "builtin:" in r.stdout


def test_update_without_lists_says_so(run):
    r = run("sanctions", "update", sanctions=SanctionsSettings())
    assert r.exit_code == 0 and "no sanctions lists configured" in r.stdout


def test_update_with_a_broken_config_exits_2(tmp_path):
    cfg = write(tmp_path, full_config().replace("fiat: JPY", "fiat: yen"))
    r = CliRunner(env={"SOC_SECRET": "x"}).invoke(cli, ["-c", str(cfg), "sanctions", "update"])
    assert r.exit_code == 2 and "exchange.fiat" in r.stderr


def test_check_names_the_lists_holding_an_address(run, tmp_path):
    ours = tmp_path / "ours.txt"
    ours.write_text(f"{ETH_LISTED.lower()}\n")
    s = SanctionsSettings(lists=(BUILTIN, SanctionsList(source=str(ours), label="ours", path=ours)))
    r = run("sanctions", "check", ETH_LISTED.upper().replace("0X", "0x"), sanctions=s)
    assert r.exit_code == 1
    assert "(ethereum): LISTED in builtin, ours" in r.stdout


def test_check_of_an_unlisted_address_exits_0(run):
    r = run("sanctions", "check", "0x" + "12" * 20, sanctions=SanctionsSettings(lists=(BUILTIN,)))
    assert r.exit_code == 0 and "not listed (1 list(s) checked)" in r.stdout


def test_check_takes_the_chain_type_from_a_configured_chain_name(run):
    s = SanctionsSettings(lists=(BUILTIN,))
    assert run("sanctions", "check", BTC_LISTED, sanctions=s).exit_code == 1  # by format
    assert run("sanctions", "check", BTC_LISTED, "--chain", "ethereum", sanctions=s).exit_code == 0
    r = run("sanctions", "check", BTC_LISTED, "--chain", "litecoin", sanctions=s)
    assert r.exit_code == 2 and "unknown chain `litecoin`" in r.output


def test_check_json_and_an_unreadable_list_exit_3(run, tmp_path):
    gone = tmp_path / "gone.txt"
    s = SanctionsSettings(lists=(BUILTIN, SanctionsList(source=str(gone), label="gone", path=gone)))
    r = run("sanctions", "check", "0x" + "12" * 20, "--json", sanctions=s)
    assert r.exit_code == 3
    doc = json.loads(r.stdout)
    assert doc["lists"] == [] and doc["chain_type"] == "ethereum" and doc["oracle"] is None
    assert [p["list"] for p in doc["problems"]] == ["gone"]


@pytest.mark.integration
def test_check_asks_the_oracle_when_configured(run, anvil, contracts, monkeypatch):
    from conftest import endpoint, new_address
    from eth_abi import encode
    from eth_utils import keccak

    from auditor.devchain import DEV_ACCOUNTS

    oracle = anvil.deploy(contracts["TestSanctionsOracle"]["bytecode"])
    listed = new_address()
    anvil.send_tx(DEV_ACCOUNTS[0], oracle, data="0x" + (
        keccak(text="addToSanctionsList(address[])")[:4] + encode(["address[]"], [[listed]])).hex())
    real = auditor.config.load_config

    def load(path, env=None):
        s = real(path, env)
        chains = dict(s.chains)
        chains["ethereum"] = dataclasses.replace(chains["ethereum"], rpc=(endpoint(anvil.url),))
        return dataclasses.replace(s, chains=chains, sanctions=SanctionsSettings(
            lists=(BUILTIN,), oracle=oracle, oracle_chain="ethereum"))

    monkeypatch.setattr(auditor.config, "load_config", load)
    r = run("sanctions", "check", listed)
    assert r.exit_code == 1 and "LISTED in oracle" in r.stdout
    r = run("sanctions", "check", new_address())
    assert r.exit_code == 0, r.output


def test_the_sanctions_section_of_the_config_file_is_what_the_commands_use(tmp_path):
    (tmp_path / "ours.txt").write_text(f"{BTC_LISTED.upper()}\n")
    cfg = write(tmp_path, full_config() + "sanctions:\n  lists: [builtin, {source: ours.txt, label: ours}]\n"
                "  cache_dir: cache\n")
    runner = CliRunner(env={"SOC_SECRET": "x"})
    r = runner.invoke(cli, ["-c", str(cfg), "sanctions", "check", BTC_LISTED])
    assert r.exit_code == 1 and "(bitcoin): LISTED in builtin, ours" in r.stdout
    r = runner.invoke(cli, ["-c", str(cfg), "sanctions", "update"])
    assert r.exit_code == 0 and [line.split(":")[0] for line in r.stdout.splitlines()] == ["builtin", "ours"]


def test_without_a_sanctions_section_the_builtin_list_is_used(run):
    r = run("sanctions", "update")
    assert r.exit_code == 0 and r.stdout.startswith("builtin: the shipped snapshot")
