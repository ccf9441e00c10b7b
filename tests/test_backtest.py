"""Backtest: stored exposures rebuilt exactly, a few hundred stored cycles replayed
with stricter and looser thresholds, the store's own rules reproducing what fired, and
nothing written to the store. Also `auditor records --json`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.backtest import BACKTEST_RULES, replay, warmup
from auditor.cli import cli
from auditor.cli_records import BACKTEST_COLUMNS, RECORD_COLUMNS
from auditor.config import load_config, load_rules
from auditor.exposure import compute_exposure, exposure_json
from auditor.exposure_replay import exposure_from_json
from auditor.model import BlockRef, ChainReading, ChainView, Liabilities, Price
from auditor.service import run_cycle
from auditor.settings import AssetSettings, Settings, WalletSettings
from auditor.store import Store
from auditor.store_codec import format_time

ETH = 10**18
HOT, COLD = "0x" + "11" * 20, "0x" + "22" * 20
USDC_HOT = "0x" + "33" * 20
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 09:00 JST on 2026-11-02
CYCLES = 300


class Wave:
    """Hot ETH (whole units) per cycle: 10 cycles at 20, 10 at a peak of 35, 45 or 55
    (3.5 %, 4.5 %, 5.5 % of 1000 owed), the rest swept to cold; a theft of 18 in the last
    10 cycles (instead of the 15th peak)."""

    def __init__(self) -> None:
        self.now, self.hot, self.cold, self.block = START, 20, 980, 1000

    def set_cycle(self, i: int) -> None:
        peak = (35, 45, 55)[(i // 20) % 3]
        self.hot = peak if i % 20 >= 10 else 20
        self.cold = 1000 - self.hot
        if i >= CYCLES - 10:
            self.hot, self.cold = 2, 980  # 18 ETH leave for good

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        self.block += 1
        bal = {(HOT.lower(), "ETH"): self.hot * ETH, (COLD.lower(), "ETH"): self.cold * ETH,
               (HOT.lower(), "USDC"): 10**12, (COLD.lower(), "USDC"): 0}
        nonces = {HOT.lower(): 0, COLD.lower(): 0}
        ts = int(self.now.timestamp())
        view = ChainView(BlockRef(self.block, f"0x{self.block:064x}", ts), bal, nonces)
        return ChainReading("ethereum", True, view, view, head_timestamp=ts)

    def close(self) -> None:
        pass


def _settings(tmp: Path) -> Settings:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,1000\nUSDC,1000000\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: bt-ex}}
store: {{path: var/a.db}}
schedule: {{poll_every: 60s, timezone: Asia/Tokyo, records_cutoff: "00:00"}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 1}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
  USDC: {{class: stablecoin, deployments: [{{chain: ethereum, token: "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", decimals: 6}}]}}
wallets:
  - {{name: hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {{source: static, static: {{ETH: "450000", USDC: "150"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, guarantee_coverage: off}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{severity: [warning, critical], channels: [console]}}]}}
""")
    return load_config(cfg, env={})


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    tmp = tmp_path_factory.mktemp("bt")
    settings = _settings(tmp)
    chain = Wave()
    with Store.open(settings.store.path) as store:
        for i in range(CYCLES):
            chain.set_cycle(i)
            chain.now = START + timedelta(minutes=i)
            run_cycle(settings, store, now=chain.now, clients={"ethereum": chain})
    return settings, tmp


def _rules(tmp: Path, name: str, body: str) -> Path:
    p = tmp / name
    p.write_text(body)
    return p


def _replay(settings: Settings, rules_path: Path) -> list[tuple[str, str, str, str]]:
    trial = load_rules(rules_path, settings.assets, poll_every=60)
    end = START + timedelta(days=1)
    with Store.open_read_only(settings.store.path) as store:
        res = replay(settings, trial, store.backtest_cycles(START - timedelta(
            seconds=warmup(trial)), end), START, end)
    assert res.cycles == CYCLES
    return [(t.kind, t.rule, t.subject, t.severity) for t in res.transitions]


def _snapshot(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        head = c.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
    return {"counts": counts, "head": head}


def test_a_stored_exposure_rebuilds_to_the_same_figures() -> None:
    settings = _settings(Path(__import__("tempfile").mkdtemp()))
    now = START
    settled = {("hot", "ETH"): 12 * ETH + 1, ("cold", "ETH"): 987 * ETH,
               ("hot", "USDC"): 123_456_789, ("cold", "USDC"): 0}
    prices = {"ETH": Price("ETH", __import__("decimal").Decimal("450000.123456789"), "static", now),
              "USDC": Price("USDC", __import__("decimal").Decimal("150"), "static", now)}
    liab = Liabilities({"ETH": 1000 * ETH, "USDC": 1_000_000 * 10**6}, now, "csv")
    e = compute_exposure(settings.wallets, settings.assets, settled, prices, liab,
                         settings.rules.scope_classes, now, 600, "JPY")
    stored = json.loads(json.dumps(exposure_json(e)))
    back = exposure_from_json(stored, settings.assets, settings.rules.scope_classes, now, 600)
    assert exposure_json(back) == stored
    assert back.assets["ETH"].hot == 12 * ETH + 1 and back.hot_ratio == e.hot_ratio
    # another scope recomputes the combined ratio (USDC counted too)
    wider = exposure_from_json(stored, settings.assets, None, now, 600)
    assert wider.hot_ratio != e.hot_ratio and wider.customer_value > e.customer_value


def test_the_stores_own_rules_replay_to_exactly_what_fired(stored, tmp_path: Path) -> None:
    settings, tmp = stored
    same = _rules(tmp_path, "same.yaml", "rules: {preset: jp-fsa, guarantee_coverage: off}\n")
    replayed = _replay(settings, same)
    with Store.open_read_only(settings.store.path) as store:
        did = store.period_transitions(START, START + timedelta(days=1), BACKTEST_RULES)
    assert replayed == [(t["kind"], t["rule"], t["subject"], t["severity"]) for t in did]
    assert ("firing", "hot_drain", "hot/ETH", "critical") in replayed
    assert ("firing", "reserve_coverage", "ETH", "critical") in replayed


def test_a_stricter_hot_ratio_fires_more_and_a_looser_one_less(stored, tmp_path: Path) -> None:
    settings, _ = stored

    def hot_ratio_firings(body: str) -> int:
        got = _replay(settings, _rules(tmp_path, "r.yaml", body))
        return sum(1 for k, r, *_ in got if k == "firing" and r == "hot_ratio")

    base = hot_ratio_firings("rules: {preset: jp-fsa, guarantee_coverage: off}\n")
    strict = hot_ratio_firings("rules: {preset: jp-fsa, guarantee_coverage: off, "
                               "hot_ratio: {warning: '3%', critical: '4%'}}\n")
    loose = hot_ratio_firings("preset: jp-fsa\nguarantee_coverage: off\n"
                              "hot_ratio: {warning: '6%', critical: '7%'}\n")
    # 14 peaks (the last 5.5 % one is the theft's): none; the 4.5 % and 5.5 % ones; all
    assert (loose, base, strict) == (0, 9, 14)


def test_backtest_cli_lists_both_sides_and_writes_nothing(stored, tmp_path: Path) -> None:
    settings, tmp = stored
    strict = _rules(tmp_path, "strict.yaml", "rules: {preset: jp-fsa, guarantee_coverage: off, "
                                             "hot_ratio: {warning: '3%', critical: '4%'}}\n")
    before = _snapshot(settings.store.path)
    res = CliRunner().invoke(cli, ["backtest", "-c", str(tmp / "auditor.yaml"), "--rules",
                                   str(strict), "--from", "2026-11-02", "--to", "2026-11-02",
                                   "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert all(tuple(r) == BACKTEST_COLUMNS for r in rows)
    firing = [r for r in rows if r["transition"] == "firing" and r["rule"] == "hot_ratio"]
    assert sum(r["source"] == "backtest" for r in firing) == 14
    assert sum(r["source"] == "store" for r in firing) == 9
    assert {r["threshold"] for r in firing if r["source"] == "backtest"} == {"0.03", "0.04"}
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    human = CliRunner().invoke(cli, ["backtest", "-c", str(tmp / "auditor.yaml"), "--rules",
                                     str(strict), "--from", "2026-11-02", "--to", "2026-11-02"])
    assert human.exit_code == 0 and "would have fired: 16 firing" in human.output
    assert "did fire: 11 firing" in human.output  # hot_ratio, reserve_coverage, hot_drain
    assert _snapshot(settings.store.path) == before


def test_backtest_of_a_period_without_cycles_shows_nothing(stored, tmp_path: Path) -> None:
    settings, tmp = stored
    same = _rules(tmp_path, "same.yaml", "rules: {preset: jp-fsa}\n")
    res = CliRunner().invoke(cli, ["backtest", "-c", str(tmp / "auditor.yaml"), "--rules",
                                   str(same), "--from", "2025-01-01", "--to", "2025-01-31",
                                   "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []


def test_records_json_rows_carry_the_table_columns(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    chain = Wave()
    with Store.open(settings.store.path) as store:
        for at in (START + timedelta(hours=14, minutes=59), START + timedelta(hours=15)):
            chain.now = at
            run_cycle(settings, store, now=at, clients={"ethereum": chain})
    res = CliRunner().invoke(cli, ["records", "-c", str(tmp_path / "auditor.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [tuple(r) for r in rows] == [RECORD_COLUMNS] * 2
    eth = next(r for r in rows if r["asset"] == "ETH")
    assert eth | {"price_source": None} == {
        "date": "2026-11-02", "asset": "ETH", "liabilities": "1000", "cold": "980",
        "online_holdings": "20", "online": "20", "guarantee": "0", "price": "450000",
        "price_source": None, "hot_ratio": "0.02", "late": False, "cycle": 2}
    human = CliRunner().invoke(cli, ["records", "-c", str(tmp_path / "auditor.yaml"),
                                     "--from", "2026-11-03"])
    assert human.exit_code == 0 and "none" in human.output
    bad = CliRunner().invoke(cli, ["records", "-c", str(tmp_path / "auditor.yaml"),
                                   "--from", "2026-13-01"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_the_hot_drain_bound_changes_no_transition(stored, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Sensitive windows (sweeps of 25 ETH are 55 % falls, matched by cold's rises): the
    replay that skips hot_drain where its bound says it cannot fire equals the one that
    runs it on every cycle."""
    settings, _ = stored
    touchy = _rules(tmp_path, "touchy.yaml", """rules:
  preset: jp-fsa
  guarantee_coverage: off
  hot_drain:
    min_value: "1"
    windows:
      - {window: 2m, drop: "5%", severity: critical}
      - {window: 30m, drop: "10%", severity: warning}
""")
    bounded = _replay(settings, touchy)
    import auditor.backtest as bt

    monkeypatch.setattr(bt, "_drain_assets", lambda may_fire, open_alerts, ex: {"ETH", "USDC"})
    assert _replay(settings, touchy) == bounded
    assert ("firing", "hot_drain", "hot/ETH", "critical") in bounded


def test_backtest_periods_are_local_days_in_the_schedule_timezone() -> None:
    from auditor.records import period_bounds

    assert period_bounds("2026-11-02", "2026-11-02", "Asia/Tokyo") == (
        datetime(2026, 11, 1, 15, tzinfo=UTC), datetime(2026, 11, 2, 15, tzinfo=UTC))
    start, end = period_bounds("2026-10-25", "2026-10-25", "Europe/London")
    assert end - start == timedelta(hours=25)  # the autumn switch day
    with pytest.raises(ValueError, match="before --from"):
        period_bounds("2026-11-02", "2026-11-01", "UTC")


def _no_gate(self: object, exposures: Sequence[object], times: Sequence[object]) -> list[None]:
    """StateGate.batch that never knows: every exposure rule runs on every cycle."""
    return [None] * len(exposures)


def _full(settings: Settings, rules_path: Path) -> list[tuple[object, ...]]:
    trial = load_rules(rules_path, settings.assets, poll_every=60)
    end = START + timedelta(days=1)
    with Store.open_read_only(settings.store.path) as store:
        res = replay(settings, trial, store.backtest_cycles(START - timedelta(
            seconds=warmup(trial)), end), START, end)
    return [(t.kind, t.rule, t.subject, t.severity, t.at, t.value, t.threshold, t.summary,
             t.details) for t in res.transitions]


@pytest.mark.parametrize("body", [
    "rules: {preset: jp-fsa, guarantee_coverage: off}\n",
    "rules: {preset: jp-fsa, hot_ratio: {warning: '3%', critical: '5%'}, "
    "asset_hot_ratio: {warning: '3.4%', critical: '4.6%'}, commingling: {warning: '0.5%'}, "
    "hot_floor: {assets: {ETH: '30'}}}\n",
])
def test_the_status_gate_changes_no_transition_nor_its_figures(
        stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Exposure rules run only where StateGate sees a status change; running every rule on
    every cycle gives the same transitions, values and summaries (a resolve carries the
    figures of the alert's last cycle, refreshed before the rule runs again)."""
    settings, _ = stored
    path = _rules(tmp_path, "gate.yaml", body)
    gated = _full(settings, path)
    import auditor.backtest_gate as gate

    monkeypatch.setattr(gate.StateGate, "batch", _no_gate)
    assert _full(settings, path) == gated
    kinds = {(k, r) for k, r, *_ in gated}
    assert ("resolved", "hot_ratio") in kinds  # a resolve carries the last cycle's figures


def test_the_status_gate_gives_up_where_a_figure_would_round(stored) -> None:
    from decimal import Decimal

    from auditor.backtest_gate import StateGate

    settings, _ = stored
    gate = StateGate(settings, settings.rules)
    now = START
    fine = {"basis": "liabilities", "assets": {"ETH": {
        "hot": "20", "warm": "0", "deposit": "0", "cold": "980", "online": "20",
        "guarantee": "0", "liabilities": "1000", "price": "450000", "price_as_of": None}}}
    assert gate.statuses(fine, now) is not None
    huge = json.loads(json.dumps(fine))
    huge["assets"]["ETH"]["liabilities"] = "1" + "0" * 130 + ".5"  # beyond 120 digits
    assert gate.statuses(huge, now) is None
    assert Decimal(huge["assets"]["ETH"]["liabilities"]) > 0


def test_a_resolve_after_skipped_cycles_carries_the_last_cycles_figures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hot ETH drifts up while the alerts fire (cycles the gate skips), then falls back:
    the resolves show the figures of the last firing cycle, as when every rule runs."""
    from auditor.store_backtest import StoredCycle

    settings = _settings(tmp_path)
    cycles = []
    for i in range(30):
        now = START + timedelta(minutes=i)
        hot = (60 + i) * ETH if i < 20 else 20 * ETH
        bal = {("hot", "ETH"): hot, ("cold", "ETH"): 1000 * ETH - hot,
               ("hot", "USDC"): 10**12, ("cold", "USDC"): 0}
        prices = {"ETH": Price("ETH", __import__("decimal").Decimal("450000"), "static", now),
                  "USDC": Price("USDC", __import__("decimal").Decimal("150"), "static", now)}
        liab = Liabilities({"ETH": 1000 * ETH, "USDC": 1_000_000 * 10**6}, now, "csv")
        e = compute_exposure(settings.wallets, settings.assets, bal, prices, liab,
                             settings.rules.scope_classes, now, 600, "JPY")
        cycles.append(StoredCycle(i + 1, now, "ok", json.dumps(exposure_json(e)), bal))

    def run() -> list[tuple[object, ...]]:
        res = replay(settings, settings.rules, cycles, START, START + timedelta(hours=1))
        return [(t.kind, t.rule, t.subject, t.at, t.value, t.summary) for t in res.transitions]

    gated = run()
    import auditor.backtest_gate as gate

    monkeypatch.setattr(gate.StateGate, "batch", _no_gate)
    assert run() == gated
    resolved = [t for t in gated if t[0] == "resolved" and t[1] == "hot_ratio"]
    assert resolved and "7.9%" in str(resolved[0][5])  # hot 79 of 1000 at the last cycle


def _payloads(settings: Settings) -> tuple[list[dict[str, object]], list[datetime]]:
    with Store.open_read_only(settings.store.path) as store:
        cycles = list(store.backtest_cycles(START, START + timedelta(days=1)))
    return [json.loads(c.exposure or "null") for c in cycles], [c.taken_at for c in cycles]


def test_the_gate_judges_a_run_of_cycles_by_column_as_it_judges_each_one(
        stored, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.backtest_gate import StateGate

    settings, tmp = stored
    trial = load_rules(_rules(tmp, "cols.yaml", """rules: {preset: jp-fsa,
        hot_ratio: {warning: '3%', critical: '5%'}, asset_hot_ratio: {warning: '3.4%',
        critical: '4.6%'}, commingling: {warning: '0.5%', critical: '2%'},
        guarantee_coverage: {critical: '100%'}, hot_floor: {assets: {ETH: '30'}}}
        """), settings.assets, poll_every=60)
    payloads, times = _payloads(settings)
    each = [StateGate(settings, trial).statuses(p, t) for p, t in zip(payloads, times)]
    assert len({s for s in each}) > 3 and None not in each  # statuses do change
    gate = StateGate(settings, trial)
    with monkeypatch.context() as m:  # the usual run never goes cycle by cycle
        m.setattr(StateGate, "statuses", lambda *a: pytest.fail("not by column"))
        assert gate.batch(payloads, times) == each


@pytest.mark.parametrize("change", ["null figure", "missing figure", "number figure",
                                    "unknown asset", "stale price", "price at max age",
                                    "price a microsecond older", "holdings basis",
                                    "rounding", "no exposure", "other order"])
def test_an_unusual_cycle_in_a_run_is_judged_as_alone(stored, change: str) -> None:
    from auditor.backtest_gate import StateGate

    settings, _ = stored
    payloads, times = _payloads(settings)
    odd = json.loads(json.dumps(payloads[40]))
    eth = odd["assets"]["ETH"]
    if change == "null figure":
        eth["cold"] = None
    elif change == "missing figure":
        del eth["deposit"]
    elif change == "number figure":
        eth["hot"] = 20
    elif change == "unknown asset":
        odd["assets"]["DOGE"] = dict(eth)
    elif change == "stale price":
        eth["price_as_of"] = "2026-01-01T00:00:00Z"
    elif change == "price at max age":  # still fresh (price_is_fresh: age <= max_age)
        eth["price_as_of"] = format_time(times[40] - timedelta(seconds=600))
    elif change == "price a microsecond older":
        eth["price_as_of"] = format_time(times[40] - timedelta(seconds=600, microseconds=1))
    elif change == "holdings basis":
        odd["basis"] = "holdings"
    elif change == "rounding":
        eth["liabilities"] = "1" + "0" * 130 + ".5"
    elif change == "no exposure":
        odd = None
    else:
        odd["assets"] = dict(reversed(list(odd["assets"].items())))
    payloads[40] = odd
    assert settings.prices.max_age == 600
    each = [StateGate(settings, settings.rules).statuses(p, t) for p, t in zip(payloads, times)]
    assert StateGate(settings, settings.rules).batch(payloads, times) == each


def test_watch_totals_read_in_one_row_match_the_stored_rows(tmp_path: Path) -> None:
    """Amounts that repeat keep their ints, keys that change (a wallet unread, a config
    change, a name holding the separators) are read anew: every cycle's watch totals are
    exactly the stored rows."""
    from auditor.store_backtest import period_cycles
    from auditor.store_codec import db_time

    Store.open(tmp_path / "s.db").close()
    layouts = [[("hot", "ETH"), ("hot", "USDC"), ("cold", "ETH")]] * 4 + [
        [("hot", "ETH"), ("cold", "ETH")], [("hot", "ETH"), ("cold", "ETH"), ("new", "ETH")],
        [("a\x1eb", "ETH"), ("cold", "ETH")], [("hot", "ETH"), ("hot", "USDC"), ("cold", "ETH")]]
    amounts = [5, 5, 7, 7, 9, 9, 11, 11]
    with sqlite3.connect(tmp_path / "s.db") as c:
        for i, (keys, base) in enumerate(zip(layouts, amounts), start=1):
            at = db_time(START + timedelta(minutes=i))
            c.execute("INSERT INTO cycles (id, taken_at, started_at, status, chains, poll, "
                      "has_watch, audit_seq) VALUES (?, ?, ?, 'ok', '{}', '{}', 1, ?)",
                      (i, at, at, i))
            c.executemany("INSERT INTO wallet_totals (cycle, view, wallet, asset, amount) "
                          "VALUES (?, 'watch', ?, ?, ?)",
                          [(i, w, a, str(base * 10**20 + n)) for n, (w, a) in enumerate(keys)])
        stored = [{(w, a): int(v) for w, a, v in c.execute(
            "SELECT wallet, asset, amount FROM wallet_totals WHERE cycle = ?", (i,))}
            for i in range(1, len(layouts) + 1)]
    conn = sqlite3.connect(tmp_path / "s.db")
    read = [c.watch for c in period_cycles(conn, START, START + timedelta(hours=1))]
    conn.close()
    assert read == stored and len({len(w or ()) for w in read}) == 2


def test_the_drain_bound_gives_the_same_reading_by_reading_and_in_runs(tmp_path: Path) -> None:
    """Runs of readings with the same keys go key by key; readings with other keys (a
    wallet unread), missing readings, quiet wallets, sweeps and a theft change nothing:
    the windows that may fire are the same as feeding one reading at a time."""
    import random

    from auditor.backtest_drain import DrainBound

    settings = _settings(tmp_path)
    trial = load_rules(_rules(tmp_path, "t.yaml", """rules: {preset: jp-fsa, hot_drain: {
        min_value: "1", windows: [{window: 5m, drop: "3%", severity: warning},
                                  {window: 1h, drop: "20%", severity: critical}]}}
        """), settings.assets, poll_every=60)
    rng = random.Random(3)
    hot, cold, usdc, readings = 1000 * ETH, 9000 * ETH, 10**12, []
    for i in range(600):
        hot -= rng.randrange(0, ETH // 2)  # withdrawals
        if i % 50 == 49:  # a sweep to cold (internal: 3 %)
            hot, cold = hot - 30 * ETH, cold + 30 * ETH
        if i % 100 == 99:  # a top-up from cold
            hot, cold = hot + 60 * ETH, cold - 60 * ETH
        if i == 400:
            hot //= 2  # a theft
        if i == 300:
            usdc = usdc * 6 // 10  # a theft, then a quiet wallet that has fallen
        w = {("hot", "ETH"): hot, ("cold", "ETH"): cold, ("hot", "USDC"): usdc,
             ("cold", "USDC"): 0}
        if i % 97 == 5:
            del w[("cold", "USDC")]
        readings.append((START + timedelta(minutes=i), None if i % 131 == 7 else w))
    one = DrainBound(settings, trial)
    each = [one.update(t, w) if w is not None else {} for t, w in readings]
    runs = DrainBound(settings, trial)
    chunked = [out for i in range(0, len(readings), 32)
               for out in runs.update_all(readings[i:i + 32])]
    assert [sorted((k, sorted(v)) for k, v in o.items()) for o in chunked] == [
        sorted((k, sorted(v)) for k, v in o.items()) for o in each]
    fired = [k for o in each for k in o]
    assert ("hot", "USDC") in fired and fired.count(("hot", "ETH")) > 10
