"""The one-page summary in plain words (shared by the Markdown and HTML forms)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["pct", "summary_lines", "verdict"]


def pct(v: str | None, places: str = "0.001") -> str:
    """A ratio as a percentage for people ("0.03125" → "3.125%"); "n/a" for null."""
    if v is None:
        return "n/a"
    q = (Decimal(v) * 100).quantize(Decimal(places))
    text = f"{q:f}".rstrip("0").rstrip(".") if "." in f"{q:f}" else f"{q:f}"
    return f"{text}%"


def verdict(report: dict[str, Any]) -> str:
    """One sentence: did the period stay within the rules?"""
    reg = report["regulator"]
    firing = [a for a in report["alerts"] if a["state_at_end"] == "firing"]
    if report["cycles"]["total"] == 0:
        return "No cycle was recorded in this period: there is nothing to report on."
    if reg["met"] and not firing:
        return "Within the rules for the whole period, and no alert was left open."
    if reg["met"]:
        return (f"Within the ratio and coverage rules, but {len(firing)} alert(s) were open "
                "at the end.")
    broken = ", ".join(c["id"] for c in reg["checks"] if not c["met"])
    return f"Rules breached during the period: {broken}. See below for when and by how much."


def _ratio_line(report: dict[str, Any]) -> str:
    r = report["exposure"]["hot_ratio"]
    lim = report["limits"]["hot_ratio"]
    limit = (lim or {}).get("critical") or (lim or {}).get("warning")
    if r["max"] is None:
        return "The hot-wallet share could not be computed in any cycle (missing prices, " \
               "ledger or chains)."
    worst_day = report["worst_day"]
    text = (f"Hot-wallet share of customer crypto: worst {pct(r['max']['value'])}"
            f"{' on ' + worst_day['date'] if worst_day else ''}, time-weighted average "
            f"{pct(r['mean'])}, latest {pct(r['latest']['value'])}")
    if limit is not None:
        level = "critical" if (lim or {}).get("critical") else "warning"
        above = r["above"][level]
        text += (f"; the limit is {pct(limit)}, exceeded in {above} cycle(s)" if above
                 else f"; never above the limit of {pct(limit)}")
    return text + "."


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The summary's points in plain words (the verdict comes separately)."""
    c = report["cycles"]
    lines = [f"Period {report['from']} to {report['to']} ({report['timezone']}, days cut at "
             f"{report['records_cutoff']}): {c['total']} checks of the wallets, {c['ok']} "
             f"complete, {c['partial']} partial, {c['failed']} failed.",
             _ratio_line(report)]
    if report["indicative"]:
        lines.append("Indicative only: without the customer ledger, what customers are owed "
                     "is taken to equal what the wallets hold (basis: holdings).")
    for check in report["regulator"]["checks"]:
        if check["id"] != "hot_ratio" and not check["met"]:
            short = [s for s, a in check["assets"].items() if not a.get("met", True)
                     or a.get("cycles_short")]
            lines.append(f"Breach: {check['title']} — not met for {', '.join(short)}.")
    firing = [a for a in report["alerts"] if a["state_at_end"] == "firing"]
    crit = sum(1 for a in firing if a["severity"] == "critical")
    lines.append(f"Alerts: {len(report['alerts'])} active during the period; {len(firing)} "
                 f"still open at its end ({crit} critical).")
    missing = report["missing_daily_records"]
    lines.append(f"Daily records: {len(report['daily_records'])} written"
                 + (f"; missing for {', '.join(missing)}." if missing else ", none missing."))
    return lines
