"""`auditor sanctions update` (fetch the URL lists into the cache) and `auditor sanctions
check ADDRESS` (which configured lists hold an address)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .cli_common import _emit_json, _handle, _load, config_option

__all__ = ["sanctions", "cache_dir_of"]


def cache_dir_of(settings: Any) -> Path:
    """`sanctions.cache_dir`, else `sanctions/` next to the store."""
    configured: Path | None = settings.sanctions.cache_dir
    return configured if configured is not None else Path(settings.store.path).parent / "sanctions"


@click.group()
def sanctions() -> None:
    """Sanctions lists: refresh them, look an address up."""


@sanctions.command("update")
@config_option
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds allowed to fetch each list.")
@click.pass_context
@_handle
def update(ctx: click.Context, config: str | None, timeout: float) -> None:
    """Fetch the lists configured by URL into the cache the cycles read (a cycle never
    fetches), and check that the others load. Prints one line per list; exit 1 if any
    list failed (a failed fetch keeps the previous copy), 2 on a config error."""
    from .sanctions import refresh_lists

    settings = _load(ctx)
    if not settings.sanctions.lists:
        click.echo("no sanctions lists configured (sanctions.lists); nothing to update")
        return
    results = refresh_lists(settings.sanctions, cache_dir_of(settings), datetime.now(UTC),
                            timeout=timeout)
    for r in results:
        click.echo(f"{r.label}: {r.message}", err=not r.ok)
    sys.exit(0 if all(r.ok for r in results) else 1)


@sanctions.command("check")
@config_option
@click.argument("address")
@click.option("--chain", "chain", default=None, metavar="C",
              help="A chain name from the config, or `ethereum` / `bitcoin` (default: by the "
                   "address's format).")
@click.option("--json", "as_json", is_flag=True, help='Print {"address", "chain_type", "lists", '
                                                      '"oracle", "problems"}.')
@click.pass_context
@_handle
def check(ctx: click.Context, config: str | None, address: str, chain: str | None,
          as_json: bool) -> None:
    """Which configured lists (and the oracle, if configured) hold ADDRESS. Exit 0: listed
    nowhere; 1: listed; 3: not listed but some list or the oracle could not be read."""
    from .sanctions import load_screen

    settings = _load(ctx)
    chain_type = _chain_type(settings, chain, address)
    screen, problems = load_screen(settings.sanctions, cache_dir_of(settings))
    lists = list(screen.match(chain_type, address))
    oracle = _ask_oracle(settings, chain_type, address, problems)
    listed = bool(lists) or oracle is True
    if as_json:
        _emit_json({"address": address, "chain_type": chain_type, "lists": lists,
                    "oracle": oracle, "problems": [{"list": lb, "message": m} for lb, m in problems]})
    else:
        for label, message in problems:
            click.echo(f"warning: {label}: {message}", err=True)
        where = ", ".join(lists + (["oracle"] if oracle else []))
        click.echo(f"{address} ({chain_type}): " + (f"LISTED in {where}" if listed else
                   f"not listed ({len(screen.lists)} list(s) checked)"))
    sys.exit(1 if listed else 3 if problems else 0)


def _chain_type(settings: Any, chain: str | None, address: str) -> str:
    if chain is None:
        return "ethereum" if address.lower().startswith("0x") else "bitcoin"
    if chain in settings.chains:
        return str(settings.chains[chain].type)
    if chain in ("ethereum", "bitcoin"):
        return chain
    names = ", ".join(sorted(settings.chains)) or "none configured"
    raise click.BadParameter(f"unknown chain `{chain}`; use a chain name ({names}) or "
                             "ethereum / bitcoin", param_hint="--chain")


def _ask_oracle(settings: Any, chain_type: str, address: str,
                problems: list[tuple[str, str]]) -> bool | None:
    """The oracle's answer at the chain's latest block; None when not configured or not
    applicable (an error is added to `problems`)."""
    from .chains.ethereum_rpc import RpcConnection, RpcFailure, hex_int
    from .sanctions import oracle_sanctioned

    s = settings.sanctions
    if s.oracle is None or s.oracle_chain is None or chain_type != "ethereum":
        return None
    chain = settings.chains[s.oracle_chain]
    deadline = time.monotonic() + 30
    try:
        conn = RpcConnection(chain.rpc[0])
        try:
            block = hex_int(conn.call("eth_blockNumber", [], deadline), "eth_blockNumber")
        finally:
            conn.close()
        return bool(oracle_sanctioned(chain, s.oracle, [address], block, deadline))
    except (RpcFailure, ValueError, IndexError) as e:
        problems.append(("oracle", f"{chain.name} ({chain.rpc[0].label if chain.rpc else '-'}): "
                                   f"{e}"))
        return None
