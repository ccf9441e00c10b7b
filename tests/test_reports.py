"""Reports over a stored month: every figure of the JSON recomputed from the store
with plain SQL and exact fractions, and the files as an auditor receives them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from click.testing import CliRunner
from report_month import MonthStore, store_month

from auditor.cli import cli
from auditor.reports import build_report, render
from auditor.units import EXACT, format_ratio

FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
# Asia/Tokyo is UTC+9 with no DST; the cut-off is 00:00 local.
W_START = datetime(2026, 10, 31, 15, tzinfo=UTC)
W_END = datetime(2026, 11, 30, 15, tzinfo=UTC)
NOW = datetime(2026, 12, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> MonthStore:
    m = store_month(tmp_path_factory.mktemp("month"))
    yield m
    m.store.close()


@pytest.fixture(scope="module")
def report(month: MonthStore) -> dict[str, Any]:
    return build_report(month.store, month.settings, FIRST, LAST, NOW)


def _db(month: MonthStore) -> sqlite3.Connection:
    return sqlite3.connect(str(month.settings.store.path))


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _fmt(x: Fraction) -> str | None:
    with localcontext(EXACT):
        return format_ratio(Decimal(x.numerator) / Decimal(x.denominator))


def _cycles(month: MonthStore) -> list[tuple[int, datetime, str, dict[str, Any], dict[str, Any] | None]]:
    with _db(month) as db:
        rows = db.execute("SELECT c.id, c.taken_at, c.status, c.chains, e.payload FROM cycles c "
                          "LEFT JOIN exposures e ON e.cycle = c.id ORDER BY c.id").fetchall()
    return [(i, _t(t), s, json.loads(c), json.loads(e) if e else None) for i, t, s, c, e in rows]


def _in_window(rows: list[Any]) -> list[Any]:
    return [r for r in rows if W_START <= r[1] < W_END]


def test_cycle_counts_and_first_and_last_settled_blocks_match_the_store(month, report) -> None:
    rows = _in_window(_cycles(month))
    counts = Counter(r[2] for r in rows)
    assert report["cycles"] | {"first": None, "last": None} == {
        "total": len(rows), "ok": counts["ok"], "partial": counts["partial"],
        "failed": counts["failed"], "first": None, "last": None}
    assert counts["partial"] > 0 and counts["failed"] > 0  # the month has both kinds
    assert report["cycles"]["first"]["cycle"] == rows[0][0]
    for chain in ("ethereum", "polygon"):
        read = [r for r in rows if r[3][chain]["ok"]]
        for key, r in (("first_settled", read[0]), ("last_settled", read[-1])):
            got = report["chains"][chain][key]
            assert (got["cycle"], got["block"], got["block_hash"]) == (
                r[0], r[3][chain]["settled"]["block"], r[3][chain]["settled"]["block_hash"])
        assert report["chains"][chain]["unread_cycles"] == len(rows) - len(read)


def test_hot_ratio_latest_min_max_and_time_weighted_mean_match_the_store(month, report) -> None:
    every = _cycles(month)
    rows = _in_window(every)
    rated = [(r[0], r[1], Fraction(r[4]["hot_ratio"])) for r in rows
             if r[4] is not None and r[4]["hot_ratio"] is not None]
    hr = report["exposure"]["hot_ratio"]
    assert hr["cycles"] == len(rated) and hr["null_cycles"] == len(rows) - len(rated)
    assert hr["null_cycles"] > 0
    assert hr["latest"]["cycle"] == rated[-1][0]
    assert Fraction(hr["min"]["value"]) == min(x[2] for x in rated)
    assert Fraction(hr["max"]["value"]) == max(x[2] for x in rated)
    # The ratio holds until the next cycle of any status, capped at the window's end.
    times = [r[1] for r in every]
    total, weight = Fraction(0), 0
    for i, (_cid, t, _ratio, _, exp) in enumerate(every):
        if not (W_START <= t < W_END) or exp is None or exp["hot_ratio"] is None:
            continue
        nxt = times[i + 1] if i + 1 < len(times) else W_END
        us = (min(nxt, W_END) - t) // timedelta(microseconds=1)
        total += Fraction(exp["hot_ratio"]) * us
        weight += us
    assert hr["mean"] == _fmt(total / weight)
    assert Fraction(hr["weighted_seconds"]) == Fraction(weight, 10**6)
    crit = month.settings.rules.hot_ratio.critical
    assert hr["above"]["critical"] == sum(1 for x in rated if x[2] > Fraction(str(crit))) > 0


def test_per_asset_latest_and_worst_amounts_match_the_store(month, report) -> None:
    rows = [r for r in _in_window(_cycles(month)) if r[4] is not None]
    for sym in ("ETH", "POL", "USDC"):
        seen = [(r[0], {k: Fraction(v) for k, v in _lcong(r[4]["assets"][sym]).items()})
                for r in rows if r[4]["assets"][sym]["online"] is not None]
        got = report["exposure"]["assets"][sym]
        cid, x = seen[-1]
        assert got["latest"]["cycle"] == cid
        assert {k: Fraction(got["latest"][k]) for k in "LCONG"} == x
        worst = got["worst"]
        assert worst["hot_ratio"]["value"] == _fmt(max(a["N"] / a["L"] for _, a in seen))
        short = sum(1 for _, a in seen if a["G"] < a["N"])
        assert got["cycles_guarantee_short"] == short
        if any(a["N"] > 0 for _, a in seen):
            g = min(a["G"] / a["N"] for _, a in seen if a["N"] > 0)
            assert worst["guarantee_coverage"]["value"] == _fmt(g)
        r = min((a["O"] + a["C"]) / a["L"] for _, a in seen)
        assert worst["reserve_coverage"]["value"] == _fmt(r)
    assert report["exposure"]["assets"]["ETH"]["cycles_guarantee_short"] > 0  # the breach


def _lcong(a: dict[str, str]) -> dict[str, str | Fraction]:
    return {"L": a["liabilities"], "C": a["cold"], "N": a["online"], "G": a["guarantee"],
            "O": Fraction(a["hot"]) + Fraction(a["warm"]) + Fraction(a["deposit"])}


def test_daily_series_worst_day_and_daily_records_match_the_store(month, report) -> None:
    rows = _in_window(_cycles(month))
    per_day: dict[str, list[Fraction]] = {}
    for r in rows:
        d = (r[1] + timedelta(hours=9)).date().isoformat()
        if r[4] is not None and r[4]["hot_ratio"] is not None:
            per_day.setdefault(d, []).append(Fraction(r[4]["hot_ratio"]))
    assert [d["date"] for d in report["days"]] == [
        (FIRST + timedelta(days=i)).isoformat() for i in range(30)]
    for d in report["days"]:
        assert Fraction(d["hot_ratio"]["max"]) == max(per_day[d["date"]])
    worst = max(per_day, key=lambda k: max(per_day[k]))
    assert report["worst_day"]["date"] == worst
    with _db(month) as db:
        dates = [r[0] for r in db.execute("SELECT business_date FROM daily_records WHERE "
                                          "business_date BETWEEN '2026-11-01' AND '2026-11-30' "
                                          "ORDER BY business_date")]
    assert [r["date"] for r in report["daily_records"]] == dates and len(dates) == 30


def test_alerts_active_in_the_period_with_transitions_and_who_acted(month, report) -> None:
    with _db(month) as db:
        events = db.execute("SELECT seq, fingerprint, kind, at FROM alert_events "
                            "ORDER BY seq").fetchall()
    active = set()
    state: dict[str, str] = {}
    for _, fp, kind, at in events:
        t = _t(at)
        if t < W_START and kind != "ack":
            state[fp] = kind
        elif W_START <= t < W_END and kind != "ack":
            active.add(fp)
    active |= {fp for fp, k in state.items() if k != "resolved"}
    assert {a["fingerprint"] for a in report["alerts"]} == active
    hot = next(a for a in report["alerts"] if a["rule"] == "hot_ratio")
    assert [w["by"] for w in hot["acknowledged_by"]] == ["alice"]
    kinds = [e["kind"] for e in hot["events"]]
    assert "firing" in kinds and "ack" in kinds and "resolved" in kinds
    seqs = [e["seq"] for e in hot["events"]]
    assert seqs == sorted(seqs)


def test_head_is_the_log_head_when_built_and_no_float_anywhere(month, report) -> None:
    with _db(month) as db:
        seq, head = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert (report["head_seq"], report["head"]) == (seq, head)
    assert report["verify"] == f"auditor verify --anchor {seq}:{head}"

    def no_float(text: str) -> None:
        raise AssertionError(f"a float in the report JSON: {text}")

    json.loads(render(report, "json"), parse_float=no_float)
    assert report["basis"] == "liabilities" and report["indicative"] is False


def test_csv_is_the_daily_series_and_opens_with_the_csv_module(report) -> None:
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert len(rows) == 30
    day = report["days"][4]
    assert rows[4]["date"] == day["date"]
    assert rows[4]["hot_ratio_max"] == day["hot_ratio"]["max"]
    assert rows[4]["ETH_N"] == day["assets"]["ETH"]["N"]
    assert rows[4]["record_head"] == report["daily_records"][4]["head"]


_URL = re.compile(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", re.I)
_REF = re.compile(r"""\b(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?([^"'\s>]*)""", re.I)


def test_html_is_self_contained_with_inline_svg_charts(report) -> None:
    html = render(report, "html")
    assert _URL.search(html) is None
    assert [u for u in _REF.findall(html) if not u.startswith("#")] == []
    assert "@import" not in html and re.search(r"url\(\s*['\"]?(?!#)", html) is None
    assert html.count("<svg") == 3  # hot ratio, holdings by tier, coverage
    assert "Hot ratio over time against the warning and critical limits" in html
    assert "auditor verify --anchor" in html and report["head"] in html


def test_report_record_holds_the_files_sha256(month, tmp_path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["report", "-c", str(month.settings.source), "--from",
                                   "2026-11-01", "--to", "2026-11-30", "--format", "json,csv",
                                   "--format", "md", "--out", str(out)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"report-2026-11-01-2026-11-30.{e}" for e in ("csv", "json", "md")]
    with _db(month) as db:
        seq, payload = db.execute("SELECT seq, payload FROM audit_log WHERE kind = 'report' "
                                  "ORDER BY seq DESC LIMIT 1").fetchone()
    rec = json.loads(payload)
    assert rec["files"] == {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}
    assert rec["head_before"] == json.loads((out / names[1]).read_text())["head"]
    assert rec["head_seq"] == seq - 1 and (rec["from"], rec["to"]) == ("2026-11-01", "2026-11-30")
    assert month.store.verify().ok


def test_report_rejects_an_unknown_format_and_reversed_dates(month, tmp_path) -> None:
    args = ["report", "-c", str(month.settings.source), "--out", str(tmp_path)]
    bad = CliRunner().invoke(cli, [*args, "--from", "2026-11-01", "--format", "pdf"])
    assert bad.exit_code == 2 and "unknown report format(s) pdf" in bad.output
    rev = CliRunner().invoke(cli, [*args, "--from", "2026-11-05", "--to", "2026-11-01"])
    assert rev.exit_code == 2 and "before --from" in rev.output
    assert list(tmp_path.iterdir()) == []


def test_holdings_basis_marks_every_ratio_indicative(tmp_path) -> None:
    m = store_month(tmp_path, cycles=30, with_ledger=False)
    try:
        r = build_report(m.store, m.settings, date(2026, 10, 29), date(2026, 11, 2), NOW)
    finally:
        m.store.close()
    assert r["basis"] == "holdings" and r["indicative"] is True
    assert all(c.get("indicative", True) for c in r["regulator"]["checks"] if c["id"] == "hot_ratio")
    assert "Indicative" in render(r, "html") and "indicative" in render(r, "md")


def test_scheduled_report_is_written_once_per_closed_period(tmp_path) -> None:
    from auditor.reports.schedule import ReportScheduler

    m = store_month(tmp_path, cycles=40, reports="reports: {every: weekly, formats: [json], out: r}\n")
    try:
        # 2026-11-02 is a Monday: the week 10-26..11-01 has closed at 11-02 00:00 Tokyo.
        at = datetime(2026, 11, 2, 1, tzinfo=UTC)
        first = ReportScheduler(m.settings).due(m.store, at)
        assert first is not None and [p.name for p in first.paths] == [
            "report-2026-10-26-2026-11-01.json"]
        assert first.paths[0].parent == tmp_path / "r"  # relative to the config file
        assert ReportScheduler(m.settings).due(m.store, at + timedelta(hours=1)) is None  # restart
        with sqlite3.connect(str(m.settings.store.path)) as db:
            n = db.execute("SELECT count(*) FROM audit_log WHERE kind = 'report'").fetchone()[0]
        assert n == 1
    finally:
        m.store.close()
