"""Daily records: business dates and cut-offs (Asia/Tokyo, a DST zone), the record
written from the first ok cycle after a cut-off on a simulated clock, the
`daily_record` rule (late, missing, never back-filled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from auditor.config import load_config
from auditor.model import BlockRef, ChainReading, ChainView
from auditor.records import business_date, cutoff_on, cutoffs_between, due_record, latest_cutoff
from auditor.service import run_cycle
from auditor.settings import AssetSettings, ScheduleSettings, Settings, WalletSettings
from auditor.store import Store

ETH = 10**18
HOT, COLD = "0x" + "11" * 20, "0x" + "22" * 20
JST = "Asia/Tokyo"
# 00:00 JST on 2026-11-25 is 15:00 UTC on 2026-11-24
CUTOFF = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


# --- pure: dates and cut-offs ---------------------------------------------------------


def test_a_midnight_cutoff_in_tokyo_closes_the_previous_local_day() -> None:
    assert cutoff_on(date(2026, 11, 25), JST, "00:00") == CUTOFF
    assert business_date(CUTOFF, JST) == "2026-11-24"
    assert latest_cutoff(CUTOFF, JST, "00:00") == CUTOFF  # at the cut-off itself
    assert latest_cutoff(CUTOFF - timedelta(seconds=1), JST, "00:00") == CUTOFF - timedelta(days=1)
    assert business_date(CUTOFF - timedelta(days=1), JST) == "2026-11-23"


def test_a_cutoff_later_in_the_day_closes_that_same_day() -> None:
    c = latest_cutoff(datetime(2026, 11, 25, 0, 30, tzinfo=UTC), JST, "09:00")
    assert c == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 09:00 JST
    assert business_date(c, JST) == "2026-11-25"


def test_cutoffs_follow_the_local_clock_across_a_dst_switch_in_london() -> None:
    # BST starts 2026-03-29 01:00 UTC; midnight is 00:00 UTC before, 23:00 UTC after
    cs = list(cutoffs_between(datetime(2026, 3, 27, 12, tzinfo=UTC),
                              datetime(2026, 3, 31, 12, tzinfo=UTC), "Europe/London", "00:00"))
    assert cs == [datetime(2026, 3, 28, 0, tzinfo=UTC), datetime(2026, 3, 29, 0, tzinfo=UTC),
                  datetime(2026, 3, 29, 23, tzinfo=UTC), datetime(2026, 3, 30, 23, tzinfo=UTC)]
    assert [business_date(c, "Europe/London") for c in cs] == [
        "2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
    # the 23-hour day 2026-03-29 still gets exactly one cut-off
    assert latest_cutoff(datetime(2026, 3, 29, 22, 59, tzinfo=UTC), "Europe/London",
                         "00:00") == datetime(2026, 3, 29, 0, tzinfo=UTC)


def test_a_cutoff_in_the_skipped_or_repeated_hour_is_taken_once() -> None:
    # 01:30 does not exist on 2026-03-29 in London (→ 02:30 BST) and exists twice on 2026-10-25
    assert cutoff_on(date(2026, 3, 29), "Europe/London", "01:30") == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)
    assert cutoff_on(date(2026, 10, 25), "Europe/London", "01:30") == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 01:30 (BST)
    cs = list(cutoffs_between(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC),
                              "Europe/London", "01:30"))
    assert len(cs) == 3 and len({business_date(c, "Europe/London") for c in cs}) == 3


def test_only_the_latest_cutoff_is_ever_due() -> None:
    s = ScheduleSettings(poll_every=60, timezone=JST, records_cutoff="00:00")
    now = CUTOFF + timedelta(days=2, hours=3)  # two cut-offs missed
    assert due_record(now, s, "2026-11-23") == ("2026-11-26", CUTOFF + timedelta(days=2))
    assert due_record(now, s, "2026-11-26") is None


# --- the service on a simulated clock ------------------------------------------------


class Clocked:
    """A chain client whose blocks are stamped with the simulated clock."""

    def __init__(self) -> None:
        self.now, self.ok, self.block = CUTOFF, True, 1000

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        if not self.ok:
            return ChainReading("ethereum", False, None, None, error="connection refused")
        self.block += 1
        bal = {(HOT.lower(), "ETH"): 3 * ETH, (COLD.lower(), "ETH"): 97 * ETH}
        nonces = {HOT.lower(): 0, COLD.lower(): 0}
        ts = int(self.now.timestamp())
        settled = ChainView(BlockRef(self.block - 1, f"0x{self.block - 1:064x}", ts - 12), bal, nonces)
        watch = ChainView(BlockRef(self.block, f"0x{self.block:064x}", ts), bal, nonces)
        return ChainReading("ethereum", True, settled, watch, head_timestamp=ts)

    def close(self) -> None:
        pass


def _settings(tmp: Path, tz: str = JST) -> Settings:
    (tmp / "liabilities.csv").write_text("asset,amount\nETH,100\n")
    cfg = tmp / "auditor.yaml"
    cfg.write_text(f"""
exchange: {{id: rec-ex}}
store: {{path: var/a.db}}
schedule: {{poll_every: 60s, timezone: {tz}, records_cutoff: "00:00"}}
chains:
  ethereum: {{type: ethereum, rpc: [{{url: "http://127.0.0.1:1"}}], confirmations: 2}}
assets:
  ETH: {{class: crypto, chain: ethereum, decimals: 18}}
wallets:
  - {{name: hot, chain: ethereum, tier: hot, role: customer, addresses: ["{HOT}"]}}
  - {{name: cold, chain: ethereum, tier: cold, role: customer, addresses: ["{COLD}"]}}
prices: {{source: static, static: {{ETH: "450000.5"}}}}
liabilities: {{source: csv, path: liabilities.csv, max_age: 100000d}}
rules: {{preset: jp-fsa, guarantee_coverage: off}}
alerts: {{channels: [{{name: console, type: log}}], routes: [{{severity: [warning, critical], channels: [console]}}]}}
""")
    return load_config(cfg, env={})


class World:
    def __init__(self, tmp: Path, tz: str = JST):
        self.settings = _settings(tmp, tz)
        self.store = Store.open(self.settings.store.path)
        self.chain = Clocked()

    def cycle(self, at: datetime) -> dict:
        self.chain.now = at
        return run_cycle(self.settings, self.store, now=at, clients={"ethereum": self.chain}).poll

    def alert(self, day: str) -> str | None:
        for a in self.store.list_alerts(include_resolved=True):
            if a.rule == "daily_record" and a.subject == day:
                return a.state
        return None


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path)
    yield w
    w.store.close()


def test_the_first_ok_cycle_at_or_after_midnight_jst_writes_the_record_of_the_day_before(world) -> None:
    for minute in (-2, -1):
        world.cycle(CUTOFF + timedelta(minutes=minute))
    assert world.store.daily_records() == []
    head_before = world.store.head()
    poll = world.cycle(CUTOFF + timedelta(seconds=20))
    rec = world.store.daily_record("2026-11-24")
    assert rec is not None and rec["cycle"] == poll["cycle"]
    assert rec["head"] != head_before  # the head after this cycle's own records, before the record
    assert rec["cutoff"] == "2026-11-24T15:00:00Z" and rec["taken_at"] == "2026-11-24T15:00:20Z"
    assert rec["late"] is False and rec["basis"] == "liabilities" and rec["hot_ratio"] == "0.03"
    eth = rec["assets"]["ETH"]
    assert {k: v for k, v in eth.items() if not k.startswith("price_")} == {
        "class": "crypto", "liabilities": "100", "cold": "97", "online_holdings": "3",
        "online": "3", "guarantee": "0", "price": "450000.5"}
    exposed = poll["exposure"]["assets"]["ETH"]
    assert (eth["price_source"], eth["price_as_of"]) == (exposed.get("price_source"),
                                                         exposed.get("price_as_of"))
    assert rec["chains"]["ethereum"] == poll["chains"]["ethereum"]["settled"]
    world.cycle(CUTOFF + timedelta(minutes=1, seconds=20))  # the next cycle writes nothing more
    assert len(world.store.daily_records()) == 1
    assert world.store.verify().ok
    assert world.alert("2026-11-24") is None


def test_a_record_written_after_an_unreadable_spell_is_late_and_resolves_the_alert(world) -> None:
    world.cycle(CUTOFF - timedelta(minutes=1))
    world.chain.ok = False
    for minute in range(0, 6):  # chain unreadable over the cut-off for 6 polls
        world.cycle(CUTOFF + timedelta(minutes=minute, seconds=10))
    assert world.alert("2026-11-24") == "firing"  # past 3 × 60 s without a record
    assert world.store.daily_records() == []
    world.chain.ok = True
    world.cycle(CUTOFF + timedelta(minutes=6, seconds=10))
    rec = world.store.daily_record("2026-11-24")
    assert rec is not None and rec["late"] is True
    world.cycle(CUTOFF + timedelta(minutes=7, seconds=10))
    assert world.alert("2026-11-24") == "resolved"


def test_daemon_down_over_a_cutoff_fires_on_restart_and_the_date_is_never_back_filled(world) -> None:
    world.cycle(CUTOFF - timedelta(minutes=1))  # 23:59 JST on 2026-11-24, then down for 2 days
    restart = CUTOFF + timedelta(days=1, hours=2)  # 02:00 JST on 2026-11-26
    world.cycle(restart)
    assert world.alert("2026-11-24") == "firing"  # its cut-off passed and so did the next
    assert world.alert("2026-11-25") == "firing"  # late: written now, resolves next cycle
    assert [r["date"] for r in world.store.daily_records()] == ["2026-11-25"]
    assert world.store.daily_record("2026-11-25")["late"] is True  # type: ignore[index]
    for i in range(1, 4):
        world.cycle(restart + timedelta(minutes=i))
    assert world.alert("2026-11-25") == "resolved"
    assert world.alert("2026-11-24") == "firing"  # until a person acknowledges it
    summary = next(a.summary for a in world.store.list_alerts() if a.subject == "2026-11-24")
    assert "never be written" in summary
    assert world.store.daily_record("2026-11-24") is None  # never back-filled


def test_a_store_started_after_a_cutoff_does_not_alert_for_days_before_it(world) -> None:
    world.cycle(CUTOFF + timedelta(hours=5))
    world.cycle(CUTOFF + timedelta(hours=5, minutes=1))
    assert world.alert("2026-11-24") is None
    assert [a.rule for a in world.store.list_alerts()] == []


def test_records_follow_the_local_midnight_across_the_london_spring_switch(tmp_path: Path) -> None:
    w = World(tmp_path, "Europe/London")
    try:
        start = datetime(2026, 3, 28, 23, 58, tzinfo=UTC)
        for at in [start + timedelta(minutes=m) for m in range(4)] + [
                datetime(2026, 3, 29, 22, 59, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, 30, tzinfo=UTC)]:
            w.cycle(at)
        recs = w.store.daily_records()
        assert [(r["date"], r["cutoff"]) for r in recs] == [
            ("2026-03-28", "2026-03-29T00:00:00Z"), ("2026-03-29", "2026-03-29T23:00:00Z")]
        assert all(r["late"] is False for r in recs)
    finally:
        w.store.close()
