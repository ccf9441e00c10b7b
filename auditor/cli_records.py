"""`auditor records` (the daily records) and `auditor backtest` (other thresholds on the
stored history). Both only read the store; backtest opens it read-only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from .cli_common import _emit_json, _handle, _load, config_option

__all__ = ["RECORD_COLUMNS", "BACKTEST_COLUMNS", "records", "backtest"]

RECORD_COLUMNS = ("date", "asset", "liabilities", "cold", "online_holdings", "online",
                  "guarantee", "price", "price_source", "hot_ratio", "late", "cycle")
BACKTEST_COLUMNS = ("source", "at", "transition", "rule", "subject", "severity", "value",
                    "threshold")


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if len(value) == 10 and date.fromisoformat(value).isoformat() == value:
            return value
    except ValueError:
        pass
    raise click.BadParameter(f"{value!r} is not a date; give it as YYYY-MM-DD")


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=False)
    if not rows:
        console.print(f"{title}: none")
        return
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["-" if r.get(c) is None else
                    ("yes" if r[c] is True else "no" if r[c] is False else str(r[c]))
                    for c in columns])
    console.print(t)


def record_rows(recs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per business date and asset, keyed by RECORD_COLUMNS."""
    rows = []
    for r in recs:
        for sym, a in sorted(r.get("assets", {}).items()):
            row = {**{c: a.get(c) for c in RECORD_COLUMNS}, "date": r["date"], "asset": sym,
                   "hot_ratio": r.get("hot_ratio"), "late": bool(r.get("late")),
                   "cycle": r.get("cycle")}
            rows.append(row)
    return rows


@click.command("records")
@config_option
@click.option("--from", "from_date", default=None, callback=_date, metavar="D",
              help="First business date (YYYY-MM-DD, inclusive; default: the first record).")
@click.option("--to", "to_date", default=None, callback=_date, metavar="D",
              help="Last business date (YYYY-MM-DD, inclusive; default: the last record).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON array of objects with the table's columns.")
@click.pass_context
@_handle
def records(ctx: click.Context, config: str | None, from_date: str | None, to_date: str | None,
            as_json: bool) -> None:
    """The daily records: per business date and asset, L, C, O, N, G and the price, from the
    first complete cycle after schedule.records_cutoff (immutable, audit-logged)."""
    from .store import Store

    settings = _load(ctx)
    store = Store.open_read_only(settings.store.path)
    try:
        rows = record_rows(store.daily_records(from_date, to_date))
    finally:
        store.close()
    if as_json:
        _emit_json(rows)
    else:
        _table(rows, RECORD_COLUMNS, "Daily records")


def _period(from_date: str | None, to_date: str | None, tz: str) -> tuple[str, str]:
    """Defaults: the 30 local days up to today."""
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    last = date.fromisoformat(to_date) if to_date else today
    first = date.fromisoformat(from_date) if from_date else last - timedelta(days=29)
    return first.isoformat(), last.isoformat()


def _row(source: str, t: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": source, "at": t["at"], "transition": t["kind"], "rule": t["rule"],
            "subject": t["subject"], "severity": t["severity"], "value": t.get("value"),
            "threshold": t.get("threshold")}


@click.command("backtest")
@config_option
@click.option("--rules", "rules_file", required=True, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="YAML with the rules block to try (`rules: {...}` or the mapping itself).")
@click.option("--from", "from_date", default=None, callback=_date, metavar="D",
              help="First local date (YYYY-MM-DD in schedule.timezone, inclusive; "
                   "default: 29 days before --to).")
@click.option("--to", "to_date", default=None, callback=_date, metavar="D",
              help="Last local date (inclusive; default: today).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON array of objects with the table's columns.")
@click.pass_context
@_handle
def backtest(ctx: click.Context, config: str | None, rules_file: str, from_date: str | None,
             to_date: str | None, as_json: bool) -> None:
    """What another rules block would have fired on the stored cycles of the period, and
    when, next to what did fire (ratio, coverage, hot_floor and hot_drain rules). Reads the
    store read-only: writes nothing."""
    from .alerting import format_value
    from .backtest import BACKTEST_RULES, replay, warmup
    from .config import load_rules
    from .records import period_bounds
    from .store import Store
    from .store_codec import transition_to_json

    settings = _load(ctx)
    tz = settings.schedule.timezone
    first, last = _period(from_date, to_date, tz)
    try:
        start, end = period_bounds(first, last, tz)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    trial = load_rules(rules_file, settings.assets, poll_every=settings.schedule.poll_every)
    store = Store.open_read_only(settings.store.path)
    try:
        cycles = store.backtest_cycles(start - timedelta(seconds=warmup(trial)), end)
        result = replay(settings, trial, cycles, start, end)
        did = store.period_transitions(start, end, BACKTEST_RULES)
    finally:
        store.close()
    rows = [_row("backtest", transition_to_json(t)) for t in result.transitions]
    rows += [_row("store", t) for t in did]
    for r in rows:
        r["value"], r["threshold"] = format_value(r["rule"], r["value"]), format_value(
            r["rule"], r["threshold"])
    rows.sort(key=lambda r: (r["at"], r["source"]))
    if as_json:
        _emit_json(rows)
        return
    _table(rows, BACKTEST_COLUMNS, f"Backtest of {rules_file}, {first} to {last} ({tz}), "
                                   f"{result.cycles} cycles")
    for source in ("backtest", "store"):
        kinds = [r["transition"] for r in rows if r["source"] == source]
        click.echo(f"{'would have fired' if source == 'backtest' else 'did fire':>16}: "
                   f"{kinds.count('firing')} firing, {kinds.count('escalated')} escalated, "
                   f"{kinds.count('resolved')} resolved")
