"""One pass over a period's cycles, folding each into the aggregates.

The ratio of a cycle holds until the next cycle is taken (whatever its
status), capped at the end of the window, of its business day (for the
daily figures) and of the chart bucket. The last cycle of the window holds
until the next cycle after the window, or the window's end, or `now`.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from ..settings import Settings
from ..store import Store
from ..units import EXACT
from .aggregate import (
    AssetStats,
    Buckets,
    ChainStats,
    DayStats,
    PriceStats,
    RatioStats,
    loads,
)
from .period import Period, day_end

__all__ = ["Scan", "scan_cycles", "micros", "CHART_BUCKETS"]

CHART_BUCKETS = 720


def micros(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class Scan:
    """Everything the report needs from the cycles, and nothing more."""

    statuses: Counter[str] = field(default_factory=Counter)
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    ratio: RatioStats = field(default_factory=RatioStats)
    assets: dict[str, AssetStats] = field(default_factory=dict)
    chains: dict[str, ChainStats] = field(default_factory=dict)
    days: list[DayStats] = field(default_factory=list)
    prices: dict[str, PriceStats] = field(default_factory=dict)
    bases: set[str] = field(default_factory=set)
    latest_exposure: dict[str, Any] | None = None
    buckets: Buckets | None = None


@dataclass
class _Held:
    """The previous cycle, waiting for the next one to learn how long its ratio held."""

    t: int
    ratio: Decimal | None
    day: DayStats


class _Scanner:
    def __init__(self, settings: Settings, period: Period, end_cap: int):
        self.settings, self.period = settings, period
        self.scan = Scan()
        self.start, self.end = micros(period.start), end_cap
        self.width = max(60_000_000, -(-(micros(period.end) - self.start) // CHART_BUCKETS))
        self.scan.buckets = Buckets(self.start, self.width)
        dates = [period.first.fromordinal(o) for o in
                 range(period.first.toordinal(), period.last.toordinal() + 1)]
        self.scan.days = [DayStats(d.isoformat()) for d in dates]
        self.day_ends = [micros(day_end(d, settings.schedule)) for d in dates]
        hr = settings.rules.hot_ratio
        self.limits: dict[str, Decimal | None] = {
            "warning": hr.warning if hr else None, "critical": hr.critical if hr else None}
        rc = settings.rules.reserve_coverage
        self.tolerance = rc.tolerance if rc else Decimal(0)
        self.held: _Held | None = None

    def _day(self, t: int) -> tuple[DayStats, int]:
        i = min(bisect.bisect_right(self.day_ends, t), len(self.day_ends) - 1)
        return self.scan.days[i], self.day_ends[i]

    def _release(self, until: int) -> None:
        """The held ratio lasted until `until` (capped at the window, day and bucket ends)."""
        h = self.held
        if h is None:
            return
        self.scan.ratio.hold(h.ratio, min(until, self.end) - h.t)
        _, day_end_t = self._day(h.t)
        h.day.ratio.hold(h.ratio, min(until, day_end_t, self.end) - h.t)

    def add(self, cid: int, taken_at: str, status: str, chains: str, exposure: str | None) -> None:
        s = self.scan
        at = taken_at.replace(".000000Z", "Z")
        t = micros(datetime.fromisoformat(taken_at))
        self._release(t)
        s.statuses[status] += 1
        point = {"cycle": cid, "at": at}
        s.first = s.first or point
        s.last = point
        day, _ = self._day(t)
        day.cycles += 1
        for name, c in (loads(chains) or {}).items():
            s.chains.setdefault(name, ChainStats()).observe(c, cid, at)
        e = loads(exposure)
        ratio = None if e is None or e.get("hot_ratio") is None else Decimal(e["hot_ratio"])
        s.ratio.observe(ratio, cid, at, self.limits)
        day.ratio.observe(ratio, cid, at, self.limits)
        assert s.buckets is not None
        s.buckets.add(t, ratio)
        if e is not None:
            self._exposure(e, cid, at, day)
        self.held = _Held(t, ratio, day)

    def _exposure(self, e: Mapping[str, Any], cid: int, at: str, day: DayStats) -> None:
        s = self.scan
        s.bases.add(str(e.get("basis")))
        s.latest_exposure = {"cycle": cid, "at": at, "exposure": e}
        assets, prices, close = s.assets, s.prices, day.close
        for sym, a in (e.get("assets") or {}).items():
            stats = assets.get(sym)
            if stats is None:
                stats = assets[sym] = AssetStats(self.tolerance)
                prices[sym] = PriceStats()
            if stats.observe(a, cid, at):
                close[sym] = a
            prices[sym].observe(a)

    def finish(self, after: int) -> Scan:
        self._release(after)
        return self.scan


def scan_cycles(store: Store, settings: Settings, period: Period, now: datetime) -> Scan:
    """Fold every cycle of the period into a `Scan` (one cursor, bounded memory)."""
    end_cap = min(micros(period.end), micros(now))
    scanner = _Scanner(settings, period, end_cap)
    with localcontext(EXACT):
        for row in store.report_cycles(period.start, period.end):
            scanner.add(*row)
        nxt = store.next_cycle_at(period.end)
        after = micros(nxt) if nxt is not None else end_cap
        return scanner.finish(after)
