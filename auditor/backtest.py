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
from .backtest_gate import StateGate
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
    base = rules.RuleInput(now=start, exchange_id=settings.exchange.id, rules=rule_settings,
                           wallets=settings.wallets, assets=settings.assets,
                           poll_every=settings.schedule.poll_every)
    state = _Replay(settings, base, StateGate(settings, rule_settings), out)
    for c in cycles:
        may_fire = bound.update(c.taken_at, c.watch) if c.watch is not None else {}
        if start <= c.taken_at < end and c.status != "failed":
            drain_assets = _drain_assets(may_fire, state.open_alerts, settings.exchange.id)
            state.cycle(c, history, drain_assets)
        if c.watch is not None:
            history.append((c.taken_at, c.watch))
        while history and history[0][0] < c.taken_at - longest:
            history.popleft()
    return out


class _Replay:
    """The alert lifecycle over the evaluated cycles, each exposure rule run in full only
    where `StateGate` says its statuses changed (the others cannot make a transition).

    A rule skipped on the previous evaluated cycle has stale facts (value, summary) on
    its open alerts; before it runs again they are refreshed from that cycle, exactly as
    running it there would have left them (same severity: the facts only)."""

    def __init__(self, settings: Settings, base: rules.RuleInput, gate: StateGate,
                 out: BacktestResult):
        self.settings, self.base, self.gate, self.out = settings, base, gate, out
        self.open_alerts: dict[str, Alert] = {}
        self.prev: tuple[StoredCycle, Mapping[str, Any] | None] | None = None
        self.prev_sig: tuple[object, ...] | None = None
        self.behind: frozenset[int] = frozenset()  # rules skipped on the previous cycle

    def cycle(self, c: StoredCycle, history: deque[Point], drain_assets: set[str]) -> None:
        payload: Mapping[str, Any] | None = None if c.exposure is None else json.loads(c.exposure)
        partial = c.status != "ok"
        sig = (partial, self.gate.statuses(payload, c.taken_at))
        prev = self.prev_sig
        if sig[1] is None or prev is None or prev[1] is None or prev[0] != partial:
            run = _ALL
        else:
            run = tuple(i for i in _ALL if sig[1][i] != prev[1][i])  # type: ignore[index]
        stale = [i for i in run if i in self.behind and self._has_open(i)]
        if stale and self.prev is not None:
            self._refresh(stale)
        if run or drain_assets:
            inp = self._input(c, payload)
            evaluations = [_EXPOSURE_RULES[i](inp) for i in run]
            if drain_assets and c.watch is not None:
                self.out.drain_runs += 1
                watch = {k: v for k, v in c.watch.items() if k[1] in drain_assets}
                evaluations.append(rules.hot_drain(replace(inp, watch_now=watch,
                                                           watch_history=list(history))))
            self.out.transitions.extend(self._advance(evaluations, c.taken_at, partial))
        self.out.cycles += 1
        self.prev, self.prev_sig = (c, payload), sig
        self.behind = frozenset(_ALL).difference(run)

    def _input(self, c: StoredCycle, payload: Mapping[str, Any] | None) -> rules.RuleInput:
        exposure = None if payload is None else exposure_from_json(
            payload, self.settings.assets, self.base.rules.scope_classes, c.taken_at,
            self.settings.prices.max_age)
        prices = {} if exposure is None else {s: ae.price for s, ae in exposure.assets.items()}
        return replace(self.base, now=c.taken_at, exposure=exposure, prices=prices)

    def _has_open(self, i: int) -> bool:
        name = BACKTEST_RULES[i]
        return any(a.rule == name for a in self.open_alerts.values())

    def _refresh(self, stale: list[int]) -> None:
        """Run the `stale` rules on the previous cycle: their open alerts take its facts."""
        c, payload = self.prev  # type: ignore[misc]
        inp = self._input(c, payload)
        made = self._advance([_EXPOSURE_RULES[i](inp) for i in stale], c.taken_at,
                             c.status != "ok")
        assert not made, "statuses unchanged since the rule last ran: no transition"

    def _advance(self, evaluations: list[Evaluation], now: datetime,
                 partial: bool) -> list[Transition]:
        update = alerting.advance(evaluations, self.open_alerts, now, self.settings.exchange.id,
                                  0, partial)
        for a in update.alerts:
            if a.state == "firing":
                self.open_alerts[a.fingerprint] = a
            else:
                self.open_alerts.pop(a.fingerprint, None)
        return update.transitions


_ALL: tuple[int, ...] = tuple(range(len(_EXPOSURE_RULES)))
