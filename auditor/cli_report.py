"""`auditor report`: write the audit report of a period in one or more formats."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from .cli_common import _handle, _load, config_option

__all__ = ["report"]


def _dates(settings: object, from_: str | None, to: str | None) -> tuple[date, date]:
    from .reports import default_period, parse_date

    try:
        if from_ is None and to is None:
            p = default_period(datetime.now(UTC), settings.schedule)  # type: ignore[attr-defined]
            return p.first, p.last
        first = parse_date(from_ or to or "", "--from")
        last = parse_date(to, "--to") if to else first
        if last < first:
            raise ValueError(f"--to {last} is before --from {first}; swap them")
        return first, last
    except ValueError as e:
        raise click.UsageError(str(e)) from None


@click.command()
@config_option
@click.option("--from", "from_", metavar="D", default=None,
              help="First local business date, YYYY-MM-DD (default: the previous day).")
@click.option("--to", metavar="D", default=None,
              help="Last local business date, inclusive (default: --from).")
@click.option("--format", "formats", metavar="html|md|csv|json", multiple=True,
              help="Repeat or comma-separate (default: reports.formats, else all four).")
@click.option("--out", metavar="DIR", default="reports", show_default=True,
              help="Directory for report-<from>-<to>.<ext> (relative to the current directory).")
@click.pass_context
@_handle
def report(ctx: click.Context, config: str | None, from_: str | None, to: str | None,
           formats: tuple[str, ...], out: str) -> None:
    """Write the audit report of a period (local dates in schedule.timezone, days cut at
    schedule.records_cutoff) and append a `report` record with each file's sha256."""
    from .reports import FORMATS, write_report
    from .reports.write import parse_formats
    from .store import Store

    settings = _load(ctx)
    first, last = _dates(settings, from_, to)
    try:
        chosen = parse_formats(formats) if formats else list(
            settings.reports.formats if settings.reports else FORMATS)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    store = Store.open(settings.store.path)
    try:
        written = write_report(store, settings, first, last, chosen, Path(out))
    finally:
        store.close()
    for p in written.paths:
        click.echo(str(p))
    click.echo(f"report record {written.seq} (log head before it: {written.head_before})",
               err=True)
