"""`auditor transfers`: the transfers the cycles ingested, newest first, with their class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from .cli_common import _emit_json, _handle, _load, config_option
from .cli_records import _table
from .settings import Settings

__all__ = ["TRANSFER_COLUMNS", "transfers", "transfer_rows"]

TRANSFER_COLUMNS = ("time", "chain", "block", "tx", "kind", "asset", "amount", "from", "to",
                    "wallet_from", "wallet_to", "class", "match", "lists")


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An RFC 3339 time, a date, or a duration back from now (`24h`, `7d`)."""
    if value is None:
        return None
    from .times import parse_time
    from .units import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a duration back from now (24h, 7d), a date "
                                 "(YYYY-MM-DD, UTC) or an RFC 3339 time") from None


def transfer_rows(settings: Settings, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored transfers as rows keyed by TRANSFER_COLUMNS (amounts exact, in whole units)."""
    from .times import rfc3339
    from .units import format_amount

    rows = []
    for t in stored:
        asset = settings.assets.get(t["asset"])
        amount = format_amount(t["amount"], asset.decimals) if asset else str(t["amount"])
        rows.append({"time": rfc3339(datetime.fromtimestamp(t["timestamp"], UTC)) if t["timestamp"] else None,
                     "chain": t["chain"], "block": t["block"] or None, "tx": t["tx"], "kind": t["kind"],
                     "asset": t["asset"], "amount": amount, "from": t["sender"], "to": t["recipient"],
                     "wallet_from": t["wallet_from"], "wallet_to": t["wallet_to"], "class": t["class"],
                     "match": t["match"], "lists": ",".join(t["lists"]) or None})
    return rows


@click.command("transfers")
@config_option
@click.option("--wallet", default=None, metavar="W", help="Only transfers from or to this wallet.")
@click.option("--since", default=None, callback=_since, metavar="T",
              help="Only transfers in blocks from T on: a duration back from now (24h, 7d), a date "
                   "(YYYY-MM-DD, UTC) or an RFC 3339 time. Mempool transfers are always shown.")
@click.option("--chain", default=None, metavar="C", help="Only transfers on this chain.")
@click.option("--class", "cls", default=None,
              type=click.Choice(["internal", "withdrawal", "allowed", "unknown", "sanctioned", "fee"]),
              help="Only transfers of this class (e.g. sanctioned, unknown).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1),
              help="At most this many rows, newest first.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON array of objects with the table's columns.")
@click.pass_context
@_handle
def transfers(ctx: click.Context, config: str | None, wallet: str | None, since: datetime | None,
              chain: str | None, cls: str | None, limit: int, as_json: bool) -> None:
    """The transfers touching own wallets that the cycles ingested (Ethereum ETH and
    ERC-20 transfers, approvals and fees; Bitcoin outputs and fees), newest first, with
    how each was classified: internal, withdrawal (the request id in `match`), allowed
    (the counterparty's name), unknown, sanctioned (the lists), fee. Mempool transfers
    (Bitcoin) have no block yet. Reads the store read-only."""
    from .store import Store

    settings = _load(ctx)
    if wallet is not None and wallet not in {w.name for w in settings.wallets}:
        raise click.BadParameter(f"no wallet named {wallet!r} in the config", param_hint="--wallet")
    if chain is not None and chain not in settings.chains:
        raise click.BadParameter(f"no chain named {chain!r} in the config", param_hint="--chain")
    store = Store.open_read_only(settings.store.path)
    try:
        stored = store.list_transfers(wallet=wallet, since_ts=int(since.timestamp()) if since else None,
                                      limit=limit, chain=chain, cls=cls)
    finally:
        store.close()
    rows = transfer_rows(settings, stored)
    if as_json:
        _emit_json(rows)
    else:
        _table(rows, TRANSFER_COLUMNS, "Transfers")
