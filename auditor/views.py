"""Human output: readable tables on stdout (rich). JSON output lives in cli.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_poll", "print_status", "print_alerts", "print_history", "exposure_table"]


def _console() -> Console:
    c = Console(highlight=False, soft_wrap=False)
    if not c.is_terminal and "COLUMNS" not in __import__("os").environ:
        c.width = 160  # piped into a file or a ticket: do not squeeze amounts into 80 columns
    return c


def exposure_table(exposure: Mapping[str, Any] | None) -> Table | str:
    if not exposure:
        return "exposure: not computed (no chain could be read)"
    t = Table(title=f"Exposure ({exposure['fiat']}, basis {exposure['basis']}): "
                    f"hot ratio {_pct(exposure.get('hot_ratio'))}", title_justify="left")
    cols = ["asset", "class", "hot", "warm", "deposit", "cold", "online (N)", "liabilities (L)",
            "guarantee (G)", "proprietary", "price", "N/L"]
    for c in cols:  # fold, never truncate: an amount with hidden digits is a wrong amount
        t.add_column(c, justify="left" if c in ("asset", "class") else "right", overflow="fold")
    for sym, a in exposure["assets"].items():
        t.add_row(sym, a["class"], a["hot"], a["warm"], a["deposit"], a["cold"], a["online"],
                  _s(a["liabilities"]), a["guarantee"], a["proprietary"], _s(a["price"]),
                  _pct(a.get("hot_ratio")))
    return t


def alerts_table(rows: Sequence[Mapping[str, Any]], title: str = "Alerts") -> Table | str:
    """One row per alert; the summaries (what to do) follow as a numbered caption."""
    if not rows:
        return f"{title}: none"
    t = Table(title=title, title_justify="left", caption_justify="left")
    extra = [k for k in ("acked", "silenced") if any(k in a for a in rows)]  # `alerts list`
    for c in ("#", "severity", "state", "rule", "subject", "value", "threshold", "since",
              "fingerprint", *extra):
        t.add_column(c, overflow="fold")
    notes = []
    for i, a in enumerate(rows, start=1):
        style = "bold red" if a["severity"] == "critical" and a["state"] == "firing" else (
            "yellow" if a["state"] == "firing" else "green")
        t.add_row(str(i), a["severity"], a["state"], a["rule"], a["subject"], _s(a.get("value")),
                  _s(a.get("threshold")), _s(a.get("since")), a["fingerprint"][:12],
                  *[_s(a.get(k)) for k in extra], style=style)
        notes.append(f"{i}. {a.get('summary', '')}")
    t.caption = "\n".join(notes)
    return t


def print_poll(poll: Mapping[str, Any]) -> None:
    c = _console()
    c.print(f"cycle {poll.get('cycle')} at {poll['taken_at']}: [bold]{poll['status']}[/bold]")
    for name, ch in poll["chains"].items():
        if ch["ok"]:
            c.print(f"  {name}: settled #{ch['settled']['block']}  watch #{ch['watch']['block']}")
        else:
            c.print(f"  {name}: [red]unreadable[/red] {ch.get('error', '')}")
    c.print(exposure_table(poll.get("exposure")))
    c.print(alerts_table(poll.get("alerts", [])))


def print_status(last: Mapping[str, Any] | None, age: int | None, firing: Sequence[Mapping[str, Any]]) -> None:
    c = _console()
    if last is None:
        c.print("no cycle stored yet: run `auditor poll --once` or `auditor run`")
        return
    c.print(f"last cycle {last.get('cycle')} at {last['taken_at']} ({age}s ago): [bold]{last['status']}[/bold]")
    for name, ch in last["chains"].items():
        state = f"settled #{ch['settled']['block']}" if ch.get("ok") else "[red]unreadable[/red]"
        c.print(f"  {name}: {state}")
    c.print(exposure_table(last.get("exposure")))
    c.print(alerts_table(firing, "Firing alerts"))


def print_alerts(rows: Sequence[Mapping[str, Any]]) -> None:
    _console().print(alerts_table(rows))


def print_history(rows: Sequence[Mapping[str, Any]]) -> None:
    c = _console()
    if not rows:
        c.print("no history")
        return
    t = Table(title="Alert history", title_justify="left")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for k in keys:
        t.add_column(k, overflow="fold")
    for r in rows:
        t.add_row(*[_s(r.get(k)) for k in keys])
    c.print(t)


def _s(v: object) -> str:
    return "-" if v is None else str(v)


def _pct(v: object) -> str:
    if v is None:
        return "n/a"
    from decimal import Decimal

    from .units import format_ratio

    pct = Decimal(str(v)) * 100
    return f"{format_ratio(pct.quantize(Decimal('0.0001')))}%"
