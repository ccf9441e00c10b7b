"""`auditor alerts …` (list, ack, resolve, silence, silences, unsilence, history) and
`auditor test-alert`.

Every write is one audit-log record, announced on the critical route, taken
without the cycle lock (DESIGN.md, CLI: writes serialise in the database).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from .cli_common import _emit_json, _handle, _load, _who, config_option
from .errors import AuditorError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["alerts", "test_alert"]


@click.group(invoke_without_command=True)
@config_option
@click.pass_context
def alerts(ctx: click.Context, config: str | None) -> None:
    """List, acknowledge, resolve and silence alerts; show their history (default: list)."""
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
    """Firing alerts (with --all, resolved ones too), and whether each is acknowledged or
    silenced."""
    from .alerting import alert_json
    from .alerting import rfc3339 as alert_json_time
    from .silences import covering
    from .store import Store

    settings = _load(ctx)
    now = datetime.now(UTC)
    store = Store.open(settings.store.path)
    try:
        active = store.silences(active_at=now)
        rows = []
        for a in store.list_alerts(include_resolved=show_all):
            s = covering(active, a.fingerprint, a.rule, now)
            rows.append(alert_json(a) | {
                "acked": f"{a.acked_by} {alert_json_time(a.acked_at)}"
                         if a.acked_by and a.acked_at else None,
                "silenced": f"until {alert_json_time(s.ends_at)} (silence {s.id}, {s.severity} "
                            "and below)" if s else None})
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
    """Acknowledge an alert: stops its repeats only (never escalation or new events).

    Written to the audit log and announced on the critical route.
    """
    from .alerts_ops import ack_by_hand
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        fp = _resolve_fp(store, fingerprint)
        seq = ack_by_hand(settings, store, fp, _who(by), note, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"acknowledged {fp[:12]} by {_who(by)} (audit seq {seq})")


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
    """Every transition, acknowledgement, resolution and silence of one alert, with who and
    why."""
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


@alerts.command("silence")
@config_option
@click.argument("target", metavar="RULE|FP")
@click.option("--for", "duration", required=True, metavar="D",
              help="How long, at most 24h: 30m, 2h, 24h.")
@click.option("--reason", required=True, help="Why; written to the audit log and announced.")
@click.option("--by", default=None, help="Who silences (default: the OS user).")
@click.pass_context
@_handle
def alerts_silence(ctx: click.Context, config: str | None, target: str, duration: str,
                   reason: str, by: str | None) -> None:
    """Stop sending a state rule's alerts (RULE: every subject) or one alert (FP) for a while.

    Only hot_ratio, asset_hot_ratio, guarantee_coverage, reserve_coverage, commingling,
    hot_floor and daily_record can be silenced, for at most 24h (anything else exits 2).
    Silenced transitions are still stored and audit-logged; an escalation is still sent.
    Written to the audit log and announced on the critical route.
    """
    from .alerts_ops import silence_by_hand
    from .rules import EVENT_RULES, STATE_RULES
    from .silences import SilenceRefused
    from .store import Store
    from .units import format_duration, parse_duration

    try:
        seconds = parse_duration(duration)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--for") from None
    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        if target not in EVENT_RULES | STATE_RULES:
            try:
                target = _resolve_fp(store, target)
            except AuditorError as e:
                raise SilenceRefused(f"{target} is not a rule id, and as a fingerprint: {e}") \
                    from None
        s = silence_by_hand(settings, store, target, seconds, _who(by), reason,
                            datetime.now(UTC))
    finally:
        store.close()
    what = f"alert {s.fingerprint[:12]} ({s.rule} {s.subject})" if s.fingerprint else \
        f"rule {s.rule} (every subject)"
    click.echo(f"silence {s.id}: {what} for {format_duration(seconds)}, {s.severity} and below, "
               f"by {s.by} (audit seq {s.seq}); end it early with `auditor alerts unsilence "
               f"{s.id} --reason …`")


@alerts.command("silences")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Include expired and ended silences.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@_handle
def alerts_silences(ctx: click.Context, config: str | None, show_all: bool,
                    as_json: bool) -> None:
    """Active silences (with --all, expired and ended ones too)."""
    from .silences import silence_json
    from .store import Store

    settings = _load(ctx)
    now = datetime.now(UTC)
    store = Store.open(settings.store.path)
    try:
        found = store.silences(active_at=None if show_all else now)
    finally:
        store.close()
    rows = [silence_json(s, now) for s in found]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("no silences" if show_all else "no active silences")
    for r in rows:
        target = f"{r['rule']} {r['subject']} {str(r['fingerprint'])[:12]}" if r["fingerprint"] \
            else f"{r['rule']} (every subject)"
        ended = f"; ended {r['ended_at']} by {r['ended_by']}: {r['end_reason']}" \
            if r["ended_at"] else ""
        click.echo(f"{r['id']:>4} {r['state']:<7} {target}  {r['created_at']} → {r['ends_at']}  "
                   f"{r['severity']} and below  by {r['by']}: {r['reason']}{ended}")


@alerts.command("unsilence")
@config_option
@click.argument("silence_id", metavar="ID", type=int)
@click.option("--reason", required=True, help="Why it ends early; written to the audit log.")
@click.option("--by", default=None, help="Who ends it (default: the OS user).")
@click.pass_context
@_handle
def alerts_unsilence(ctx: click.Context, config: str | None, silence_id: int, reason: str,
                     by: str | None) -> None:
    """End a silence early. Written to the audit log and announced on the critical route."""
    from .alerts_ops import unsilence_by_hand
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        s = unsilence_by_hand(settings, store, silence_id, _who(by), reason, datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"silence {s.id} ended by {s.ended_by} (audit seq {s.end_seq})")


@click.command("test-alert")
@config_option
@click.option("--channel", "channel", default=None, metavar="NAME",
              help="Only this channel (default: every configured channel).")
@click.option("--by", default=None, help="Who tests (default: the OS user); audit-logged.")
@click.pass_context
@_handle
def test_alert(ctx: click.Context, config: str | None, channel: str | None,
               by: str | None) -> None:
    """Send a marked test message ("test": true, rule test) through the real path.

    Written to the store and the audit log (a `test` record), delivered at once by the
    outbox worker; prints delivered or the (redacted) error per channel. Exit 0 if all
    were delivered, 1 if any failed, 2 for an unknown channel NAME.
    """
    import sys

    from .alerts_probe import send_test_alert
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        seq, results = send_test_alert(settings, store, channel, _who(by), datetime.now(UTC))
    finally:
        store.close()
    for r in results:
        click.echo(f"{r.channel}: " + ("delivered" if r.delivered else f"FAILED: {r.error}"))
    click.echo(f"test record: audit seq {seq}")
    sys.exit(0 if all(r.delivered for r in results) else 1)


def _resolve_fp(store: Store, given: str) -> str:
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
