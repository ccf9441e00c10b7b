"""Backtest: replay the stored cycles of a period through another `rules` block.

The rules whose thresholds live in `rules` are re-run on what each cycle
stored (its exposure JSON and watch-view totals): `hot_ratio`,
`asset_hot_ratio`, `guarantee_coverage`, `reserve_coverage`, `commingling`,
`hot_floor` and `hot_drain`, through the same pure `rules` and `alerting`
code as the daemon, cycle by cycle in time order. Nothing is written.

Differences from the live run, on purpose: no repeats (only firing,
escalated and resolved are shown); alerts open when the period starts show as
firing at its first cycle; an event alert (`hot_drain`) stays open once fired,
as if nobody resolved it; failed cycles decide nothing (as live).

`hot_drain` looks back over its longest window at every cycle. To keep a month
of one-minute cycles fast, a cycle runs it only for the assets where an upper
bound of some hot or warm wallet's fall exceeds a window's `drop` (see
`_DrainBound`) and the wallet's alert is not already open at that severity:
elsewhere the rule cannot fire or escalate, so the transitions are the same.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from . import alerting, rules
from .exposure_replay import exposure_from_json
from .model import SEVERITY_RANK, Alert, Evaluation, Transition
from .rules_flow import _StepPool  # the rule's own internal-transfer matching
from .settings import RuleSettings, Settings
from .store_backtest import StoredCycle

__all__ = ["BACKTEST_RULES", "BacktestResult", "replay", "warmup"]

BACKTEST_RULES: tuple[str, ...] = ("hot_ratio", "asset_hot_ratio", "guarantee_coverage",
                                   "reserve_coverage", "commingling", "hot_floor", "hot_drain")
_EXPOSURE_RULES = (rules.hot_ratio, rules.asset_hot_ratio, rules.guarantee_coverage,
                   rules.reserve_coverage, rules.commingling, rules.hot_floor)

Point = tuple[datetime, Mapping[tuple[str, str], int]]


@dataclass
class BacktestResult:
    transitions: list[Transition] = field(default_factory=list)
    cycles: int = 0  # cycles of the period replayed
    drain_runs: int = 0  # cycles where hot_drain had to run


def warmup(rule_settings: RuleSettings) -> int:
    """Seconds of history before the period that hot_drain needs."""
    return max((w.window for w in rule_settings.hot_drain.windows), default=0)


class _DrainBound:
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
        self.wallets = settings.wallets
        self.windows = rule_settings.hot_drain.windows
        self.drops = [w.drop.as_integer_ratio() for w in self.windows]
        self.keys = [(w.name, a) for w in settings.wallets if w.tier in ("hot", "warm")
                     for a in w.assets if a in settings.assets]
        self.cum = dict.fromkeys(self.keys, 0)
        self.last: dict[tuple[str, str], Mapping[tuple[str, str], int]] = {}
        self.highs = {(k, i): deque() for k in self.keys for i in range(len(self.windows))}
        self.tops = {(k, i): deque() for k in self.keys for i in range(len(self.windows))}

    def update(self, now: datetime, watch: Mapping[tuple[str, str], int]
               ) -> dict[tuple[str, str], set[str]]:
        """Feed one reading; (wallet, asset) → severities of the windows that may fire."""
        out: dict[tuple[str, str], set[str]] = {}
        pools: dict[int, _StepPool] = {}
        for key in self.keys:
            v = watch.get(key)
            if v is None:
                continue
            prev = self.last.get(key)
            if prev is not None:
                pool = pools.get(id(prev))
                if pool is None:
                    pool = pools[id(prev)] = _StepPool(self.wallets, [(now, prev), (now, watch)])
                self.cum[key] += pool.internal(0, 1, key[1], prev[key] - v)
            self.last[key] = watch
            vc = v + self.cum[key]
            for i, win in enumerate(self.windows):
                high = _push(self.highs[(key, i)], now, v, win.window)
                top = _push(self.tops[(key, i)], now, vc, win.window)
                bound = top - vc
                num, den = self.drops[i]
                if bound > 0 and bound * den > high * num:  # bound > high × drop, exactly
                    out.setdefault(key, set()).add(win.severity)
        return out


def _push(q: deque[tuple[datetime, int]], now: datetime, v: int, window: int) -> int:
    """Add (now, v) to a monotonic deque of the window's maximum; return that maximum."""
    while q and q[-1][1] <= v:
        q.pop()
    q.append((now, v))
    start = now - timedelta(seconds=window)
    while q[0][0] < start:
        q.popleft()
    return q[0][1]


def _drain_assets(may_fire: Mapping[tuple[str, str], set[str]], open_alerts: Mapping[str, Alert],
                  exchange_id: str) -> set[str]:
    """Assets where hot_drain can change something: a window may fire and the wallet's
    alert is not already open at that severity or higher (an event alert only escalates)."""
    out: set[str] = set()
    for (wallet, sym), severities in may_fire.items():
        cur = open_alerts.get(alerting.fingerprint(exchange_id, "hot_drain", f"{wallet}/{sym}"))
        if cur is None or any(SEVERITY_RANK[s] > SEVERITY_RANK[cur.severity] for s in severities):
            out.add(sym)
    return out


def replay(settings: Settings, rule_settings: RuleSettings, cycles: Iterable[StoredCycle],
           start: datetime, end: datetime) -> BacktestResult:
    """Re-evaluate `cycles` (time order; those before `start` only feed hot_drain's
    history) with `rule_settings`; the transitions taken in [start, end)."""
    out = BacktestResult()
    bound = _DrainBound(settings, rule_settings)
    longest = timedelta(seconds=warmup(rule_settings))
    history: deque[Point] = deque()
    open_alerts: dict[str, Alert] = {}
    base = rules.RuleInput(now=start, exchange_id=settings.exchange.id, rules=rule_settings,
                           wallets=settings.wallets, assets=settings.assets,
                           poll_every=settings.schedule.poll_every)
    for c in cycles:
        may_fire = bound.update(c.taken_at, c.watch) if c.watch is not None else {}
        if start <= c.taken_at < end and c.status != "failed":
            drain_assets = _drain_assets(may_fire, open_alerts, settings.exchange.id)
            evaluations = _evaluate(settings, base, c, history, drain_assets, out)
            update = alerting.advance(evaluations, open_alerts, c.taken_at, settings.exchange.id,
                                      0, c.status != "ok")
            for a in update.alerts:
                if a.state == "firing":
                    open_alerts[a.fingerprint] = a
                else:
                    open_alerts.pop(a.fingerprint, None)
            out.transitions.extend(update.transitions)
            out.cycles += 1
        if c.watch is not None:
            history.append((c.taken_at, c.watch))
        while history and history[0][0] < c.taken_at - longest:
            history.popleft()
    return out


def _evaluate(settings: Settings, base: rules.RuleInput, c: StoredCycle,
              history: deque[Point], drain_assets: set[str], out: BacktestResult) -> list[Evaluation]:
    exposure_json: Mapping[str, Any] | None = None if c.exposure is None else json.loads(c.exposure)
    exposure = None if exposure_json is None else exposure_from_json(
        exposure_json, settings.assets, base.rules.scope_classes, c.taken_at,
        settings.prices.max_age)
    prices = {} if exposure is None else {s: ae.price for s, ae in exposure.assets.items()}
    inp = replace(base, now=c.taken_at, exposure=exposure, prices=prices)
    evaluations = [rule(inp) for rule in _EXPOSURE_RULES]
    if drain_assets and c.watch is not None:
        out.drain_runs += 1
        watch = {k: v for k, v in c.watch.items() if k[1] in drain_assets}
        evaluations.append(rules.hot_drain(replace(inp, watch_now=watch,
                                                   watch_history=list(history))))
    return evaluations
