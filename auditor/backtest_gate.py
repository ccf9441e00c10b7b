"""Backtest: which exposure rules can change an alert this cycle? (`StateGate`)

The six exposure rules are state rules: the alert lifecycle only fires, escalates
or resolves when a subject's status changes between two evaluated cycles, the
status being: not covered, covered without a finding, or a finding of a given
severity. So the replay runs a rule in full only on cycles where that status
tuple differs from the previous evaluated cycle's; elsewhere the rule would only
refresh the facts (value, summary) of alerts already firing, which the replay
refreshes when they matter (before the next change, see `backtest.replay`).

The statuses come straight from the stored JSON's whole-unit strings, compared
with the rules' own threshold factors through the same Decimal operations in the
rules' precision. The context traps `Inexact`: whenever an operation would round,
`statuses` gives up (None) and the replay runs every rule in full, so each status
here equals the one the rule would derive.

The replay asks for a run of cycles at once (`batch`): when they all hold the same
configured assets with string figures (the usual case), each figure is parsed and
compared column by column, one asset's figure over all the cycles in C loops
(`map`), instead of a Python step per figure; any other run, or any operation that
would round, goes cycle by cycle through `statuses`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from itertools import chain, repeat
from operator import add, gt, itemgetter, lt, mul
from typing import Any

from . import units
from .settings import RuleSettings, Settings, Threshold
from .store_codec import parse_time

__all__ = ["StateGate"]

# the rules' precision (units.EXACT), failing instead of rounding
_GATE = Context(prec=units.EXACT.prec, rounding=ROUND_HALF_EVEN,
                traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_LEVELS: tuple[tuple[int, str], ...] = ((3, "critical"), (2, "warning"))
OFF, OK = 0, 1  # not covered; covered without a finding (2 warning, 3 critical)
_D = Decimal
_FIELDS = ("hot", "warm", "deposit", "cold", "online", "guarantee", "liabilities")
Levels = tuple[tuple[int, Decimal], ...]
Statuses = tuple[object, ...]
Cycle = tuple[Statuses, ...]  # one status tuple per rule
# an asset's figures as `_columns` reads them
_ROW = itemgetter("online", "liabilities", "hot", "warm", "deposit", "cold", "guarantee", "price",
                  "price_as_of")


def _factors(t: Threshold | None, offset: Decimal | None = None,
             scale: Decimal | None = None) -> Levels:
    """(code, factor) per level, critical first, as `ceiling_level`/`floor_level` compute them."""
    if t is None:
        return ()
    out = []
    for code, sev in _LEVELS:
        limit = getattr(t, sev)
        if limit is None:
            continue
        with localcontext(units.EXACT):
            out.append((code, limit + offset if offset is not None else limit * scale))
    return tuple(out)


class StateGate:
    """Per cycle, each exposure rule's subject statuses (see the module docstring)."""

    def __init__(self, settings: Settings, rs: RuleSettings):
        self.rs = rs
        self.max_age = settings.prices.max_age
        self.assets = settings.assets
        scope = rs.scope_classes
        self.in_scope = {s: scope is None or a.cls in scope for s, a in settings.assets.items()}
        ahr = rs.asset_hot_ratio
        self.ahr = {s: _factors(ahr.for_asset(s), offset=Decimal(0)) for s in settings.assets
                    } if ahr is not None else None
        self.hr = _factors(rs.hot_ratio, offset=Decimal(0)) if rs.hot_ratio is not None else None
        gc, rc = rs.guarantee_coverage, rs.reserve_coverage
        self.gc = None if gc is None else _factors(gc.threshold, scale=1 - gc.tolerance)
        self.rc = None if rc is None else _factors(rc.threshold, scale=1 - rc.tolerance)
        self.cm = None if rs.commingling is None else _factors(rs.commingling, offset=Decimal(1))
        self.hf = rs.hot_floor
        self.hf_code = 0 if self.hf is None else (3 if self.hf.severity == "critical" else 2)
        # per asset: its asset_hot_ratio levels, in hot_ratio's scope, its hot floor
        self.per_asset = {s: (None if self.ahr is None else self.ahr[s], self.in_scope[s],
                              None if self.hf is None else self.hf.assets.get(s))
                          for s in settings.assets}
        self._slow_figures: dict[str, Decimal] = {}
        self._fresh: dict[str, bool] = {}  # price time → fresh at this cycle's time
        self._prices: dict[str, Decimal] = {}  # prices repeat across assets and cycles
        self._memo = _Memo(_D)  # `_columns`' figures that repeat (warm, cold, guarantee)
        self._price_memo = _Memo(units.parse_decimal)  # and its prices

    def statuses(self, exposure: Mapping[str, Any] | None, taken_at: datetime
                 ) -> tuple[Statuses, ...] | None:
        """One status tuple per rule of `backtest._EXPOSURE_RULES` (hot_ratio first);
        None when some figure cannot be compared exactly here (then run every rule)."""
        if exposure is None:
            return ((), (), (), (), (), ())
        self._fresh.clear()
        try:
            with localcontext(_GATE):
                return self._statuses(exposure, taken_at)
        except (ArithmeticError, TypeError, ValueError, AttributeError):
            return None

    def batch(self, exposures: Sequence[Mapping[str, Any] | None], times: Sequence[datetime]
              ) -> list[Cycle | None]:
        """`statuses` of each of a run of cycles (see the module docstring)."""
        try:
            with localcontext(_GATE):
                got = self._columns(exposures, times)
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError):
            got = None
        if got is not None:
            return list(got)
        if len(exposures) <= 8:  # something unusual: cycle by cycle decides
            return [self.statuses(e, t) for e, t in zip(exposures, times)]
        half = len(exposures) // 2  # the usual cycles around it still go by column
        return (self.batch(exposures[:half], times[:half])
                + self.batch(exposures[half:], times[half:]))

    def _columns(self, exposures: Sequence[Any], times: Sequence[datetime]) -> list[Cycle] | None:
        """The statuses of cycles holding the same configured assets (None otherwise), each
        figure's column parsed and compared at once: the operations of `_statuses`, all
        levels of a rule compared (where `_statuses` stops at the first that holds, the
        result is the same, and a rounding operation sends the run cycle by cycle)."""
        if not exposures:
            return []
        maps = [e["assets"] for e in exposures]  # a cycle without exposure: TypeError
        syms = tuple(maps[0])
        basis = exposures[0].get("basis", "liabilities")
        if not syms or any(type(m) is not dict or tuple(m) != syms for m in maps) or any(
                e.get("basis", "liabilities") != basis for e in exposures):
            return None
        cfgs = [self.per_asset.get(s) for s in syms]
        n = len(maps)
        rules: tuple[list[list[int]], ...] = ([], [], [], [], [])  # ahr, gc, rc, cm, hf per asset
        ahr, gc, rc, cm, hf = rules
        rc_levels = self.rc if basis == "liabilities" else None
        cm_levels = self.cm if basis == "liabilities" else None
        ov: list[Decimal] = [Decimal(0)] * n
        cv: list[Decimal] = [Decimal(0)] * n
        as_of: list[tuple[object, ...]] = []
        memo, prices = self._memo.__getitem__, self._price_memo.__getitem__
        for sym, cfg in zip(syms, cfgs):
            if cfg is None:
                return None  # an asset no longer configured
            ahr_levels, in_scope, floor = cfg
            x_n, x_l, x_h, x_w, x_d, x_c, x_g, x_p, x_t = zip(*map(_ROW, map(itemgetter(sym), maps)))
            "".join(chain(x_n, x_l, x_h, x_d))  # TypeError unless all are strings
            online, owed = list(map(_D, x_n)), list(map(_D, x_l))
            co = list(map(add, map(add, map(_D, x_h), map(memo, x_w)), map(_D, x_d)))
            if ahr_levels is not None:
                ahr.append(_codes(gt, online, owed, ahr_levels))
            if self.gc is not None:
                g = list(map(memo, x_g))
                gc.append(_codes(lt, g, online, self.gc) if in_scope else [OFF] * n)
            if rc_levels is not None or cm_levels is not None:
                held = list(map(add, co, map(memo, x_c)))
                if rc_levels is not None:
                    rc.append(_codes(lt, held, owed, rc_levels))
                if cm_levels is not None:
                    cm.append(_codes(gt, held, owed, cm_levels))
            if self.hf is not None:
                hf.append([OK] * n if floor is None else list(
                    map((OK, self.hf_code).__getitem__, map(lt, co, repeat(floor)))))
            if self.hr is not None and in_scope:
                price = list(map(prices, x_p))
                ov = list(map(add, ov, map(mul, online, price)))
                cv = list(map(add, cv, map(mul, owed, price)))
                as_of.append(x_t)
        hr: list[Statuses] = [()] * n
        if self.hr is not None:
            codes = _codes(gt, ov, cv, self.hr)
            hr = [(code,) if fresh and not (c == 0 and o != 0) else ()
                  for code, fresh, o, c in zip(codes, self._fresh_cycles(times, as_of), ov, cv)]
        per_cycle = [list(zip(*r)) if r else [()] * n for r in rules]
        return list(zip(hr, *per_cycle))

    def _fresh_cycles(self, times: Sequence[datetime], as_of: list[tuple[object, ...]]
                      ) -> list[bool]:
        """Per cycle, whether every in-scope price is fresh (as `_fresh_price`)."""
        max_age = self.max_age
        if max_age is None or not as_of:
            return [True] * len(times)
        out = []
        for now, texts in zip(times, zip(*as_of)):
            fresh = True
            for text in set(texts):  # the assets of a cycle share one time
                if text and not (now - parse_time(text)).total_seconds() <= max_age:
                    fresh = False
            out.append(fresh)
        return out

    def _statuses(self, exposure: Mapping[str, Any], taken_at: datetime
                  ) -> tuple[Statuses, ...]:
        ahr: list[int] = []
        gc: list[int] = []
        rc: list[int] = []
        cm: list[int] = []
        hf: list[int] = []
        liab_basis = exposure.get("basis", "liabilities") == "liabilities"
        rc_on, cm_on = self.rc is not None and liab_basis, self.cm is not None and liab_basis
        ov: Decimal | None = Decimal(0)
        cv = Decimal(0)
        hr_on = self.hr is not None
        per_asset, slow = self.per_asset, self._slow_figures
        for sym, a in exposure.get("assets", {}).items():
            cfg = per_asset.get(sym)
            if cfg is None:
                continue
            ahr_levels, in_scope, floor = cfg
            get = a.get
            x = get("online")
            online = _D(x) if type(x) is str else _dec(x)
            x = get("liabilities")
            owed = _D(x) if type(x) is str else _dec(x)
            x, y, z = get("hot"), get("warm"), get("deposit")
            if type(x) is str and type(y) is str and type(z) is str:
                co: Decimal | None = _D(x) + (slow.get(y) or self._slow(y)) + _D(z)
            else:
                hot, warm, dep = _dec(x), _dec(y), _dec(z)
                co = None if hot is None or warm is None or dep is None else hot + warm + dep
            if ahr_levels is not None:
                ahr.append(OFF if online is None or owed is None
                           else _above(online, owed, ahr_levels))
            if self.gc is not None:
                x = get("guarantee")
                g = (slow.get(x) or self._slow(x)) if type(x) is str else _dec(x)
                gc.append(OFF if not in_scope or g is None or online is None
                          else _below(g, online, self.gc))
            if rc_on or cm_on:
                x = get("cold")
                cold = (slow.get(x) or self._slow(x)) if type(x) is str else _dec(x)
                held = None if co is None or cold is None else co + cold
                if rc_on:
                    rc.append(OFF if held is None or owed is None
                              else _below(held, owed, self.rc))  # type: ignore[arg-type]
                if cm_on:
                    cm.append(OFF if held is None or owed is None
                              else _above(held, owed, self.cm))  # type: ignore[arg-type]
            if self.hf is not None:
                hf.append(OFF if co is None else OK if floor is None or not co < floor
                          else self.hf_code)
            if ov is not None and hr_on and in_scope:
                price = self._fresh_price(a, taken_at)
                if online is None or owed is None or price is None:
                    ov = None
                else:
                    ov += online * price
                    cv += owed * price
        hr: Statuses = ()
        if hr_on and ov is not None and not (cv == 0 and ov != 0):
            hr = (_above(ov, cv, self.hr),)  # type: ignore[arg-type]
        return hr, tuple(ahr), tuple(gc), tuple(rc), tuple(cm), tuple(hf)

    def _slow(self, text: str) -> Decimal:
        """Decimal of a figure that changes slowly (warm, cold, guarantee), kept for reuse."""
        if len(self._slow_figures) > 4096:
            self._slow_figures.clear()
        d = self._slow_figures[text] = _D(text)
        return d

    def _fresh_price(self, a: Mapping[str, Any], taken_at: datetime) -> Decimal | None:
        """The asset's price when present and fresh (as `price_is_fresh`), else None."""
        p = a.get("price")
        if p is None:
            return None
        if self.max_age is not None:
            text = a.get("price_as_of")
            if text:
                fresh = self._fresh.get(text)  # the assets of a cycle share one time
                if fresh is None:
                    fresh = self._fresh[text] = (
                        taken_at - parse_time(text)).total_seconds() <= self.max_age
                if not fresh:
                    return None
        value = self._prices.get(p) if type(p) is str else None
        if value is None:
            value = units.parse_decimal(p)
            if type(p) is str:
                if len(self._prices) > 4096:
                    self._prices.clear()
                self._prices[p] = value
        return value


class _Memo(dict[str, Decimal]):
    """Text → Decimal through `parse`, strings only (TypeError otherwise), bounded: a
    lookup instead of a parse for figures that repeat from cycle to cycle."""

    __slots__ = ("parse",)

    def __init__(self, parse: Callable[[str], Decimal]):
        super().__init__()
        self.parse = parse

    def __missing__(self, text: str) -> Decimal:
        if type(text) is not str:
            raise TypeError("not a stored figure string")
        if len(self) > 4096:
            self.clear()
        d = self[text] = self.parse(text)
        return d


def _codes(op: Callable[[Decimal, Decimal], bool], nums: list[Decimal], dens: list[Decimal],
           levels: Levels) -> list[int]:
    """Per pair, the code of the first level (critical first) with op(num, den × factor),
    else OK: `_above` (op `gt`) or `_below` (`lt`) over columns."""
    if not levels:
        return [OK] * len(nums)
    (c1, f1), *rest = levels
    hits = map(op, nums, map(mul, dens, repeat(f1)))
    if not rest:
        return list(map((OK, c1).__getitem__, hits))
    (c2, f2), = rest
    first = list(hits)
    second = map(op, nums, map(mul, dens, repeat(f2)))
    # 2 × first + second indexes (neither, second only, first, first and second)
    return list(map((OK, c2, c1, c1).__getitem__, map(add, map(add, first, first), second)))


def _dec(text: object) -> Decimal | None:
    if type(text) is str:
        return Decimal(text)
    if text is None:
        return None
    raise TypeError("not a stored amount string")


def _above(num: Decimal, den: Decimal, levels: Levels) -> int:
    """`ceiling_level`'s verdict: the worst level with num > den × factor."""
    for code, factor in levels:
        if num > den * factor:
            return code
    return OK


def _below(num: Decimal, den: Decimal, levels: Levels) -> int:
    """`floor_level`'s verdict: the worst level with num < den × factor."""
    for code, factor in levels:
        if num < den * factor:
            return code
    return OK
