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
of one-minute cycles fast, a cycle runs it only for the assets where some hot or
warm wallet fell, from the window's highest reading, by more than a window's
`drop` (sliding-window maxima): internal transfers only lower a fall, so the
rule cannot fire elsewhere, and its result is the same.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from . import alerting, rules, units
from .exposure_replay import exposure_from_json, prices_from_json
from .model import Alert, Evaluation, Transition
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


class _Falls:
    """Per hot/warm wallet, asset and drain window: the window's highest watch reading
    (monotonic deques), to tell when hot_drain can possibly fire."""

    def __init__(self, settings: Settings, rule_settings: RuleSettings):
        self.windows = [(w.window, w.drop) for w in rule_settings.hot_drain.windows]
        self.keys = [(w.name, a) for w in settings.wallets if w.tier in ("hot", "warm")
                     for a in w.assets if a in settings.assets]
        self.highs: dict[tuple[tuple[str, str], int], deque[tuple[datetime, int]]] = {
            (k, i): deque() for k in self.keys for i in range(len(self.windows))}

    def candidates(self, now: datetime, watch: Mapping[tuple[str, str], int]) -> set[str]:
        """Assets with a wallet whose fall from a window's high exceeds that window's drop."""
        out: set[str] = set()
        for key in self.keys:
            v = watch.get(key)
            if v is None:
                continue
            for i, (window, drop) in enumerate(self.windows):
                q = self.highs[(key, i)]
                while q and q[-1][1] <= v:
                    q.pop()
                q.append((now, v))
                start = now - timedelta(seconds=window)
                while q[0][0] < start:
                    q.popleft()
                high = q[0][1]
                if high > v and key[1] not in out:
                    with localcontext(units.EXACT):
                        if Decimal(high - v) > Decimal(high) * drop:
                            out.add(key[1])
        return out


def replay(settings: Settings, rule_settings: RuleSettings, cycles: Iterable[StoredCycle],
           start: datetime, end: datetime) -> BacktestResult:
    """Re-evaluate `cycles` (time order; those before `start` only feed hot_drain's
    history) with `rule_settings`; the transitions taken in [start, end)."""
    out = BacktestResult()
    falls = _Falls(settings, rule_settings)
    longest = timedelta(seconds=warmup(rule_settings))
    history: deque[Point] = deque()
    open_alerts: dict[str, Alert] = {}
    base = rules.RuleInput(now=start, exchange_id=settings.exchange.id, rules=rule_settings,
                           wallets=settings.wallets, assets=settings.assets,
                           poll_every=settings.schedule.poll_every)
    for c in cycles:
        drain_assets = falls.candidates(c.taken_at, c.watch) if c.watch is not None else set()
        if start <= c.taken_at < end and c.status != "failed":
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
    prices = {} if exposure_json is None else prices_from_json(exposure_json, c.taken_at)
    inp = replace(base, now=c.taken_at, exposure=exposure, prices=prices)
    evaluations = [rule(inp) for rule in _EXPOSURE_RULES]
    if drain_assets and c.watch is not None:
        out.drain_runs += 1
        watch = {k: v for k, v in c.watch.items() if k[1] in drain_assets}
        evaluations.append(rules.hot_drain(replace(inp, watch_now=watch,
                                                   watch_history=list(history))))
    return evaluations
