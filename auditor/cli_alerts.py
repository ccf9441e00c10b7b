"""`auditor alerts …`: list, acknowledge, resolve and show the history of alerts.

Every write (ack, resolve) is one audit-log record, taken without the cycle
lock (DESIGN.md, CLI: writes serialise in the database).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from .cli_common import _emit_json, _handle, _load, _who, config_option
from .errors import AuditorError

__all__ = ["alerts"]


@click.group(invoke_without_command=True)
@config_option
@click.pass_context
def alerts(ctx: click.Context, config: str | None) -> None:
    """List, acknowledge, resolve alerts and show their history (default: list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(alerts_list)


@alerts.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Include resolved alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@_handle
def alerts_list(ctx: click.Context, config: str | None = None, show_all: bool = False,
                as_json: bool = False) -> None:
    """Firing alerts (with --all, resolved ones too)."""
    from .alerting import alert_json
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        rows = [alert_json(a) for a in store.list_alerts(include_resolved=show_all)]
    finally:
        store.close()
    if as_json:
        _emit_json(rows)
        return
    from .views import print_alerts

    print_alerts(rows)


@alerts.command("ack")
@config_option
@click.argument("fingerprint")
@click.option("--note", default="", help="Why; written to the audit log.")
@click.option("--by", default=None, help="Who acknowledges (default: the OS user).")
@click.pass_context
@_handle
def alerts_ack(ctx: click.Context, config: str | None, fingerprint: str, note: str, by: str | None) -> None:
    """Acknowledge an alert: stops its repeats only (never escalation or new events)."""
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        fp = _resolve_fp(store, fingerprint)
        store.ack_alert(fp, _who(by), note, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"acknowledged {fp[:12]} by {_who(by)}")


@alerts.command("resolve")
@config_option
@click.argument("fingerprint")
@click.option("--reason", required=True, help="Why it is resolved; written to the audit log.")
@click.option("--by", default=None, help="Who resolves (default: the OS user).")
@click.pass_context
@_handle
def alerts_resolve(ctx: click.Context, config: str | None, fingerprint: str, reason: str,
                   by: str | None) -> None:
    """Resolve an alert by hand (event rules such as hot_drain resolve only this way).

    The resolution is written to the audit log and announced on the critical route.
    """
    from .alerts_ops import resolve_by_hand
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        fp = _resolve_fp(store, fingerprint)
        seq = resolve_by_hand(settings, store, fp, _who(by), reason, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"resolved {fp[:12]} by {_who(by)} (audit seq {seq})")


@alerts.command("history")
@config_option
@click.argument("fingerprint")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@_handle
def alerts_history(ctx: click.Context, config: str | None, fingerprint: str, as_json: bool) -> None:
    """Every transition, acknowledgement and resolution of one alert."""
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        rows = store.alert_history(_resolve_fp(store, fingerprint))
    finally:
        store.close()
    if as_json:
        _emit_json(rows)
        return
    from .views import print_history

    print_history(rows)


def _resolve_fp(store: Any, given: str) -> str:
    """A full fingerprint or a unique prefix (at least 6 hex digits)."""
    given = given.lower()
    if len(given) == 64:
        if store.get_alert(given) is None:
            raise AuditorError(f"no alert with fingerprint {given}; see `auditor alerts list --all`")
        return given
    if len(given) < 6:
        raise click.UsageError("give the fingerprint or at least its first 6 characters")
    matches = [a.fingerprint for a in store.list_alerts(include_resolved=True)
               if a.fingerprint.startswith(given)]
    if len(matches) != 1:
        raise AuditorError(f"{given}… matches {len(matches)} alerts; give more characters "
                           "(see `auditor alerts list --all`)")
    return matches[0]
