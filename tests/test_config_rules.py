"""Presets produce the DESIGN.md table's values; overrides under `rules` apply on top."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_config_fixtures import full_config, problems_of, write

from auditor.config import load_config, load_rules, resolve_rules
from auditor.errors import ConfigError
from auditor.settings import Threshold

D = Decimal
ASSETS = {"ETH", "USDC"}


def test_jp_fsa_preset_values():
    r = resolve_rules({"preset": "jp-fsa"}, ASSETS)
    assert r.scope_classes == frozenset({"crypto"})
    assert r.hot_ratio == Threshold(warning=D("0.04"), critical=D("0.05"))
    assert r.guarantee_coverage.threshold == Threshold(critical=D(1))
    assert r.reserve_coverage.threshold == Threshold(critical=D(1))
    assert r.reserve_coverage.tolerance == 0
    assert r.commingling == Threshold(warning=D("0.005"))
    assert r.asset_hot_ratio is None and r.hot_floor is None
    assert r.cold_outflow and r.config_changed


def test_default_preset_is_jp_fsa():
    assert resolve_rules(None, ASSETS).preset == "jp-fsa"


def test_hk_sfc_preset_values():
    r = resolve_rules({"preset": "hk-sfc"}, ASSETS)
    assert r.scope_classes is None
    assert r.hot_ratio == Threshold(critical=D("0.02"))
    assert r.reserve_coverage is not None and r.commingling == Threshold(warning=D("0.005"))
    assert r.guarantee_coverage is None and r.asset_hot_ratio is None


def test_bahrain_cbb_preset_values():
    r = resolve_rules({"preset": "bahrain-cbb"}, ASSETS)
    assert r.hot_ratio is None and r.commingling is None and r.guarantee_coverage is None
    assert r.asset_hot_ratio.for_asset("ETH") == Threshold(critical=D("0.1"))
    assert r.reserve_coverage is not None


def test_nydfs_preset_values():
    r = resolve_rules({"preset": "nydfs"}, ASSETS)
    assert r.hot_ratio is None and r.asset_hot_ratio is None and r.guarantee_coverage is None
    assert r.reserve_coverage is not None and r.commingling == Threshold(warning=D("0.005"))


def test_none_preset_has_no_ratio_or_coverage_rule_but_keeps_the_others():
    r = resolve_rules({"preset": "none"}, ASSETS, poll_every=30)
    assert (r.hot_ratio, r.asset_hot_ratio, r.guarantee_coverage, r.reserve_coverage,
            r.commingling) == (None,) * 5
    assert [(w.window, w.drop, w.severity) for w in r.hot_drain.windows] == [
        (600, D("0.2"), "critical"), (7200, D("0.3"), "critical"), (86400, D("0.5"), "warning")]
    assert r.hot_drain.min_value == D(1000000)
    assert r.stale_data.max_age == 90  # 3 × poll_every
    assert r.cold_outflow and r.config_changed


def test_override_merges_onto_the_preset_level_by_level():
    r = resolve_rules({"preset": "jp-fsa", "hot_ratio": {"critical": "6%"}}, ASSETS)
    assert r.hot_ratio == Threshold(warning=D("0.04"), critical=D("0.06"))


def test_rule_can_be_turned_off_or_on():
    assert resolve_rules({"hot_ratio": False}, ASSETS).hot_ratio is None
    assert resolve_rules({"hot_ratio": None}, ASSETS).hot_ratio is None
    r = resolve_rules({"preset": "none", "hot_ratio": {"critical": "0.05"}}, ASSETS)
    assert r.hot_ratio == Threshold(critical=D("0.05"))


def test_asset_hot_ratio_per_asset_overrides_inherit_the_default():
    r = resolve_rules({"asset_hot_ratio": {"warning": "8%", "critical": "10%",
                                           "assets": {"USDC": {"critical": "20%"}}}}, ASSETS)
    assert r.asset_hot_ratio.for_asset("ETH") == Threshold(D("0.08"), D("0.1"))
    assert r.asset_hot_ratio.for_asset("USDC") == Threshold(D("0.08"), D("0.2"))


def test_coverage_commingling_floor_drain_and_stale_overrides():
    r = resolve_rules({
        "reserve_coverage": {"critical": "100%", "tolerance": "0.01%"},
        "guarantee_coverage": {"warning": "110%", "critical": "100%"},
        "commingling": {"warning": "1%", "critical": "5%"},
        "hot_floor": {"assets": {"ETH": "5"}, "severity": "critical"},
        "hot_drain": {"min_value": "500", "windows": [{"window": "5m", "drop": "10%"}]},
        "stale_data": {"max_age": "10m"},
    }, ASSETS)
    assert r.reserve_coverage.tolerance == D("0.0001")
    assert r.guarantee_coverage.threshold == Threshold(D("1.1"), D(1))
    assert r.commingling == Threshold(D("0.01"), D("0.05"))
    assert r.hot_floor.assets == {"ETH": D(5)} and r.hot_floor.severity == "critical"
    assert r.hot_drain.min_value == D(500)
    assert [(w.window, w.drop, w.severity) for w in r.hot_drain.windows] == [
        (300, D("0.1"), "critical")]
    assert r.stale_data.max_age == 600


@pytest.mark.parametrize("raw,path,fragment", [
    ({"hot_ratio": {"warning": "6%", "critical": "5%"}}, "rules.hot_ratio.warning",
     "above the critical"),
    ({"reserve_coverage": {"warning": "90%", "critical": "100%"}},
     "rules.reserve_coverage.warning", "below the critical"),
    ({"hot_ratio": {"critical": "5"}}, "rules.hot_ratio.critical", "more than 100%"),
    ({"preset": "jp_fsa"}, "rules.preset", "did you mean `jp-fsa`?"),
    ({"hot_floor": {"assets": {"DOGE": "1"}}}, "rules.hot_floor.assets.DOGE", "unknown asset"),
    ({"hot_floor": {"assets": {"ETH": "1"}, "severity": "info"}}, "rules.hot_floor.severity",
     "warning | critical"),
    ({"hot_drain": False}, "rules.hot_drain", "cannot be turned off"),
    ({"cold_outflow": False}, "rules.cold_outflow", "always on"),
    ({"safe_changed": {}}, "rules.safe_changed", "always on"),
    ({"unmatched_outflow": False}, "rules.unmatched_outflow", "always on"),
    ({"sanctioned_counterparty": False}, "rules.sanctioned_counterparty", "always on"),
    ({"unknown_destination": {"assets": {"DOGE": "1"}}}, "rules.unknown_destination.assets.DOGE",
     "unknown asset"),
    ({"unknown_destination": {"assets": ["ETH"]}}, "rules.unknown_destination.assets",
     "expected a mapping"),
    ({"unknown_destination": {"severity": "page"}}, "rules.unknown_destination.severity",
     "warning | critical"),
    ({"large_outflow": {}}, "rules.large_outflow", "`max_single` is required"),
    ({"large_outflow": {"max_single": 1.5}}, "rules.large_outflow.max_single", "in quotes"),
    ({"large_outflow": {"max_single": "-1"}}, "rules.large_outflow.max_single", "0 or more"),
    ({"large_outflow": {"max_single": "1", "limit": "2"}}, "rules.large_outflow.limit",
     "unknown key"),
    ({"stale_data": {"max_age": "0x"}}, "rules.stale_data.max_age", "3x"),
])
def test_rule_problems(raw, path, fragment):
    with pytest.raises(ConfigError) as e:
        resolve_rules(raw, ASSETS)
    assert any(p.path == path and fragment in p.message for p in e.value.problems), \
        e.value.problems


def test_all_rule_problems_are_reported_together():
    with pytest.raises(ConfigError) as e:
        resolve_rules({"hot_ratio": {"critical": "5"}, "commingling": {"warning": "x"},
                       "large_outflow": {}}, ASSETS)
    assert len(e.value.problems) == 3


def test_rules_in_the_config_file_have_lines(tmp_path):
    cfg = full_config().replace("  preset: jp-fsa\n",
                                "  preset: jp-fsa\n  hot_ratio: {warning: \"6%\", critical: \"5%\"}\n")
    (p,) = problems_of(write(tmp_path, cfg), "rules.hot_ratio.warning")
    assert p.line == cfg.splitlines().index('  hot_ratio: {warning: "6%", critical: "5%"}') + 1


def test_stale_data_multiple_uses_the_configured_poll_interval(tmp_path):
    cfg = full_config().replace("poll_every: 60s", "poll_every: 2m")
    s = load_config(write(tmp_path, cfg), env={"SOC_SECRET": "x"})
    assert s.rules.stale_data.max_age == 360


def test_rules_file_for_backtest_accepts_both_shapes(tmp_path):
    (tmp_path / "a.yaml").write_text("rules:\n  preset: hk-sfc\n")
    (tmp_path / "b.yaml").write_text("preset: nydfs\nhot_ratio: {critical: \"3%\"}\n")
    assert load_rules(tmp_path / "a.yaml", ASSETS).preset == "hk-sfc"
    assert load_rules(tmp_path / "b.yaml", ASSETS).hot_ratio == Threshold(critical=D("0.03"))
    (tmp_path / "c.yaml").write_text("preset: nydfs\nhot_ratio: {critical: 3}\n")
    with pytest.raises(ConfigError) as e:
        load_rules(tmp_path / "c.yaml", ASSETS)
    assert e.value.problems[0].line == 2
