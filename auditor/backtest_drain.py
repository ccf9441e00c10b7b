"""Backtest: when can hot_drain fire? (`DrainBound`)

`hot_drain` looks back over its longest window at every cycle. The replay runs it
only for the assets where an upper bound of some hot or warm wallet's fall, kept
here incrementally from each cycle's watch totals, exceeds a window's drop;
elsewhere the rule cannot fire, so the transitions are the same.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import cast

from .settings import RuleSettings, Settings

__all__ = ["DrainBound"]


class DrainBound:
    """When can hot_drain fire? Per hot/warm wallet, asset and window, an upper bound on
    the rule's fall, kept incrementally.

    The rule's fall is high − current − the internal outflows since the high, where
    each step between two readings of the wallet has an internal part (the rule's own
    `_StepPool`). With C the running sum of those parts, fall = (v_at + C_at) −
    (v_now + C_now) ≤ max over the window of (v + C) − (v_now + C_now): sliding-window
    maxima of v + C and of v (the high) bound it, and a window whose bound is not above
    high × drop cannot fire. Routine sweeps (internal) and top-ups keep the bound low.
    """

    def __init__(self, settings: Settings, rule_settings: RuleSettings):
        windows = rule_settings.hot_drain.windows
        # window lengths in µs, with the exact drop ratio; the longest bounds what is kept
        self.spans = [(w.window * 1_000_000, *w.drop.as_integer_ratio(), w.severity)
                      for w in windows]
        self.lowest = min((Fraction(num, den) for _s, num, den, _v in self.spans),
                          default=Fraction(0)).as_integer_ratio()  # the smallest drop
        self.nonneg = all(num >= 0 for _s, num, _d, _v in self.spans)  # drops, for the skip
        self.longest = max((w.window for w in windows), default=0) * 1_000_000
        self.keys = [(w.name, a) for w in settings.wallets if w.tier in ("hot", "warm")
                     for a in w.assets if a in settings.assets]
        # per asset, the wallets `_StepPool` sums: (key, rises count) — deposit rises never do
        self.pool: dict[str, list[tuple[tuple[str, str], bool]]] = {}
        for w in settings.wallets:
            for a in w.assets:
                self.pool.setdefault(a, []).append(((w.name, a), w.tier != "deposit"))
        self.state = {k: _KeyState() for k in self.keys}
        self.prev: _Plan | None = None  # the previous reading's plan, and its amounts
        self.prev_vals: list[int] = []

    def update(self, now: datetime, watch: Mapping[tuple[str, str], int]
               ) -> dict[tuple[str, str], set[str]]:
        """Feed one reading; (wallet, asset) → severities of the windows that may fire."""
        out: dict[tuple[str, str], set[str]] = {}
        if not self.spans:
            return out
        layout, vals = tuple(watch), list(watch.values())
        # the usual reading has the previous one's keys in the same order: amounts are
        # then read by position (no hashing of (wallet, asset) keys); else `_Plan` anew
        same = self.prev is not None and layout == self.prev.layout
        plan = self.prev if same and self.prev is not None else _Plan(layout, self)
        prev_vals = self.prev_vals if same else None
        self.prev, self.prev_vals = plan, vals
        steps: dict[object, tuple[int, int]] = {}
        t = (now - _EPOCH) // _MICRO  # exact integer time
        oldest = t - self.longest
        low_num, low_den = self.lowest
        nonneg = self.nonneg
        for key, st, i, asset in plan.keys:
            v = vals[i]
            last, prev = st.v, st.last
            st.v, st.last = v, watch
            times, values = st.times, st.values
            if last == v:
                # unchanged (a quiet wallet): C too, so v and v + C were the latest entries
                # of the readings and of the queue; moving their time to now keeps every
                # window's maximum
                st.highs.times[-1] = times[-1] = t
                vc = values[-1]
            else:
                if last is not None and last > v and prev is not None:
                    if prev_vals is not None:  # the same keys: the pool by position
                        got = steps.get(asset)
                        if got is None:
                            got = steps[asset] = plan.step(asset, prev_vals, vals)
                    else:
                        got = self._step(steps, prev, watch, asset)
                    falls, rises = got
                    if falls > 0:  # as `_StepPool.internal`
                        st.cum += (last - v) * min(falls, rises) // falls
                vc = v + st.cum
                highs = st.highs
                highs.times.append(t)
                highs.values.append(v)
                if len(highs.times) & 1023 == 0:
                    highs.forget(oldest)
                # push vc on the monotonic queue of v + C (inlined: the hot loop)
                while len(values) > st.head and values[-1] <= vc:
                    times.pop()
                    values.pop()
                times.append(t)
                values.append(vc)
            if times[st.head] < oldest:
                st.forget(oldest)
            widest = values[st.head] - vc  # ≥ every window's bound
            if widest <= 0 or (v >= 0 and nonneg and widest * low_den <= v * low_num):
                continue  # below the smallest drop: no window's bound can exceed its drop
            self._windows(out, key, st, t, v, vc, widest)
        return out

    def update_all(self, readings: list[tuple[datetime, Mapping[tuple[str, str], int] | None]]
                   ) -> list[dict[tuple[str, str], set[str]]]:
        """`update` of each reading in turn (a None reading feeds nothing). Readings with
        the previous one's keys in its order go in runs, key by key (`_run`)."""
        outs: list[dict[tuple[str, str], set[str]]] = [{} for _ in readings]
        if not self.spans:
            return outs
        run: list[int] = []
        vals: list[list[int]] = []
        for k, (now, watch) in enumerate(readings):
            if watch is None:
                continue
            if self.prev is not None and tuple(watch) == self.prev.layout:
                run.append(k)
                vals.append(list(watch.values()))
                continue
            self._run(readings, run, vals, outs)
            run, vals = [], []
            outs[k] = self.update(now, watch)
        self._run(readings, run, vals, outs)
        return outs

    def _run(self, readings: list[tuple[datetime, Mapping[tuple[str, str], int] | None]],
             run: list[int], vals: list[list[int]],
             outs: list[dict[tuple[str, str], set[str]]]) -> None:
        """`update` of the readings `run` (indexes into `readings`, amounts `vals` by
        position), each with the keys of the one before: one key at a time over all of
        them, its state in local variables. A quiet wallet (unchanged, its latest v + C
        the window's maximum) only moves its latest entry's time to the run's last."""
        if not run or self.prev is None:
            return
        plan, ts = self.prev, [(readings[k][0] - _EPOCH) // _MICRO for k in run]
        olds = [t - self.longest for t in ts]
        steps: dict[str, list[tuple[int, int] | None]] = {}
        before = [self.prev_vals, *vals]  # before[j]: the reading before run[j]
        low_num, low_den = self.lowest
        nonneg = self.nonneg
        for key, st, i, asset in plan.keys:
            col = [v[i] for v in vals]
            times, values, highs = st.times, st.values, st.highs
            last = cast(int, st.v)  # read in the reading before the run
            if col.count(last) == len(col) and len(values) - st.head == 1:
                highs.times[-1] = times[-1] = ts[-1]  # quiet all along
                continue
            known = steps.get(asset)  # the asset's steps, shared by its hot and warm keys
            if known is None:
                known = steps[asset] = [None] * len(col)
            head, cum, h_times, h_values = st.head, st.cum, highs.times, highs.values
            for j, v, t, oldest in zip(range(len(col)), col, ts, olds):
                if last == v:  # unchanged: as in `update`
                    h_times[-1] = times[-1] = t
                    vc = values[-1]
                else:
                    if last > v:
                        got = known[j]
                        if got is None:
                            got = known[j] = plan.step(asset, before[j], vals[j])
                        falls, rises = got
                        if falls > 0:  # as `_StepPool.internal`
                            cum += (last - v) * min(falls, rises) // falls
                    vc = v + cum
                    h_times.append(t)
                    h_values.append(v)
                    if len(h_times) & 1023 == 0:
                        highs.forget(oldest)
                    while len(values) > head and values[-1] <= vc:
                        times.pop()
                        values.pop()
                    times.append(t)
                    values.append(vc)
                    last = v
                if times[head] < oldest:
                    st.head = head
                    st.forget(oldest)
                    head = st.head
                widest = values[head] - vc
                if widest <= 0 or (v >= 0 and nonneg and widest * low_den <= v * low_num):
                    continue
                st.head, st.cum = head, cum
                self._windows(outs[run[j]], key, st, t, v, vc, widest)
            st.head, st.cum, st.v = head, cum, last
        for _key, st, _i, _asset in plan.keys:
            st.last = readings[run[-1]][1]
        self.prev_vals = vals[-1]

    def _windows(self, out: dict[tuple[str, str], set[str]], key: tuple[str, str],
                 st: _KeyState, t: int, v: int, vc: int, widest: int) -> None:
        """The rare key whose widest bound passes the smallest drop: window by window."""
        for span, num, den, sev in self.spans:
            if v >= 0 and self.nonneg and widest * den <= v * num:
                continue  # bound ≤ widest and high ≥ v: bound ≤ high × drop
            start = t - span
            bound = st.values[bisect_left(st.times, start, st.head)] - vc
            if bound > 0 and bound * den > st.highs.since(start) * num:  # > high × drop
                out.setdefault(key, set()).add(sev)

    def _step(self, steps: dict[object, tuple[int, int]],
              a: Mapping[tuple[str, str], int], b: Mapping[tuple[str, str], int],
              asset: str) -> tuple[int, int]:
        """`_StepPool._totals` of the step a → b for `asset`: total falls, matchable rises."""
        sk = (id(a), asset)
        got = steps.get(sk)
        if got is None:
            falls = rises = 0
            a_get, b_get = a.get, b.get
            for k, rise_counts in self.pool.get(asset, ()):
                x, y = a_get(k), b_get(k)  # amounts are ints: None only when absent
                if x is None or y is None:
                    continue
                if y < x:
                    falls += x - y
                elif rise_counts:
                    rises += y - x
            got = steps[sk] = (falls, rises)
        return got


class _Plan:
    """One list of watch keys (a reading's, in its order): where each hot/warm key and
    each asset's pool wallets stand in it."""

    __slots__ = ("layout", "keys", "pools")

    def __init__(self, layout: tuple[tuple[str, str], ...], bound: DrainBound):
        at = {k: i for i, k in enumerate(layout)}
        self.layout = layout
        self.keys = [(k, st, at[k], k[1]) for k, st in bound.state.items() if k in at]
        self.pools = {a: [(at[k], rises) for k, rises in pool if k in at]
                      for a, pool in bound.pool.items()}

    def step(self, asset: str, a: list[int], b: list[int]) -> tuple[int, int]:
        """`DrainBound._step` between two readings with this plan's keys, by position."""
        falls = rises = 0
        for j, rise_counts in self.pools.get(asset, ()):
            x, y = a[j], b[j]
            if y < x:
                falls += x - y
            elif rise_counts:
                rises += y - x
        return falls, rises


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class _Series:
    """The readings of the longest window, oldest first; maxima by scanning, for the rare
    window that the cheap bound does not rule out."""

    __slots__ = ("times", "values", "head")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.values: list[int] = []
        self.head = 0

    def forget(self, oldest: int) -> None:
        """Now and then (the caller appends to `times` and `values`), drop the readings
        before `oldest`."""
        self.head = bisect_left(self.times, oldest, self.head)
        if self.head * 2 > len(self.times):
            del self.times[:self.head], self.values[:self.head]
            self.head = 0

    def since(self, start: int) -> int:
        """The maximum of the readings at or after `start` (the latest is always one)."""
        return max(self.values[bisect_left(self.times, start, self.head):])


class _KeyState:
    """One hot/warm wallet and asset: its last reading, C (the running sum of internal
    outflows), its readings (highs) and a monotonic queue (times rising, values falling)
    of v + C over the longest window. Every suffix's maximum is in that queue: the first
    entry at or after the suffix's start, found by bisection, so shorter windows need no
    queue of their own."""

    __slots__ = ("v", "last", "cum", "highs", "times", "values", "head")

    def __init__(self) -> None:
        self.v: int | None = None  # the last reading
        self.last: Mapping[tuple[str, str], int] | None = None  # the reading it is in
        self.cum = 0
        self.highs = _Series()
        self.times: list[int] = []
        self.values: list[int] = []
        self.head = 0

    def forget(self, oldest: int) -> None:
        """Drop the queue's entries before `oldest` (compacting now and then)."""
        self.head = bisect_left(self.times, oldest, self.head)
        if self.head > 4096 and self.head * 2 > len(self.times):
            del self.times[:self.head], self.values[:self.head]
            self.head = 0
