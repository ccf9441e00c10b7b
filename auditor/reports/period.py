"""Report periods: inclusive local business dates → a half-open UTC window.

A business date is the local date of (cut-off − 1 s), the day that just ended
at `schedule.records_cutoff` (DESIGN.md, Store): with a cut-off of 00:00 the
date D runs from D 00:00 to D+1 00:00 local time; with 09:00 it runs from
D−1 09:00 to D 09:00. A report from F to T covers [start(F), end(T)).
Weeks start on Monday; months are calendar months of business dates.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..settings import ScheduleSettings

__all__ = ["Period", "business_date", "closed_period", "default_period", "day_end",
           "day_start", "parse_date", "period_of"]

EVERY = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Period:
    first: date  # inclusive local business dates
    last: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def name(self) -> str:
        return f"{self.first.isoformat()}-{self.last.isoformat()}"


def _cutoff(schedule: ScheduleSettings) -> time:
    hh, mm = schedule.records_cutoff.split(":")
    return time(int(hh), int(mm))


def day_end(d: date, schedule: ScheduleSettings) -> datetime:
    """The UTC instant business date `d` ends (its records cut-off)."""
    cut = _cutoff(schedule)
    local_day = d + timedelta(days=1) if cut == time(0, 0) else d
    tz = ZoneInfo(schedule.timezone)
    return datetime.combine(local_day, cut, tzinfo=tz).astimezone(UTC)


def day_start(d: date, schedule: ScheduleSettings) -> datetime:
    return day_end(d - timedelta(days=1), schedule)


def business_date(at: datetime, schedule: ScheduleSettings) -> date:
    """The business date an instant belongs to."""
    tz = ZoneInfo(schedule.timezone)
    local = at.astimezone(tz)
    d = local.date()
    # A day's end is its cut-off (or the next midnight): step to the right date.
    while at >= day_end(d, schedule):
        d += timedelta(days=1)
    while at < day_start(d, schedule):
        d -= timedelta(days=1)
    return d


def period_of(first: date, last: date, schedule: ScheduleSettings) -> Period:
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first}); "
                         "swap --from and --to")
    return Period(first, last, day_start(first, schedule), day_end(last, schedule))


def default_period(now: datetime, schedule: ScheduleSettings) -> Period:
    """The previous business day: the last one that has ended at `now`."""
    d = business_date(now, schedule) - timedelta(days=1)
    return period_of(d, d, schedule)


def _containing(d: date, every: str) -> tuple[date, date]:
    if every == "daily":
        return d, d
    if every == "weekly":
        monday = d - timedelta(days=d.weekday())
        return monday, monday + timedelta(days=6)
    if every == "monthly":
        days = calendar.monthrange(d.year, d.month)[1]
        return d.replace(day=1), d.replace(day=days)
    raise ValueError(f"reports.every must be one of {', '.join(EVERY)}, not {every!r}")


def closed_period(now: datetime, every: str, schedule: ScheduleSettings) -> Period:
    """The latest daily, weekly (Monday to Sunday) or monthly period closed at `now`."""
    today = business_date(now, schedule)
    first, _ = _containing(today, every)
    prev_first, prev_last = _containing(first - timedelta(days=1), every)
    return period_of(prev_first, prev_last, schedule)


def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date; write YYYY-MM-DD (a local date in "
                         "schedule.timezone)") from None
