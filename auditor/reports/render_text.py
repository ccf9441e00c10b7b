"""The JSON, CSV and Markdown forms of a report.

CSV is the daily series, one row per business date (a summary block does
not fit a table): date, cycles, the day's hot-ratio min, max, time-weighted
mean and close, cycles with a null ratio, then per asset `SYM_L`, `SYM_C`,
`SYM_O`, `SYM_N`, `SYM_G` at the day's last cycle, then the daily record's
cycle, time, lateness, hot ratio and head. An empty cell is null.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .summary import pct, summary_lines, verdict

__all__ = ["render_csv", "render_json", "render_md", "CSV_AMOUNTS"]

CSV_AMOUNTS = ("L", "C", "O", "N", "G")


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _assets(report: dict[str, Any]) -> list[str]:
    return sorted(report["exposure"]["assets"])


def render_csv(report: dict[str, Any]) -> str:
    assets = _assets(report)
    records = {r.get("date"): r for r in report["daily_records"]}
    head = ["date", "cycles", "hot_ratio_min", "hot_ratio_max", "hot_ratio_mean",
            "hot_ratio_close", "null_ratio_cycles"]
    head += [f"{s}_{k}" for s in assets for k in CSV_AMOUNTS]
    head += ["record_cycle", "record_taken_at", "record_late", "record_hot_ratio", "record_head"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for d in report["days"]:
        r, rec = d["hot_ratio"], records.get(d["date"]) or {}
        row = [d["date"], d["cycles"], r["min"], r["max"], r["mean"], r["close"], r["null_cycles"]]
        row += [(d["assets"].get(s) or {}).get(k) for s in assets for k in CSV_AMOUNTS]
        row += [rec.get("cycle"), rec.get("taken_at"),
                None if not rec else str(bool(rec.get("late"))).lower(), rec.get("hot_ratio"),
                rec.get("head")]
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return "–" if v is None else str(v).replace("|", "\\|")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out + [""]


def _regulator_md(report: dict[str, Any]) -> list[str]:
    reg = report["regulator"]
    out = [f"## The regulator's view: {reg['name']}", ""]
    for c in reg["checks"]:
        out += [f"### {c['title']}", "", f"**{'Met' if c['met'] else 'NOT met'}** "
                f"over the period{' (indicative)' if report['indicative'] else ''}.", ""]
        if c["id"] == "hot_ratio":
            out += _table(["limit", "worst", "time-weighted mean", "latest", "cycles above"],
                          [[pct(c["limit"]), pct(c["worst"]), pct(c["mean"]), pct(c["latest"]),
                            c["cycles_above"]]])
        else:
            out += _table(["asset", "L", "C", "O", "N", "G", "latest", "worst", "worst at",
                           "cycles short"],
                          [[s, a["L"], a["C"], a["O"], a["N"], a["G"], pct(a["latest"]),
                            pct(a["worst"]), a["worst_at"], a.get("cycles_short", "–")]
                           for s, a in c["assets"].items()])
    return out


def _alerts_md(report: dict[str, Any]) -> list[str]:
    out = ["## Alerts active in the period", ""]
    if not report["alerts"]:
        return out + ["None.", ""]
    for a in report["alerts"]:
        out += [f"### {a['severity']} `{a['rule']}` {a['subject']} — {a['state_at_end']} at the "
                f"end of the period", "", a["summary"], ""]
        out += _table(["seq", "event", "at", "severity", "value", "who", "why / note"],
                      [[e.get("seq"), e["kind"] + (" (before the period)" if e.get("before_period")
                                                   else ""), e["at"], e.get("severity"),
                        e.get("value"), e.get("by"), e.get("reason") or e.get("note")]
                       for e in a["events"]])
    return out


def _evidence_md(report: dict[str, Any]) -> list[str]:
    out = ["## Evidence", ""]
    out += _table(["chain", "first settled block", "hash", "last settled block", "hash",
                   "unread cycles"],
                  [[n, (c["first_settled"] or {}).get("block"),
                    (c["first_settled"] or {}).get("block_hash"),
                    (c["last_settled"] or {}).get("block"),
                    (c["last_settled"] or {}).get("block_hash"), c["unread_cycles"]]
                   for n, c in report["chains"].items()])
    out += _table(["asset", "price sources", "first as of", "last as of", "latest price"],
                  [[s, ", ".join(p["sources"]) or "none", p["first_as_of"], p["last_as_of"],
                    p["latest"]] for s, p in report["price_sources"].items()])
    out += [f"Audit-log head when this report was made: seq {report['head_seq']}, "
            f"`{report['head']}`.", "",
            "To re-check: with the store file, run", "", f"    {report['verify']}", "",
            "It recomputes the whole hash chain and confirms record "
            f"{report['head_seq']} has this hash.", ""]
    return out


def render_md(report: dict[str, Any]) -> str:
    out = [f"# Custody report: {report['exchange_name']} ({report['from']} to {report['to']})",
           ""]
    out += [f"**{verdict(report)}**", ""]
    out += [f"- {line}" for line in summary_lines(report)] + [""]
    out += _regulator_md(report)
    out += ["## Daily records", ""]
    out += _table(["date", "cycle", "taken at", "late", "hot ratio", "head"],
                  [[r.get("date"), r.get("cycle"), r.get("taken_at"), r.get("late"),
                    pct(r.get("hot_ratio")), r.get("head")] for r in report["daily_records"]])
    out += ["## Hot ratio per day", ""]
    out += _table(["date", "cycles", "min", "max", "time-weighted mean", "close"],
                  [[d["date"], d["cycles"], pct(d["hot_ratio"]["min"]), pct(d["hot_ratio"]["max"]),
                    pct(d["hot_ratio"]["mean"]), pct(d["hot_ratio"]["close"])]
                   for d in report["days"]])
    out += _alerts_md(report)
    out += _evidence_md(report)
    return "\n".join(out)
