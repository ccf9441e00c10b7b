"""Config loading: a valid config, the starter and example configs, and the core sections."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from test_config_fixtures import COLD, GUARANTEE, HOT, USDC, full_config, problems_of, write

from auditor.config import check_config, load_config, write_starter
from auditor.errors import AuditorError, ConfigError
from auditor.settings import Secret

REPO = Path(__file__).resolve().parent.parent


def test_full_config_loads_every_section(tmp_path):
    s = load_config(write(tmp_path, full_config()), env={"SOC_SECRET": "s3cr3t-value"})
    assert s.exchange.id == "example-ex" and s.exchange.fiat == "JPY"
    assert s.store.path == (tmp_path / "var" / "auditor.db").resolve()
    assert (s.daemon.listen_host, s.daemon.listen_port) == ("127.0.0.1", 9464)
    assert s.schedule.poll_every == 60 and s.schedule.timezone == "Asia/Tokyo"
    eth = s.chains["ethereum"]
    assert eth.native_asset == "ETH" and eth.confirmations == 12 and eth.max_head_age == 120
    assert [r.label for r in eth.rpc] == ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
    assert eth.multicall3 == "0xcA11bde05977b3631167028862bE2a173976CA11"
    assert s.assets["USDC"].decimals == 6 and s.assets["USDC"].deployments[0].token == USDC
    assert s.wallet("eth-hot-1").addresses == (HOT,)
    assert s.wallet("eth-hot-1").assets == ("ETH", "USDC")  # default: every asset of the chain
    assert s.wallet("eth-guarantee").role == "guarantee"
    assert s.prices.static == {"ETH": Decimal("450000.5"), "USDC": Decimal(150)}
    assert s.liabilities is not None and s.liabilities.path == tmp_path / "liabilities.csv"
    assert s.approvals.quorum == 1 and s.approvals.items[0].to == "eth-hot-1"
    assert s.approvals.items[0].amount == Decimal(50)
    soc = s.alerts.channels[1]
    assert soc.type == "webhook" and soc.secret == Secret("s3cr3t-value")
    assert s.alerts.routes[0].channels == ("soc",)
    assert s.warnings == ()


def test_lowercase_address_is_accepted_and_checksummed(tmp_path):
    cfg = full_config().replace(HOT, HOT.lower())
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.wallet("eth-hot-1").addresses == (HOT,)


def test_starter_written_by_init_validates(tmp_path):
    written = write_starter(tmp_path / "new")
    assert [p.name for p in written] == ["auditor.yaml", "liabilities.csv"]
    s = load_config(tmp_path / "new" / "auditor.yaml", env={})
    assert s.chains["ethereum"].rpc[0].label == "http://127.0.0.1:8545"
    assert s.liabilities is not None and s.liabilities.path.exists()
    assert any("single provider" in w for w in s.warnings)


def test_init_refuses_to_overwrite_existing_files(tmp_path):
    (tmp_path / "auditor.yaml").write_text("mine\n")
    with pytest.raises(AuditorError, match="refusing to overwrite"):
        write_starter(tmp_path)
    assert (tmp_path / "auditor.yaml").read_text() == "mine\n"
    assert not (tmp_path / "liabilities.csv").exists()


def test_example_config_validates():
    env = {"SOC_WEBHOOK_SECRET": "x", "SOC_WEBHOOK_URL": "https://soc.example/hook",
           "SECOND_RPC_URL": "https://rpc.example/v3/abc"}
    s = load_config(REPO / "config" / "auditor.example.yaml", env=env)
    assert s.exchange.id


def test_missing_file_is_a_problem_not_a_crash(tmp_path):
    settings, problems = check_config(tmp_path / "nope.yaml")
    assert settings is None and "cannot read the config file" in problems[0].message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "exchange:\n  id: x\n  name: [unclosed\nchains: {}\n")
    _, problems = check_config(path)
    assert problems[0].line is not None and "not valid YAML" in problems[0].message


def test_every_problem_in_a_file_is_reported_in_one_pass(tmp_path):
    cfg = (full_config()
           .replace("poll_every: 60s", "poll_every: 60")
           .replace("tier: hot\n", "tier: scorching\n")
           .replace("confirmations: 12", "confirmations: 0")
           .replace("foo_unused: 1", "")
           + "sanctions: {lists: [builtin], max_age: 60}\n")
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    paths = {p.path for p in e.value.problems}
    assert {"schedule.poll_every", "wallets[0].tier", "chains.ethereum.confirmations",
            "sanctions.max_age"} <= paths
    assert all(p.line for p in e.value.problems)


def test_problem_carries_file_key_path_and_line(tmp_path):
    cfg = full_config().replace("tier: hot\n", "tier: scorching\n")
    path = write(tmp_path, cfg)
    (p,) = problems_of(path, "wallets[0].tier")
    assert p.file == str(path)
    assert p.line == cfg.splitlines().index("    tier: scorching") + 1
    assert "hot | warm | deposit | cold" in p.message and 'wallet "eth-hot-1"' in p.message


def test_duplicate_key_is_an_error(tmp_path):
    cfg = full_config().replace("  name: Example Exchange\n",
                                "  name: Example Exchange\n  name: Again\n")
    (p,) = problems_of(write(tmp_path, cfg), "exchange.name")
    assert "duplicate key" in p.message


def test_unquoted_hex_address_is_read_as_text_not_a_number(tmp_path):
    cfg = full_config().replace(f'addresses: ["{COLD}"]', f"addresses: [{COLD}]")
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.wallet("eth-cold-1").addresses == (COLD,)


def test_guarantee_address_constant_is_used(tmp_path):
    s = load_config(write(tmp_path, full_config()), env={"SOC_SECRET": "x"})
    assert s.wallet("eth-guarantee").addresses == (GUARANTEE,)
