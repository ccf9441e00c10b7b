"""Daily records, the pure part: business dates, cut-offs, and the record's payload.

A cut-off is the instant the local clock of `schedule.timezone` shows
`schedule.records_cutoff`. The business date it closes is the local date of
the cut-off minus one second: the day that just ended (cut-off 00:00 → the
previous day). Local times that a DST switch skips are taken as the instant
the clock would have shown them (01:30 on a spring-forward night in London is
02:30 BST); repeated ones as their first occurrence (PEP 495 fold=0).

No I/O, no clock: `now` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from . import units
from .settings import ScheduleSettings

__all__ = [
    "GRACE_POLLS",
    "build_record",
    "business_date",
    "cutoff_on",
    "cutoffs_between",
    "due_record",
    "grace_s",
    "latest_cutoff",
    "parse_hhmm",
    "period_bounds",
]

GRACE_POLLS = 3  # a record later than this many polls after its cut-off is late


def grace_s(poll_every: int) -> int:
    return GRACE_POLLS * poll_every


def parse_hhmm(hhmm: str) -> time:
    h, _, m = hhmm.partition(":")
    if not (h.isdigit() and m.isdigit() and len(m) == 2 and 0 <= int(h) < 24 and int(m) < 60):
        raise ValueError(f"records_cutoff {hhmm!r} is not HH:MM (e.g. \"00:00\")")
    return time(int(h), int(m))


def cutoff_on(day: date, tz: str, hhmm: str) -> datetime:
    """The cut-off instant (UTC) of local date `day`."""
    local = datetime.combine(day, parse_hhmm(hhmm), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def business_date(cutoff_at: datetime, tz: str) -> str:
    """The date a cut-off closes: local date of (cut-off − 1 s), YYYY-MM-DD."""
    return (cutoff_at - timedelta(seconds=1)).astimezone(ZoneInfo(tz)).date().isoformat()


def latest_cutoff(now: datetime, tz: str, hhmm: str) -> datetime:
    """The last cut-off at or before `now` (UTC)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    for back in range(3):
        c = cutoff_on(today - timedelta(days=back), tz, hhmm)
        if c <= now:
            return c
    raise AssertionError("no cut-off within three local days")  # pragma: no cover


def cutoffs_between(start: datetime, end: datetime, tz: str, hhmm: str) -> Iterator[datetime]:
    """Every cut-off c with start <= c <= end, oldest first."""
    zone = ZoneInfo(tz)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        c = cutoff_on(day, tz, hhmm)
        if start <= c <= end:
            yield c
        day += timedelta(days=1)


def due_record(now: datetime, schedule: ScheduleSettings,
               last_record_date: str | None) -> tuple[str, datetime] | None:
    """(business date, cut-off) when the latest cut-off's date has no record yet.

    Only the latest cut-off is ever due: a date whose cut-off passed without
    an ok cycle before the next cut-off is never written (never back-filled).
    """
    cutoff = latest_cutoff(now, schedule.timezone, schedule.records_cutoff)
    day = business_date(cutoff, schedule.timezone)
    if last_record_date is not None and last_record_date >= day:
        return None
    return day, cutoff


def _sum(parts: list[Any]) -> str | None:
    if any(p is None for p in parts):
        return None
    with localcontext(units.EXACT):
        return units.format_decimal(sum((units.parse_decimal(p) for p in parts), Decimal(0)))


def _asset(a: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "class": a.get("class"),
        "liabilities": a.get("liabilities"),
        "cold": a.get("cold"),
        "online_holdings": _sum([a.get("hot"), a.get("warm"), a.get("deposit")]),
        "online": a.get("online"),
        "guarantee": a.get("guarantee"),
        "price": a.get("price"),
        "price_source": a.get("price_source"),
        "price_as_of": a.get("price_as_of"),
    }


def build_record(day: str, cutoff_at: datetime, poll: Mapping[str, Any], cycle: int,
                 poll_every: int) -> dict[str, Any]:
    """The record of `day` from an ok cycle's poll JSON (DESIGN.md, Store).

    Amounts stay the exposure's exact whole-unit strings; O = hot + warm +
    deposit (exact). `late`: taken more than GRACE_POLLS × poll_every after
    the cut-off. `head` is filled in by the store.
    """
    e = poll["exposure"]
    taken = datetime.fromisoformat(str(poll["taken_at"]).replace("Z", "+00:00"))
    chains = {}
    for name, c in sorted(poll.get("chains", {}).items()):
        s = c.get("settled") or {}
        chains[name] = {"block": s.get("block"), "block_hash": s.get("block_hash")}
    return {
        "date": day,
        "cutoff": cutoff_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cycle": cycle,
        "taken_at": poll["taken_at"],
        "late": (taken - cutoff_at).total_seconds() > grace_s(poll_every),
        "fiat": e.get("fiat"),
        "basis": e.get("basis"),
        "hot_ratio": e.get("hot_ratio"),
        "assets": {sym: _asset(a) for sym, a in e.get("assets", {}).items()},
        "chains": chains,
    }


def period_bounds(from_date: str, to_date: str, tz: str) -> tuple[datetime, datetime]:
    """Inclusive local dates → [start, end) in UTC: local midnight of `from_date` to local
    midnight after `to_date` (a DST day is 23 or 25 hours long)."""
    first, last = date.fromisoformat(from_date), date.fromisoformat(to_date)
    if last < first:
        raise ValueError(f"--to {to_date} is before --from {from_date}; swap them")
    zone = ZoneInfo(tz)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end
