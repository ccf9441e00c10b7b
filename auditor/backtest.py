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
`backtest_drain.DrainBound`) and the wallet's alert is not already open at that severity:
elsewhere the rule cannot fire or escalate, so the transitions are the same.

The six exposure rules run only on cycles where `backtest_gate.StateGate`
(exact statuses from the stored figures) sees a subject's status change
(`_Replay`); their open alerts' figures are brought up to date from the previous
cycle before such a run, so a resolve shows the same value and summary.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from . import alerting, rules
from .backtest_drain import DrainBound
from .backtest_gate import StateGate
from .exposure_replay import exposure_from_json
from .model import SEVERITY_RANK, Alert, Evaluation, Transition
from .settings import RuleSettings, Settings
from .store_backtest import StoredCycle

try:
    import orjson as _orjson
except ImportError:  # optional: json gives the same objects, only slower
    _orjson = None  # type: ignore[assignment]

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
    bound = DrainBound(settings, rule_settings)
    longest = timedelta(seconds=warmup(rule_settings))
    history: deque[Point] = deque()
    base = rules.RuleInput(now=start, exchange_id=settings.exchange.id, rules=rule_settings,
                           wallets=settings.wallets, assets=settings.assets,
                           poll_every=settings.schedule.poll_every)
    gate = StateGate(settings, rule_settings)
    state = _Replay(settings, base, out)
    source = iter(cycles)
    while batch := list(islice(source, _BATCH)):
        # the gate judges the batch's evaluated cycles at once (column by column), and
        # the bound feeds on its readings key by key
        judged = [c for c in batch if start <= c.taken_at < end and c.status != "failed"]
        payloads = [None if c.exposure is None else _loads(c.exposure) for c in judged]
        verdicts = iter(zip(payloads, gate.batch(payloads, [c.taken_at for c in judged])))
        fires = bound.update_all([(c.taken_at, c.watch) for c in batch])
        for c, may_fire in zip(batch, fires):
            if start <= c.taken_at < end and c.status != "failed":
                payload, statuses = next(verdicts)
                drain_assets = _drain_assets(may_fire, state.open_alerts, settings.exchange.id)
                state.cycle(c, payload, statuses, history, drain_assets)
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

    def __init__(self, settings: Settings, base: rules.RuleInput, out: BacktestResult):
        self.settings, self.base, self.out = settings, base, out
        self.open_alerts: dict[str, Alert] = {}
        self.prev: tuple[StoredCycle, Mapping[str, Any] | None] | None = None
        self.prev_sig: tuple[object, ...] | None = None
        self.behind: frozenset[int] = frozenset()  # rules skipped on the previous cycle

    def cycle(self, c: StoredCycle, payload: Mapping[str, Any] | None,
              statuses: tuple[object, ...] | None, history: deque[Point],
              drain_assets: set[str]) -> None:
        """One evaluated cycle: its stored exposure and the gate's statuses of it."""
        partial = c.status != "ok"
        sig = (partial, statuses)
        prev = self.prev_sig
        if sig[1] is None or prev is None or prev[1] is None or prev[0] != partial:
            run = _ALL
        elif sig == prev:
            run = ()  # the common case: nothing changed
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
        self.behind = _ALL_SET.difference(run) if run else _ALL_SET

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
_BATCH = 32  # cycles judged by the gate at once (their decoded exposures stay in cache)
_ALL_SET = frozenset(_ALL)


def _loads(text: str) -> Any:
    """The stored JSON, through orjson when installed (same objects for what the auditor
    stores; anything it refuses, e.g. NaN or huge integers, goes through `json`)."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)
