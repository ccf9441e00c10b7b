"""The `withdrawals` and `counterparties` sections, and the rules `large_outflow`
and `unknown_destination` (read by config_rules).

withdrawals: the approved withdrawal requests, a csv or json export (`path`)
or an SQL query (`url`, `query`), like `liabilities`; `max_age` (off by
default) and `fee_tolerance` per asset. counterparties: `allow`, a list of
{chain, address, name} whose outflows are neither unknown nor unmatched.
Addresses are checked for the chain's type: Ethereum as EIP-55 (or all
lowercase), Bitcoin against the chain's network.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import units
from .config_chains import eth_address
from .config_ctx import SEVERITIES, Ctx
from .config_prices import sql_source
from .config_yaml import index, join
from .model import Severity
from .settings import (
    AssetSettings,
    ChainSettings,
    Counterparty,
    LargeOutflowRule,
    UnknownDestinationRule,
    WithdrawalsSettings,
)

__all__ = [
    "DEFAULT_UNKNOWN_DESTINATION",
    "read_counterparties",
    "read_large_outflow",
    "read_unknown_destination",
    "read_withdrawals",
]

_SOURCES = ("csv", "json", "sql")


def _off(value: Any) -> bool:
    return value is None or value is False or value == "off"


def read_withdrawals(ctx: Ctx, raw: Any, assets: Mapping[str, AssetSettings],
                     asset_names: Collection[str]) -> WithdrawalsSettings | None:
    """`withdrawals:`; None when absent or wrong (the problems are in `ctx`)."""
    if raw is None:
        return None
    source = raw.get("source", "csv") if isinstance(raw, dict) else "csv"
    own = ("url", "query") if source == "sql" else ("path",)
    m = ctx.mapping("withdrawals", raw, keys=("source", "max_age", "fee_tolerance", *own),
                    secrets=("url",), required=own)
    if m is None:
        return None
    errors = ctx.error_count()
    if ctx.choice("withdrawals.source", source, _SOURCES) is None:
        return None
    max_age = None
    if not _off(m.get("max_age")):
        max_age = ctx.duration("withdrawals.max_age", m["max_age"], minimum=1)
    tolerance = _tolerance(ctx, m.get("fee_tolerance"), assets, asset_names)
    if source == "sql":
        sql = sql_source(ctx, m, "withdrawals")
        if sql is None or ctx.error_count() != errors:
            return None
        return WithdrawalsSettings(source="sql", max_age=max_age, fee_tolerance=tolerance, **sql)
    text = ctx.text("withdrawals.path", m["path"]) if "path" in m else None
    if text is None or ctx.error_count() != errors:
        return None
    path = ctx.resolve_path(text)
    if not path.exists():
        ctx.warn("withdrawals.path", f"{path} does not exist yet; until it does, transfers are not "
                                     "judged (read once it is there, none skipped) and stale_data "
                                     "`withdrawals` fires")
    return WithdrawalsSettings(source=source, path=Path(path),  # type: ignore[arg-type]
                               max_age=max_age, fee_tolerance=tolerance)


def _tolerance(ctx: Ctx, raw: Any, assets: Mapping[str, AssetSettings],
               asset_names: Collection[str]) -> dict[str, Decimal]:
    path = "withdrawals.fee_tolerance"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.error(path, 'expected a mapping of asset to whole units: {ETH: "0.001"}')
        return {}
    out: dict[str, Decimal] = {}
    for sym, amount in raw.items():
        p = join(path, sym)
        if sym not in asset_names:
            ctx.error(p, f"unknown asset `{sym}`; declare it under `assets`")
            continue
        d = ctx.decimal(p, amount)
        if d is None:
            continue
        if sym in assets:
            try:
                units.parse_amount(d, assets[sym].decimals)
            except ValueError:
                ctx.error(p, f"{amount} has more than {assets[sym].decimals} decimal places, "
                             f"the most {sym} has")
                continue
        out[str(sym)] = d
    return out



# -- counterparties ----------------------------------------------------------------


def read_counterparties(ctx: Ctx, raw: Any, chains: Mapping[str, ChainSettings],
                        chain_names: Collection[str]) -> tuple[Counterparty, ...]:
    """`counterparties.allow`; `chains` the valid chains, `chain_names` every declared one."""
    if raw is None:
        return ()
    m = ctx.mapping("counterparties", raw, keys=("allow",))
    if m is None or m.get("allow") is None:
        return ()
    items = m["allow"]
    if not isinstance(items, list):
        ctx.error("counterparties.allow", "expected a list: [{chain: ethereum, address: "
                                          "\"0x…\", name: market-maker}]")
        return ()
    out: list[Counterparty] = []
    seen: dict[tuple[str, str], str] = {}
    for i, item in enumerate(items):
        path = index("counterparties.allow", i)
        c = _counterparty(ctx, path, item, chains, chain_names)
        if c is None:
            continue
        key = (c.chain, c.address)
        if key in seen:
            ctx.error(join(path, "address"), f"{c.address} is already allowed on {c.chain} (as "
                                             f"{seen[key]}); list each address once")
            continue
        seen[key] = c.name
        out.append(c)
    return tuple(out)


def _counterparty(ctx: Ctx, path: str, item: Any, chains: Mapping[str, ChainSettings],
                  chain_names: Collection[str]) -> Counterparty | None:
    m = ctx.mapping(path, item, keys=("chain", "address", "name"),
                    required=("chain", "address", "name"))
    if m is None or any(k not in m for k in ("chain", "address", "name")):
        return None
    name = ctx.text(join(path, "name"), m["name"])
    chain_name = ctx.text(join(path, "chain"), m["chain"])
    if chain_name is None or name is None:
        return None
    chain = chains.get(chain_name)
    if chain is None:
        if chain_name not in chain_names:
            known = ", ".join(sorted(chain_names)) or "none"
            ctx.error(join(path, "chain"), f"unknown chain `{chain_name}`; the chains are {known}")
        return None
    address = _address(ctx, join(path, "address"), m["address"], chain)
    return None if address is None else Counterparty(chain=chain.name, address=address, name=name)


def _address(ctx: Ctx, path: str, value: Any, chain: ChainSettings) -> str | None:
    if chain.type == "ethereum":
        checked = eth_address(ctx, path, value)
        return checked.lower() if checked else None
    text = ctx.text(path, value)
    if text is None:
        return None
    from .chains.bitcoin.descriptors import check_address

    try:
        return check_address(text, chain.network or "bitcoin")
    except ValueError as e:
        ctx.error(path, str(e))
        return None


# -- rules.large_outflow, rules.unknown_destination ------------------------------------

# On in every preset: an outflow to an address neither own nor allowed, any amount of an
# asset not listed under `assets` (only while no `withdrawals` feed is configured)
DEFAULT_UNKNOWN_DESTINATION = UnknownDestinationRule(assets={}, severity="warning")


def _severity(ctx: Ctx, path: str, body: Mapping[str, Any], default: Severity) -> Severity:
    if body.get("severity") is None:
        return default
    chosen = ctx.choice(join(path, "severity"), body["severity"], SEVERITIES)
    return default if chosen is None else chosen  # type: ignore[return-value]


def read_large_outflow(ctx: Ctx, rules_path: str, m: Mapping[str, Any],
                       old: LargeOutflowRule | None) -> LargeOutflowRule | None:
    """`rules.large_outflow: {max_single, severity}` or `off` (off unless configured)."""
    if "large_outflow" not in m:
        return old
    if _off(m["large_outflow"]):
        return None
    path = join(rules_path, "large_outflow")
    body = ctx.mapping(path, m["large_outflow"], keys=("max_single", "severity"),
                       required=("max_single",))
    if body is None or "max_single" not in body:
        return old
    limit = ctx.decimal(join(path, "max_single"), body["max_single"])
    severity = _severity(ctx, path, body, old.severity if old else "critical")
    return old if limit is None else LargeOutflowRule(max_single=limit, severity=severity)


def read_unknown_destination(ctx: Ctx, rules_path: str, m: Mapping[str, Any],
                             old: UnknownDestinationRule | None, assets: Collection[str]
                             ) -> UnknownDestinationRule | None:
    """`rules.unknown_destination: {assets: {SYM: amount}, severity}` or `off`; listed
    amounts are merged over the preset's."""
    if "unknown_destination" not in m:
        return old
    if _off(m["unknown_destination"]):
        return None
    path = join(rules_path, "unknown_destination")
    body = ctx.mapping(path, m["unknown_destination"], keys=("assets", "severity"))
    base = old or DEFAULT_UNKNOWN_DESTINATION
    if body is None:
        return old
    limits = dict(base.assets)
    raw = body.get("assets")
    if raw is not None and not isinstance(raw, dict):
        ctx.error(join(path, "assets"), 'expected a mapping of asset to whole units: '
                                        '{ETH: "1", USDC: "1000"}')
        raw = None
    for sym, amount in (raw or {}).items():
        p = join(join(path, "assets"), sym)
        if sym not in assets:
            ctx.error(p, f"unknown asset `{sym}`; declare it under `assets`")
            continue
        d = ctx.decimal(p, amount)
        if d is not None:
            limits[str(sym)] = d
    return UnknownDestinationRule(assets=limits,
                                  severity=_severity(ctx, path, body, base.severity))
