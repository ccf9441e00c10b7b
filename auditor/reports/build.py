"""build_report(): read the store, compute, return the report as plain JSON data.

It writes nothing. Amounts are the exact whole-unit strings the cycles
stored; ratios are `units.format_ratio` text; the time-weighted mean is
Decimal arithmetic. `head` is the audit-log head when the report is built
(before its own `report` record), with its seq, so `auditor verify --anchor
SEQ:HEX` checks that the log an auditor holds is the one reported on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from ..settings import Settings, Threshold
from ..store import Store
from ..store_codec import check_json, format_time
from ..units import EXACT, format_decimal, format_ratio
from .aggregate import AssetStats, Extreme, Fraction, RatioStats, amounts, extreme
from .alerts import alerts_of_period
from .period import Period, period_of
from .regulator import regulator_view
from .scan import Scan, scan_cycles

__all__ = ["REPORT_VERSION", "build_report"]

REPORT_VERSION = 1


def build_report(store: Store, settings: Settings, from_date: date, to_date: date,
                 now: datetime | None = None) -> dict[str, Any]:
    """The report of the inclusive local business dates `from_date`..`to_date`."""
    now = now or datetime.now(UTC)
    period = period_of(from_date, to_date, settings.schedule)
    seq, head = store.head_record()
    scan = scan_cycles(store, settings, period, now)
    with localcontext(EXACT):
        report = _assemble(store, settings, period, scan, now)
    report["head"], report["head_seq"] = head, seq
    report["verify"] = f"auditor verify --anchor {seq}:{head}"
    check_json(report, "report")  # no float, no Decimal: only exact text
    return report


def _assemble(store: Store, settings: Settings, period: Period, scan: Scan,
              now: datetime) -> dict[str, Any]:
    records = store.daily_records(period.first.isoformat(), period.last.isoformat())
    bases = sorted(scan.bases)
    exposure = _exposure(scan, settings)
    out: dict[str, Any] = {
        "report": "custody-auditor period report",
        "version": REPORT_VERSION,
        "exchange": settings.exchange.id,
        "exchange_name": settings.exchange.name,
        "fiat": settings.exchange.fiat,
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": settings.schedule.timezone,
        "records_cutoff": settings.schedule.records_cutoff,
        "window": {"start": format_time(period.start), "end": format_time(period.end)},
        "generated_at": format_time(now),
        "complete": now >= period.end,
        "preset": settings.rules.preset,
        "basis": bases[-1] if len(bases) == 1 else (None if not bases else "mixed"),
        "indicative": "holdings" in bases,
        "limits": _limits(settings),
        "cycles": _cycles(scan),
        "chains": _chains(scan),
        "exposure": exposure,
        "days": _days(scan),
        "daily_records": records,
        "missing_daily_records": _missing(period, records, now, settings),
        "alerts": alerts_of_period(store, period),
        "price_sources": _prices(scan, settings),
    }
    out["worst_day"] = _worst_day(out["days"])
    out["regulator"] = regulator_view(settings, out)
    return out


def _ratio(x: Decimal | Fraction | None) -> str | None:
    if isinstance(x, Fraction):
        return format_ratio(x.value())
    return format_ratio(x)


def _point(e: Extreme) -> dict[str, Any] | None:
    if e.value is None:
        return None
    return {"value": _ratio(e.value), "cycle": e.cycle, "at": e.at}


def _ratio_json(r: RatioStats) -> dict[str, Any]:
    return {
        "latest": _point(r.latest), "min": _point(r.low), "max": _point(r.high),
        "mean": _ratio(r.mean()),
        "weighted_seconds": format_decimal(Decimal(r.weight) / 1_000_000),
        "cycles": r.cycles, "null_cycles": r.null_cycles,
        "above": dict(r.above),
    }


def _cycles(scan: Scan) -> dict[str, Any]:
    counts = {k: scan.statuses.get(k, 0) for k in ("ok", "partial", "failed")}
    return {"total": sum(counts.values()), **counts, "first": scan.first, "last": scan.last}


def _chains(scan: Scan) -> dict[str, Any]:
    return {name: {"first_settled": c.first, "last_settled": c.last, "unread_cycles": c.unread}
            for name, c in sorted(scan.chains.items())}


def _exposure(scan: Scan, settings: Settings) -> dict[str, Any]:
    latest = scan.latest_exposure
    return {
        "hot_ratio": _ratio_json(scan.ratio),
        "latest_cycle": None if latest is None else {
            "cycle": latest["cycle"], "at": latest["at"],
            "online_value": latest["exposure"].get("online_value"),
            "customer_value": latest["exposure"].get("customer_value"),
            "hot_ratio": latest["exposure"].get("hot_ratio")},
        "assets": {sym: _asset(a, settings) for sym, a in sorted(scan.assets.items())},
        "series": _series(scan),
    }


def _asset(a: AssetStats, settings: Settings) -> dict[str, Any]:
    scope = settings.rules.scope_classes
    latest = None
    if a.latest is not None:
        cycle, at, raw = a.latest
        x = amounts(raw)
        assert x is not None  # only known amounts are kept as the latest
        latest = {
            "cycle": cycle, "at": at,
            **{k: format_decimal(v) for k, v in x.items()},
            **{k: raw.get(k) for k in ("hot", "warm", "deposit", "proprietary", "price")},
            "hot_ratio": _ratio(Fraction(x["N"], x["L"]) if x["L"] > 0 else None),
            "guarantee_coverage": _ratio(Fraction(x["G"], x["N"]) if x["N"] > 0 else None),
            "reserve_coverage": _ratio(Fraction(x["O"] + x["C"], x["L"]) if x["L"] > 0 else None),
        }
    return {
        "class": a.cls,
        "in_scope": scope is None or a.cls in scope,
        "latest": latest,
        "worst": {"hot_ratio": _point(extreme(a.hot_ratio)),
                  "guarantee_coverage": _point(extreme(a.guarantee)),
                  "reserve_coverage": _point(extreme(a.reserve))},
        "cycles_guarantee_short": a.guarantee_short,
        "cycles_reserve_short": a.reserve_short,
        "cycles_unknown": a.unknown,
    }


def _series(scan: Scan) -> list[dict[str, Any]]:
    b = scan.buckets
    if b is None:
        return []
    out = []
    for i in sorted(b.points):
        lo, hi, last = b.points[i]
        t0 = b.start + i * b.width
        out.append({"start": _utc(t0), "end": _utc(t0 + b.width), "min": _ratio(lo),
                    "max": _ratio(hi), "last": _ratio(last)})
    return out


def _utc(us: int) -> str:
    return format_time(datetime.fromtimestamp(us // 1_000_000, UTC).replace(
        microsecond=us % 1_000_000))


def _days(scan: Scan) -> list[dict[str, Any]]:
    out = []
    for d in scan.days:
        r = d.ratio
        out.append({
            "date": d.date, "cycles": d.cycles,
            "hot_ratio": {"min": _ratio(r.low.value), "max": _ratio(r.high.value),
                          "mean": _ratio(r.mean()), "close": _ratio(r.latest.value),
                          "null_cycles": r.null_cycles, "above": dict(r.above)},
            "assets": {sym: {k: format_decimal(v) for k, v in (amounts(raw) or {}).items()}
                       for sym, raw in sorted(d.close.items())},
        })
    return out


def _worst_day(days: list[dict[str, Any]]) -> dict[str, Any] | None:
    worst = None
    for d in days:
        v = d["hot_ratio"]["max"]
        if v is not None and (worst is None or Decimal(v) > Decimal(worst["hot_ratio"])):
            worst = {"date": d["date"], "hot_ratio": v}
    return worst


def _missing(period: Period, records: list[dict[str, Any]], now: datetime,
             settings: Settings) -> list[str]:
    """Business dates of the period without a daily record although their record was due
    (the `daily_record` rule's grace: 3 × poll_every after the cut-off) before `now`."""
    have = {r.get("date") for r in records}
    grace = timedelta(seconds=3 * settings.schedule.poll_every)
    out = []
    for o in range(period.first.toordinal(), period.last.toordinal() + 1):
        d = date.fromordinal(o)
        if d.isoformat() not in have and period_of(d, d, settings.schedule).end + grace <= now:
            out.append(d.isoformat())
    return out


def _prices(scan: Scan, settings: Settings) -> dict[str, Any]:
    return {sym: {"sources": sorted(p.sources), "first_as_of": _time(p.first_as_of),
                  "last_as_of": _time(p.last_as_of), "latest": p.latest,
                  "cycles_missing": p.missing,
                  "configured": settings.prices.source}
            for sym, p in sorted(scan.prices.items())}


def _time(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


def _threshold(t: Threshold | None) -> dict[str, str | None] | None:
    if t is None:
        return None
    return {"warning": _dec(t.warning), "critical": _dec(t.critical)}


def _dec(d: Decimal | None) -> str | None:
    return None if d is None else format_decimal(d)


def _limits(settings: Settings) -> dict[str, Any]:
    r = settings.rules
    out: dict[str, Any] = {"hot_ratio": _threshold(r.hot_ratio)}
    if r.asset_hot_ratio is not None:
        out["asset_hot_ratio"] = {"default": _threshold(r.asset_hot_ratio.default),
                                  "assets": {k: _threshold(v) for k, v in
                                             sorted(r.asset_hot_ratio.assets.items())}}
    for name in ("guarantee_coverage", "reserve_coverage"):
        rule = getattr(r, name)
        out[name] = None if rule is None else {**(_threshold(rule.threshold) or {}),
                                               "tolerance": _dec(rule.tolerance)}
    return out

