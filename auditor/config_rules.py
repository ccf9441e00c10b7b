"""rules: a regulatory preset's starting values, then the overrides under `rules`.

Presets choose only the ratio and coverage rules; every other rule is on in
every preset at the same defaults (DESIGN.md, "Rules").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from .config_ctx import SEVERITIES, Ctx
from .config_flows import (
    DEFAULT_UNKNOWN_DESTINATION,
    read_large_outflow,
    read_unknown_destination,
)
from .config_yaml import index, join
from .settings import (
    AssetRatioRule,
    CoverageRule,
    DrainWindow,
    HotDrainRule,
    HotFloorRule,
    RuleSettings,
    StaleDataRule,
    Threshold,
)

__all__ = ["PRESETS", "preset_rules", "read_rules"]

PRESETS = ("jp-fsa", "hk-sfc", "bahrain-cbb", "nydfs", "none")
_ALWAYS_ON = ("cold_outflow", "config_changed", "daily_record", "delivery_failed",
              "unmatched_outflow", "sanctioned_counterparty", "safe_changed")
_OFF = (None, False, "off")
_KEYS = ("preset", "hot_ratio", "asset_hot_ratio", "guarantee_coverage", "reserve_coverage",
         "commingling", "hot_floor", "hot_drain", "stale_data", "large_outflow",
         "unknown_destination") + _ALWAYS_ON
_PCT = Decimal("0.01")


def _full_coverage() -> CoverageRule:
    return CoverageRule(threshold=Threshold(critical=Decimal(1)))


def _default_drain() -> HotDrainRule:
    return HotDrainRule(min_value=Decimal(1000000), windows=(
        DrainWindow(window=600, drop=20 * _PCT, severity="critical"),
        DrainWindow(window=7200, drop=30 * _PCT, severity="critical"),
        DrainWindow(window=86400, drop=50 * _PCT, severity="warning"),
    ))


def preset_rules(preset: str, poll_every: int = 60) -> RuleSettings:
    """A preset's values before overrides (DESIGN.md preset table)."""
    base = RuleSettings(
        preset=preset, scope_classes=None, hot_ratio=None, asset_hot_ratio=None,
        guarantee_coverage=None, reserve_coverage=None, commingling=None, hot_floor=None,
        hot_drain=_default_drain(), stale_data=StaleDataRule(max_age=3 * poll_every),
        large_outflow=None, unknown_destination=DEFAULT_UNKNOWN_DESTINATION)
    commingling = Threshold(warning=Decimal("0.005"))
    if preset == "jp-fsa":
        return dataclasses.replace(
            base, scope_classes=frozenset({"crypto"}),
            hot_ratio=Threshold(warning=4 * _PCT, critical=5 * _PCT),
            guarantee_coverage=_full_coverage(), reserve_coverage=_full_coverage(),
            commingling=commingling)
    if preset == "hk-sfc":
        return dataclasses.replace(base, hot_ratio=Threshold(critical=2 * _PCT),
                                   reserve_coverage=_full_coverage(), commingling=commingling)
    if preset == "bahrain-cbb":
        return dataclasses.replace(
            base, asset_hot_ratio=AssetRatioRule(default=Threshold(critical=10 * _PCT)),
            reserve_coverage=_full_coverage())
    if preset == "nydfs":
        return dataclasses.replace(base, reserve_coverage=_full_coverage(),
                                   commingling=commingling)
    return base


def read_rules(ctx: Ctx, raw: Any, assets: Collection[str], poll_every: int = 60,
               path: str = "rules") -> RuleSettings | None:
    m = ctx.mapping(path, {} if raw is None else raw, keys=_KEYS)
    if m is None:
        return None
    preset = ctx.choice(join(path, "preset"), m.get("preset", "jp-fsa"), PRESETS)
    if preset is None:
        return None
    rules = preset_rules(preset, poll_every)
    errors = ctx.error_count()
    for key in _ALWAYS_ON:
        if key in m:
            ctx.error(join(path, key), f"`{key}` is always on and has no settings; remove it")
    r = _Reader(ctx, path, assets)
    rules = dataclasses.replace(
        rules,
        hot_ratio=r.ceiling("hot_ratio", m, rules.hot_ratio, at_most_one=True),
        asset_hot_ratio=r.asset_ratio(m, rules.asset_hot_ratio),
        guarantee_coverage=r.coverage("guarantee_coverage", m, rules.guarantee_coverage),
        reserve_coverage=r.coverage("reserve_coverage", m, rules.reserve_coverage),
        commingling=r.ceiling("commingling", m, rules.commingling),
        hot_floor=r.hot_floor(m, rules.hot_floor),
        hot_drain=r.hot_drain(m, rules.hot_drain),
        stale_data=r.stale_data(m, rules.stale_data, poll_every),
        large_outflow=read_large_outflow(ctx, path, m, rules.large_outflow),
        unknown_destination=read_unknown_destination(ctx, path, m, rules.unknown_destination,
                                                     assets),
    )
    return rules if ctx.error_count() == errors else None


class _Reader:
    def __init__(self, ctx: Ctx, path: str, assets: Collection[str]):
        self.ctx, self.path, self.assets = ctx, path, assets

    def _level(self, path: str, m: dict[str, Any], key: str, old: Decimal | None,
               at_most_one: bool) -> Decimal | None:
        if key not in m:
            return old
        if m[key] in _OFF:
            return None
        return self.ctx.percent(join(path, key), m[key], at_most_one=at_most_one)

    def threshold(self, path: str, raw: Any, old: Threshold | None, *, ceiling: bool,
                  at_most_one: bool = False, extra: tuple[str, ...] = ()) -> Threshold | None:
        m = self.ctx.mapping(path, raw, keys=("warning", "critical") + extra)
        if m is None:
            return old
        old = old or Threshold()
        t = Threshold(warning=self._level(path, m, "warning", old.warning, at_most_one),
                      critical=self._level(path, m, "critical", old.critical, at_most_one))
        if t.warning is not None and t.critical is not None:
            if ceiling and t.warning > t.critical:
                self.ctx.error(join(path, "warning"), "the warning level is above the critical "
                               "one, so it would never fire first; lower it")
            if not ceiling and t.warning < t.critical:
                self.ctx.error(join(path, "warning"), "this floor's warning level is below the "
                               "critical one, so it would never fire first; raise it")
        return t

    def ceiling(self, key: str, m: dict[str, Any], old: Threshold | None,
                at_most_one: bool = False) -> Threshold | None:
        if key not in m:
            return old
        if m[key] in _OFF:
            return None
        t = self.threshold(join(self.path, key), m[key], old, ceiling=True,
                           at_most_one=at_most_one)
        return None if t is None or (t.warning is None and t.critical is None) else t

    def asset_ratio(self, m: dict[str, Any], old: AssetRatioRule | None) -> AssetRatioRule | None:
        key, path = "asset_hot_ratio", join(self.path, "asset_hot_ratio")
        if key not in m:
            return old
        if m[key] in _OFF:
            return None
        raw = m[key]
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k != "assets"}
        default = self.threshold(path, raw, old.default if old else None, ceiling=True,
                                 at_most_one=True) or Threshold()
        per_asset: dict[str, Threshold] = dict(old.assets) if old else {}
        assets_raw = m[key].get("assets") if isinstance(m[key], dict) else None
        if assets_raw is not None and not isinstance(assets_raw, dict):
            self.ctx.error(join(path, "assets"), "expected a mapping: {USDC: {critical: \"20%\"}}")
            assets_raw = None
        for sym, body in (assets_raw or {}).items():
            p = join(join(path, "assets"), sym)
            if sym not in self.assets:
                self.ctx.error(p, f"unknown asset `{sym}`; declare it under `assets`")
                continue
            t = self.threshold(p, body, per_asset.get(sym, default), ceiling=True,
                               at_most_one=True)
            if t is not None:
                per_asset[sym] = t
        return AssetRatioRule(default=default, assets=per_asset)

    def coverage(self, key: str, m: dict[str, Any], old: CoverageRule | None
                 ) -> CoverageRule | None:
        if key not in m:
            return old
        if m[key] in _OFF:
            return None
        path = join(self.path, key)
        extra = ("tolerance",) if key == "reserve_coverage" else ()
        t = self.threshold(path, m[key], old.threshold if old else None, ceiling=False,
                           extra=extra)
        tolerance = old.tolerance if old else Decimal(0)
        if isinstance(m[key], dict) and "tolerance" in m[key]:
            tolerance = self.ctx.percent(join(path, "tolerance"), m[key]["tolerance"],
                                         at_most_one=True) or Decimal(0)
        if t is None or (t.warning is None and t.critical is None):
            return None
        return CoverageRule(threshold=t, tolerance=tolerance)

    def _severity(self, path: str, raw: Any, default: str) -> str:
        return self.ctx.choice(path, raw, SEVERITIES) or default if raw is not None else default

    def hot_floor(self, m: dict[str, Any], old: HotFloorRule | None) -> HotFloorRule | None:
        if "hot_floor" not in m:
            return old
        if m["hot_floor"] in _OFF:
            return None
        path = join(self.path, "hot_floor")
        body = self.ctx.mapping(path, m["hot_floor"], keys=("assets", "severity"),
                                required=("assets",))
        if body is None:
            return None
        floors: dict[str, Decimal] = {}
        raw_assets = body.get("assets")
        if not isinstance(raw_assets, dict) or not raw_assets:
            self.ctx.error(join(path, "assets"), 'expected a mapping: {ETH: "5"}')
            raw_assets = {}
        for sym, amount in raw_assets.items():
            p = join(join(path, "assets"), sym)
            if sym not in self.assets:
                self.ctx.error(p, f"unknown asset `{sym}`; declare it under `assets`")
                continue
            d = self.ctx.decimal(p, amount)
            if d is not None:
                floors[sym] = d
        severity = self._severity(join(path, "severity"), body.get("severity"), "warning")
        return HotFloorRule(assets=floors, severity=severity)  # type: ignore[arg-type]

    def hot_drain(self, m: dict[str, Any], old: HotDrainRule) -> HotDrainRule:
        if "hot_drain" not in m:
            return old
        path = join(self.path, "hot_drain")
        if m["hot_drain"] in _OFF:
            self.ctx.error(path, "hot_drain is on in every preset and cannot be turned off; "
                                 "raise `min_value` or the windows' `drop` instead")
            return old
        body = self.ctx.mapping(path, m["hot_drain"], keys=("min_value", "windows"))
        if body is None:
            return old
        min_value = old.min_value
        if "min_value" in body:
            min_value = self.ctx.decimal(join(path, "min_value"), body["min_value"]) or min_value
        windows = old.windows
        if "windows" in body:
            windows = self._windows(join(path, "windows"), body["windows"]) or windows
        return HotDrainRule(min_value=min_value, windows=windows)

    def _windows(self, path: str, raw: Any) -> tuple[DrainWindow, ...] | None:
        if not isinstance(raw, list) or not raw:
            self.ctx.error(path, "expected a list: [{window: 10m, drop: \"20%\", "
                                 "severity: critical}]")
            return None
        out = []
        for i, item in enumerate(raw):
            p = index(path, i)
            w = self.ctx.mapping(p, item, keys=("window", "drop", "severity"),
                                 required=("window", "drop"))
            if w is None or "window" not in w or "drop" not in w:
                continue
            seconds = self.ctx.duration(join(p, "window"), w["window"], minimum=1)
            drop = self.ctx.percent(join(p, "drop"), w["drop"], at_most_one=True)
            severity = self._severity(join(p, "severity"), w.get("severity"), "critical")
            if seconds is not None and drop is not None:
                out.append(DrainWindow(window=seconds, drop=drop,
                                       severity=severity))  # type: ignore[arg-type]
        return tuple(out) if len(out) == len(raw) else None

    def stale_data(self, m: dict[str, Any], old: StaleDataRule,
                   poll_every: int) -> StaleDataRule:
        if "stale_data" not in m:
            return old
        path = join(self.path, "stale_data")
        body = self.ctx.mapping(path, m["stale_data"], keys=("max_age",))
        if body is None or "max_age" not in body:
            return old
        raw = body["max_age"]
        if isinstance(raw, str) and raw.strip().endswith("x"):
            n = raw.strip()[:-1]
            if n.isdigit() and int(n) >= 1:
                return StaleDataRule(max_age=int(n) * poll_every)
            self.ctx.error(join(path, "max_age"), f"{raw!r}: write a multiple of poll_every "
                                                  "such as 3x, or a duration such as 5m")
            return old
        seconds = self.ctx.duration(join(path, "max_age"), raw, minimum=1)
        return StaleDataRule(max_age=seconds) if seconds else old
