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
"""

from __future__ import annotations

from collections.abc import Mapping
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
