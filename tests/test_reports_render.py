"""Report periods and the HTML in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from report_month import store_month

from auditor.reports import build_report, closed_period, default_period, render
from auditor.reports.period import business_date, period_of
from auditor.reports.write import parse_formats
from auditor.settings import ScheduleSettings

TOKYO = ScheduleSettings(timezone="Asia/Tokyo", records_cutoff="00:00")
TOKYO_9 = ScheduleSettings(timezone="Asia/Tokyo", records_cutoff="09:00")
CHROMIUM = "/usr/bin/chromium"


def test_a_business_date_runs_from_cutoff_to_cutoff_in_local_time() -> None:
    p = period_of(date(2026, 11, 1), date(2026, 11, 30), TOKYO)
    assert (p.start, p.end) == (datetime(2026, 10, 31, 15, tzinfo=UTC),
                                datetime(2026, 11, 30, 15, tzinfo=UTC))
    # With a 09:00 cut-off, date D ends at D 09:00 (the local date of the cut-off − 1 s).
    p9 = period_of(date(2026, 11, 2), date(2026, 11, 2), TOKYO_9)
    assert (p9.start, p9.end) == (datetime(2026, 11, 1, 0, tzinfo=UTC),
                                  datetime(2026, 11, 2, 0, tzinfo=UTC))
    assert business_date(datetime(2026, 11, 1, 23, 59, tzinfo=UTC), TOKYO_9) == date(2026, 11, 2)
    assert business_date(datetime(2026, 11, 2, 0, 0, tzinfo=UTC), TOKYO_9) == date(2026, 11, 3)


def test_default_and_closed_periods_weeks_start_monday() -> None:
    now = datetime(2026, 11, 4, 16, tzinfo=UTC)  # Thu 5 Nov 01:00 in Tokyo
    assert default_period(now, TOKYO).first == date(2026, 11, 4)
    assert closed_period(now, "daily", TOKYO).name == "2026-11-04-2026-11-04"
    assert closed_period(now, "weekly", TOKYO).name == "2026-10-26-2026-11-01"
    assert closed_period(now, "monthly", TOKYO).name == "2026-10-01-2026-10-31"


def test_formats_repeat_or_comma_separate_and_unknown_ones_are_refused() -> None:
    assert parse_formats(["md,json", "html"]) == ["html", "json", "md"]
    with pytest.raises(ValueError, match="unknown report format"):
        parse_formats(["json,xlsx"])


def _png_colours(png: bytes) -> int:
    """Distinct pixel values of an 8-bit RGB(A) PNG (a tiny decoder: zlib + filters)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * bpp
    prev, seen = bytearray(stride), set()
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[f]
            line[i] = (line[i] + pred) & 0xFF
        if y % 7 == 0:  # a sample of rows is plenty
            seen.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 5))
        prev = line
    return len(seen)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed "
                    "(apt-get install chromium; .ci/run installs it): the HTML report is not "
                    "rendered in a browser here")
def test_html_report_renders_in_headless_chromium_to_a_non_blank_page(tmp_path: Path) -> None:
    m = store_month(tmp_path, cycles=60)
    try:
        report = build_report(m.store, m.settings, date(2026, 10, 29), date(2026, 11, 4),
                              datetime(2026, 11, 6, tzinfo=UTC))
    finally:
        m.store.close()
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    page.write_text(render(report, "html"), encoding="utf-8")
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,2000", page.as_uri()],
        check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000
    assert _png_colours(shot.read_bytes()) > 20  # text, tables and charts: not one colour


def test_reports_config_block_is_validated(tmp_path: Path) -> None:
    from report_month import month_config

    from auditor.config import check_config

    good = month_config(tmp_path, reports="reports: {every: daily, formats: [md, md], out: x}\n")
    assert good.reports is not None and good.reports.formats == ("md",)
    assert good.reports.out == tmp_path / "x" and good.reports.every == "daily"
    (tmp_path / "bad").mkdir()
    month_config(tmp_path / "bad")
    path = tmp_path / "bad" / "auditor.yaml"
    path.write_text(path.read_text() + "reports: {every: yearly, formats: [pdf], outdir: x}\n")
    problems = {p.path: p.message for p in check_config(path)[1] if p.severity == "error"}
    assert "daily | weekly | monthly" in problems["reports.every"]
    assert "html | json | csv | md" in problems["reports.formats[0]"]
    assert "reports.outdir" in problems


def test_the_daemon_cycle_writes_the_closed_periods_report_after_its_cycle(tmp_path: Path) -> None:
    from auditor.daemon import ServiceCycle

    m = store_month(tmp_path, cycles=20, reports="reports: {every: daily, formats: [md], out: r}\n")
    m.store.close()
    cycle = ServiceCycle(m.settings)
    seen: list[datetime] = []
    cycle._run_cycle = lambda s, store, now, deadline_s: seen.append(now) or "outcome"  # type: ignore[assignment]
    try:
        at = datetime(2026, 10, 30, 15, 5, tzinfo=UTC)  # 31 Oct 00:05 Tokyo: 30 Oct has closed
        assert cycle(at, 10.0) == "outcome" and seen == [at]
        assert [p.name for p in (tmp_path / "r").iterdir()] == ["report-2026-10-30-2026-10-30.md"]
        cycle(at + timedelta(minutes=1), 10.0)  # the next cycle: already written
        assert len(list((tmp_path / "r").iterdir())) == 1
    finally:
        cycle.close()
