"""Streaming aggregates over a period's cycles: one row in, a few numbers kept.

Nothing here holds the cycles themselves: each `add()` folds one cycle into
running minima, maxima, time-weighted sums, per-day and per-chart-bucket
figures, so a month of one-minute cycles costs the same memory as a day.
Ratios are compared exactly (cross-multiplied in `units.EXACT`), and only
the winners are divided and formatted. Times are integer microseconds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["AssetStats", "Buckets", "ChainStats", "DayStats", "Extreme", "Fraction", "Kept",
           "PriceStats", "RatioStats", "amounts", "extreme", "loads"]



@dataclass(frozen=True)
class Fraction:
    """num ÷ den with den > 0, compared without dividing."""

    num: Decimal
    den: Decimal

    def __lt__(self, other: Fraction) -> bool:
        return self.num * other.den < other.num * self.den

    def value(self) -> Decimal:
        return self.num / self.den


@dataclass
class Extreme:
    """The lowest or highest value seen, with the cycle and time it was seen at."""

    value: Any = None
    cycle: int | None = None
    at: str | None = None

    def offer(self, value: Any, cycle: int, at: str, highest: bool) -> None:
        if self.value is None or (self.value < value if highest else value < self.value):
            self.value, self.cycle, self.at = value, cycle, at


@dataclass
class RatioStats:
    """The combined hot ratio: latest, min, max and the time-weighted mean.

    Each cycle's ratio holds until the next cycle (of any status) or the end
    of the window, whichever is first; null ratios (and failed cycles) carry
    no weight and are counted instead."""

    latest: Extreme = field(default_factory=Extreme)
    low: Extreme = field(default_factory=Extreme)
    high: Extreme = field(default_factory=Extreme)
    weighted_sum: Decimal = Decimal(0)  # Σ ratio × microseconds
    weight: int = 0  # microseconds
    cycles: int = 0
    null_cycles: int = 0
    above: dict[str, int] = field(default_factory=lambda: {"warning": 0, "critical": 0})

    def observe(self, ratio: Decimal | None, cycle: int, at: str,
                limits: Mapping[str, Decimal | None]) -> None:
        if ratio is None:
            self.null_cycles += 1
            return
        self.cycles += 1
        self.latest = Extreme(ratio, cycle, at)
        self.low.offer(ratio, cycle, at, highest=False)
        self.high.offer(ratio, cycle, at, highest=True)
        for level, limit in limits.items():
            if limit is not None and ratio > limit:
                self.above[level] += 1

    def hold(self, ratio: Decimal | None, micros: int) -> None:
        if ratio is not None and micros > 0:
            self.weighted_sum += ratio * micros
            self.weight += micros

    def mean(self) -> Decimal | None:
        return self.weighted_sum / self.weight if self.weight else None


def amounts(a: Mapping[str, Any]) -> dict[str, Decimal] | None:
    """L, C, O, N, G of one asset of one cycle; None when any is unknown (chain unread)."""
    try:
        return {"L": Decimal(a["liabilities"]), "C": Decimal(a["cold"]),
                "O": Decimal(a["hot"]) + Decimal(a["warm"]) + Decimal(a["deposit"]),
                "N": Decimal(a["online"]), "G": Decimal(a["guarantee"])}
    except (TypeError, KeyError):
        return None


# (numerator, denominator, cycle, at): a ratio kept without dividing
Kept = tuple[Decimal, Decimal, int, str]


def extreme(k: Kept | None) -> Extreme:
    return Extreme() if k is None else Extreme(Fraction(k[0], k[1]), k[2], k[3])


class AssetStats:
    """Per asset: the latest amounts and the worst hot ratio and coverages.

    The hot loop of a report (cycles × assets): plain tuples and locals, ratios
    compared by cross-multiplying (denominators are positive), nothing divided."""

    __slots__ = ("cls", "latest", "hot_ratio", "guarantee", "reserve", "guarantee_short",
                 "reserve_short", "unknown", "floor")

    def __init__(self, tolerance: Decimal = Decimal(0)) -> None:
        self.cls: str | None = None
        self.latest: tuple[int, str, Mapping[str, Any]] | None = None  # cycle, at, raw asset
        self.hot_ratio: Kept | None = None  # highest N ÷ L
        self.guarantee: Kept | None = None  # lowest G ÷ N
        self.reserve: Kept | None = None  # lowest (O + C) ÷ L
        self.guarantee_short = 0  # cycles with G < N
        self.reserve_short = 0  # cycles with O + C < L × (1 − tolerance)
        self.unknown = 0  # cycles with the asset's amounts unknown
        self.floor = 1 - tolerance

    def observe(self, a: Mapping[str, Any], cycle: int, at: str) -> bool:
        """Fold one cycle's asset in; False when its amounts are unknown."""
        self.cls = a.get("class", self.cls)
        try:
            owed, cold, n, g = (Decimal(a["liabilities"]), Decimal(a["cold"]),
                                Decimal(a["online"]), Decimal(a["guarantee"]))
            held = Decimal(a["hot"]) + Decimal(a["warm"]) + Decimal(a["deposit"]) + cold
        except (TypeError, KeyError):
            self.unknown += 1
            return False
        self.latest = (cycle, at, a)
        if owed > 0:
            b = self.hot_ratio
            if b is None or n * b[1] > b[0] * owed:
                self.hot_ratio = (n, owed, cycle, at)
            b = self.reserve
            if b is None or held * b[1] < b[0] * owed:
                self.reserve = (held, owed, cycle, at)
            if held < owed * self.floor:
                self.reserve_short += 1
        if n > 0:
            b = self.guarantee
            if b is None or g * b[1] < b[0] * n:
                self.guarantee = (g, n, cycle, at)
        if g < n:
            self.guarantee_short += 1
        return True


@dataclass
class ChainStats:
    """The first and last settled block a chain was read at, and unread cycles."""

    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    unread: int = 0

    def observe(self, c: Mapping[str, Any], cycle: int, at: str) -> None:
        settled = c.get("settled") if c.get("ok") else None
        if not settled or settled.get("block") is None:
            self.unread += 1
            return
        point = {"cycle": cycle, "at": at, "block": settled["block"],
                 "block_hash": settled.get("block_hash")}
        if self.first is None:
            self.first = point
        self.last = point


@dataclass
class DayStats:
    """One business date: its cycles, hot-ratio figures and the amounts at its close."""

    date: str
    cycles: int = 0
    ratio: RatioStats = field(default_factory=RatioStats)
    close: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # asset → its last raw JSON


@functools.lru_cache(maxsize=256)
def _parse_time(text: str) -> datetime:
    """Cached: every asset of a cycle usually carries the same price time."""
    return datetime.fromisoformat(text)


class PriceStats:
    """Per asset, the price sources seen and the span of their timestamps."""

    __slots__ = ("sources", "first_as_of", "last_as_of", "missing", "latest", "_last_text")

    def __init__(self) -> None:
        self.sources: set[str] = set()
        self.first_as_of: datetime | None = None
        self.last_as_of: datetime | None = None
        self.missing = 0
        self.latest: str | None = None
        self._last_text: str | None = None

    def observe(self, a: Mapping[str, Any]) -> None:
        price = a.get("price")
        if price is None:
            self.missing += 1
            return
        self.latest = price
        self.sources.add(a.get("price_source") or "unrecorded")
        as_of = a.get("price_as_of")
        if as_of and as_of != self._last_text:  # RFC 3339 text is not fixed-width: parse
            self._last_text = as_of
            t = _parse_time(as_of)
            if self.first_as_of is None or t < self.first_as_of:
                self.first_as_of = t
            if self.last_as_of is None or t > self.last_as_of:
                self.last_as_of = t


@dataclass
class Buckets:
    """The hot-ratio series cut into at most `count` equal buckets (min, max, last)
    for the chart: the envelope of 43,200 points in a few hundred."""

    start: int  # microseconds
    width: int
    points: dict[int, list[Decimal]] = field(default_factory=dict)

    def add(self, t: int, ratio: Decimal | None) -> None:
        if ratio is None:
            return
        b = self.points.get((t - self.start) // self.width)
        if b is None:
            self.points[(t - self.start) // self.width] = [ratio, ratio, ratio]
        else:
            b[0], b[1], b[2] = min(b[0], ratio), max(b[1], ratio), ratio


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
