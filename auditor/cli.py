"""Command line. The only place that turns AuditorError into text and exit codes.

Exit codes (DESIGN.md): 0 done (a `partial` cycle included); 1 `--fail-on`
matched, or `verify` found tampering or an anchor mismatch; 2 usage or config
error; 3 the cycle could not run (`failed`); 4 another process holds the
store's cycle lock (a running daemon).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from . import __version__
from .cli_alerts import alerts, test_alert
from .cli_common import (
    DEFAULT_CONFIG,
    _config_path,
    _emit_json,
    _handle,
    _load,
    _who,
    config_option,
)
from .cli_records import backtest, records
from .cli_report import report
from .cli_sanctions import sanctions
from .cli_transfers import transfers
from .errors import ConfigError

__all__ = ["main", "cli", "config_option", "DEFAULT_CONFIG", "_load", "_handle", "_who"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@config_option
@click.version_option(__version__, prog_name="auditor")
def cli(config: str | None) -> None:
    """custody-auditor: watch-only custody risk monitor for crypto exchanges.

    Reads the exchange's wallets on chain, compares them with the customer
    ledger, computes the regulator's hot-wallet ratios, raises alerts and keeps
    a hash-chained audit log. Every command takes -c/--config FILE.
    """


# --- config --------------------------------------------------------------------


@cli.command()
@click.argument("directory", required=False, default="config", metavar="[DIR]")
@_handle
def init(directory: str) -> None:
    """Write a commented starter config (auditor.yaml) and sample ledger into DIR (default: config)."""
    from .config import write_starter

    for p in write_starter(Path(directory)):
        click.echo(f"wrote {p}")
    click.echo(f"next: edit {Path(directory) / 'auditor.yaml'}, then `auditor check-config -c "
               f"{Path(directory) / 'auditor.yaml'}`")


@cli.command("check-config")
@config_option
@click.pass_context
@_handle
def check_config_cmd(ctx: click.Context, config: str | None) -> None:
    """Validate the config; list every problem; exit 2 if any (warnings alone exit 0)."""
    from .config import check_config

    path = _config_path(ctx)
    settings, problems = check_config(path)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        click.echo(("error: " if p.severity == "error" else "") + str(p), err=bool(errors))
    if errors:
        click.echo(f"{len(errors)} problem(s) in {path}.", err=True)
        sys.exit(2)
    assert settings is not None
    click.echo(f"{path}: ok ({len(settings.chains)} chain(s), {len(settings.assets)} asset(s), "
               f"{len(settings.wallets)} wallet(s), preset {settings.rules.preset}).")


# --- polling -------------------------------------------------------------------


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="Run one cycle and exit (the daemon is `auditor run`).")
@click.option("--json", "as_json", is_flag=True, help="Print the cycle as one JSON object on stdout.")
@click.option("--fail-on", type=click.Choice(["warning", "critical"]), default=None,
              help="Exit 1 if an alert of this severity or higher is firing after the cycle.")
@click.pass_context
@_handle
def poll(ctx: click.Context, config: str | None, once: bool, as_json: bool, fail_on: str | None) -> None:
    """Run one poll cycle: read chains, evaluate rules, store, deliver alerts."""
    from .notify import make_notifier
    from .outbox import deliver_pending
    from .service import poll_exit_code, run_cycle
    from .store import Store, cycle_lock

    if not once:
        raise click.UsageError("use `auditor poll --once` for one cycle, or `auditor run` for the daemon")
    settings = _load(ctx)
    with cycle_lock(settings.store.path):
        store = Store.open(settings.store.path)
        try:
            outcome = run_cycle(settings, store)
            notifiers = {c.name: make_notifier(c) for c in settings.alerts.channels}
            deliver_pending(store, notifiers, settings.alerts, settings.exchange.id)
        finally:
            store.close()
    if as_json:
        _emit_json(outcome.poll)
    else:
        from .views import print_poll

        print_poll(outcome.poll)
    sys.exit(poll_exit_code(outcome, fail_on))


@cli.command()
@config_option
@click.pass_context
@_handle
def run(ctx: click.Context, config: str | None) -> None:
    """Run the daemon: poll every schedule.poll_every, serve /metrics /livez /readyz, heartbeat."""
    from .daemon import run_daemon, setup_logging

    setup_logging()
    settings = _load(ctx)
    sys.exit(run_daemon(settings))


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@_handle
def status(ctx: click.Context, config: str | None, as_json: bool) -> None:
    """Last cycle, exposure, firing alerts, data age, and the latest transfers."""
    from .alerting import alert_json
    from .store import Store

    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        last = store.last_cycle()
        firing = [alert_json(a) for a in store.open_alerts().values()]
        stored = store.list_transfers(limit=10)
        cursors = {n: store.ingest_cursor(n) for n in settings.chains}
    finally:
        store.close()
    from .cli_transfers import transfer_rows

    recent = transfer_rows(settings, stored)
    ingestion = {n: c for n, c in cursors.items() if c is not None}
    age = None
    if last is not None:
        taken = datetime.fromisoformat(str(last["taken_at"]).replace("Z", "+00:00"))
        age = int((datetime.now(UTC) - taken).total_seconds())
    if as_json:
        _emit_json({"last_cycle": last, "age_s": age, "firing": firing, "transfers": recent,
                    "ingested_to": ingestion})
        return
    from .views import print_status

    print_status(last, age, firing)
    if recent:  # compact: the full rows are `auditor transfers`
        from .cli_records import _table

        short = [{"time": r["time"], "chain": r["chain"], "tx": r["tx"][:12] + "…", "asset": r["asset"],
                  "amount": r["amount"], "from": r["wallet_from"] or r["from"][:14],
                  "to": r["wallet_to"] or r["to"][:14], "class": r["class"]} for r in recent]
        _table(short, ("time", "chain", "tx", "asset", "amount", "from", "to", "class"),
               "Latest transfers (`auditor transfers` for all columns)")


cli.add_command(alerts)
cli.add_command(test_alert)
cli.add_command(report)
cli.add_command(records)
cli.add_command(backtest)
cli.add_command(sanctions)
cli.add_command(transfers)


# --- store ---------------------------------------------------------------------


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help='Print {"ok", "records", "head"[, "first_bad"]}.')
@click.option("--anchor", default=None, metavar="SEQ:HEX",
              help="Also check that record SEQ has hash HEX (a head kept elsewhere).")
@click.pass_context
@_handle
def verify(ctx: click.Context, config: str | None, as_json: bool, anchor: str | None) -> None:
    """Recompute the audit log's hash chain; exit 1 on tampering or an anchor mismatch."""
    from .store import Store

    anchor_t = None
    if anchor:
        try:
            s, h = anchor.split(":", 1)
            anchor_t = (int(s), h.lower())
        except ValueError:
            raise click.UsageError("--anchor takes SEQ:HEX, e.g. 1234:9f86d08…") from None
    settings = _load(ctx)
    store = Store.open(settings.store.path)
    try:
        res = store.verify(anchor_t)
    finally:
        store.close()
    bad = not res.ok or res.anchor_ok is False
    if as_json:
        out: dict[str, object] = {"ok": not bad, "records": res.records, "head": res.head}
        if res.first_bad is not None:
            out["first_bad"] = res.first_bad
        if anchor_t is not None:
            out["anchor_ok"] = bool(res.anchor_ok)
        if res.reason:
            out["reason"] = res.reason
        _emit_json(out)
    else:
        if bad:
            click.echo(f"TAMPERED: {res.reason or 'hash chain broken'}"
                       + (f" (first bad seq {res.first_bad})" if res.first_bad is not None else ""))
        else:
            click.echo(f"ok: {res.records} records, head {res.head}"
                       + (" (anchor matches)" if anchor_t else ""))
    sys.exit(1 if bad else 0)


# --- approvals -----------------------------------------------------------------


@cli.group()
@config_option
def approvals(config: str | None) -> None:
    """Signed cold-wallet approvals (approvals.keys, approvals.quorum)."""


@approvals.command("verify")
@config_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--show-canonical", is_flag=True,
              help="Print the item's canonical bytes (what signers sign) and nothing else.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (id, ok, signers, problem).")
@click.pass_context
@_handle
def approvals_verify(ctx: click.Context, config: str | None, file: Path, show_canonical: bool,
                     as_json: bool) -> None:
    """Check the signatures of an approval FILE (`items: [...]` or a list of items, YAML or
    JSON) against the config's approvals.keys and quorum; exit 1 if any item is not valid."""
    from .approvals import format_reports, verify_file
    from .errors import ConfigProblem

    settings = _load(ctx)
    if not settings.approvals.keys and not show_canonical:
        raise ConfigError([ConfigProblem(str(settings.source), "approvals.keys", "no signers' "
                           "keys to verify against; add approvals.keys (ssh-ed25519 lines)")])
    reports = verify_file(file, settings.approvals, settings.wallets, settings.assets)
    if show_canonical:
        if len(reports) != 1 or reports[0].canonical is None:
            raise click.UsageError(reports[0].problem if len(reports) == 1 else
                                   f"{file} holds {len(reports)} items; --show-canonical "
                                   "prints one: put each item in a file of its own")
        sys.stdout.flush()
        sys.stdout.buffer.write(reports[0].canonical)  # exactly these bytes are signed: no newline
        sys.stdout.buffer.flush()
        return
    if as_json:
        _emit_json([r.json() for r in reports])
    else:
        click.echo(format_reports(reports))
    sys.exit(0 if all(r.ok for r in reports) else 1)


# --- demo ----------------------------------------------------------------------


@cli.command()
@click.option("--out", default="demo-out", show_default=True, help="Where the demo leaves its config and store.")
@click.option("--fast", is_flag=True, help="Skip the pauses between acts.")
@_handle
def demo(out: str, fast: bool) -> None:
    """The whole story on a local chain, offline: a normal day, an approved
    cold→hot top-up, then a Coincheck-style drain of the hot wallet."""
    from .demo import run_demo

    sys.exit(run_demo(Path(out), pause=not fast))


def main() -> None:
    cli(prog_name="auditor")
