"""Approved customer withdrawal requests from the exchange's back office (csv, json or sql).

Every online outflow that is not internal must match one of these requests
(`unmatched_outflow`, DESIGN.md "Rules"). Each row has `id`, `asset`, `to`,
`amount` (whole units as a decimal string, "0.5"), `approved_at` (RFC 3339
with a zone) and optionally `fee` (whole units the exchange keeps out of the
amount: the transfer then carries `amount − fee`).

CSV: a header row with those column names. JSON: a list of objects with
those keys (amounts as strings: an unquoted number with a fraction is
refused, it may have lost precision). SQL (`withdrawals_sql`): a query
returning those columns. `to` is normalised like the chains write addresses:
Ethereum lowercase `0x…` (a mixed-case address must carry a valid EIP-55
checksum), Bitcoin as the network writes it (bech32 lowercased, base58 as
given). Any malformed row makes the whole feed unreadable (InputError naming
the file, row and column): a feed that cannot be trusted is never read as
"no requests" silently, nor as a partial list.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import InputError
from .settings import AssetSettings, ChainSettings, WithdrawalsSettings
from .times import parse_time
from .units import format_decimal, parse_amount

__all__ = [
    "COLUMNS",
    "WithdrawalFeed",
    "WithdrawalRequest",
    "fee_tolerances",
    "load_withdrawal_feed",
    "load_withdrawals",
    "normalise_address",
    "validate_requests",
]

COLUMNS = ("id", "asset", "to", "amount", "approved_at")  # plus the optional `fee`
_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")

RawRow = tuple[str, Mapping[str, object]]  # where ("line 3", "[2]", "row 1"), column → value


@dataclass(frozen=True)
class WithdrawalRequest:
    """One approved request. `amount` and `fee` are in the asset's base units;
    `to` is normalised (see the module doc)."""

    id: str
    asset: str
    to: str
    amount: int
    approved_at: datetime
    fee: int = 0


@dataclass(frozen=True)
class WithdrawalFeed:
    """The requests and how fresh they are: a file's modification time, or the
    time the query ran (compare with `withdrawals.max_age`)."""

    requests: tuple[WithdrawalRequest, ...]
    as_of: datetime
    source: str  # "csv:withdrawals.csv", "sql:postgresql+psycopg://auditor@db:5432/bo"


def load_withdrawals(ws: WithdrawalsSettings, assets: Mapping[str, AssetSettings],
                     chains: Mapping[str, ChainSettings]) -> list[WithdrawalRequest]:
    """Every request of the feed. Raises InputError on any trouble."""
    return list(load_withdrawal_feed(ws, assets, chains).requests)


def load_withdrawal_feed(ws: WithdrawalsSettings, assets: Mapping[str, AssetSettings],
                         chains: Mapping[str, ChainSettings]) -> WithdrawalFeed:
    """The requests with their freshness. Raises InputError on any trouble."""
    if ws.source == "sql":
        from .withdrawals_sql import sql_rows  # SQLAlchemy only when a database is configured

        label = ws.url_label or "the withdrawals database"
        rows, fetched_at = sql_rows(ws)
        return WithdrawalFeed(validate_requests(label, rows, assets, chains), fetched_at,
                              f"sql:{label}")
    if ws.path is None:
        raise InputError("withdrawals.path is not set; give the csv or json file of approved "
                         "requests")
    path = ws.path
    try:
        raw = path.read_text(encoding="utf-8")
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise InputError(f"{path}: cannot read the withdrawals file ({reason}); check "
                         "withdrawals.path") from None
    rows = _csv_rows(path, raw) if ws.source == "csv" else _json_rows(path, raw)
    return WithdrawalFeed(validate_requests(str(path), rows, assets, chains), mtime,
                          f"{ws.source}:{path.name}")


def fee_tolerances(ws: WithdrawalsSettings | None,
                   assets: Mapping[str, AssetSettings]) -> dict[str, int]:
    """`withdrawals.fee_tolerance` in each asset's base units (for `flows.classify`)."""
    if ws is None:
        return {}
    out: dict[str, int] = {}
    for sym, amount in ws.fee_tolerance.items():
        if sym in assets:
            out[sym] = parse_amount(amount, assets[sym].decimals)
    return out


# --- validation shared by every source ----------------------------------------------


def validate_requests(where_from: str, rows: Sequence[RawRow], assets: Mapping[str, AssetSettings],
                      chains: Mapping[str, ChainSettings]) -> tuple[WithdrawalRequest, ...]:
    """Rows → requests: known assets, valid addresses, amounts within the asset's
    decimals and above 0, a fee below the amount, times with a zone, ids once each."""
    out: list[WithdrawalRequest] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        req = _request(f"{where_from}: {where}", row, assets, chains)
        if req.id in seen:
            raise InputError(f"{where_from}: {where}: column `id`: request {req.id!r} is "
                             f"listed twice (first at {seen[req.id]}); give each request once")
        seen[req.id] = where
        out.append(req)
    return tuple(out)


def _request(at: str, row: Mapping[str, object], assets: Mapping[str, AssetSettings],
             chains: Mapping[str, ChainSettings]) -> WithdrawalRequest:
    def bad(column: str, message: str) -> InputError:
        return InputError(f"{at}: column `{column}`: {message}")

    ident = _text(row.get("id"))
    if not ident:
        raise bad("id", "empty; every request needs its id from the back office")
    asset = _text(row.get("asset"))
    if asset not in assets:
        raise bad("asset", f"{asset!r} is not configured under `assets`; add it there or "
                           "leave the request out of the export")
    decimals = assets[asset].decimals
    try:
        to = normalise_address(_text(row.get("to")), asset, assets, chains)
    except ValueError as e:
        raise bad("to", str(e)) from None
    amount = _amount(bad, "amount", row.get("amount"), decimals)
    if amount <= 0:
        raise bad("amount", f"{_text(row.get('amount'))} is not above 0")
    fee = 0
    if row.get("fee") not in (None, ""):
        fee = _amount(bad, "fee", row.get("fee"), decimals)
        if fee < 0 or fee >= amount:
            raise bad("fee", f"{_text(row.get('fee'))} must be 0 or more and below the amount")
    return WithdrawalRequest(id=ident, asset=asset, to=to, amount=amount,
                             approved_at=_time(bad, row.get("approved_at")), fee=fee)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else repr(value)


def _amount(bad: Any, column: str, value: object, decimals: int) -> int:
    if isinstance(value, float):
        raise bad(column, f"{value!r} is a binary float and may have lost precision; write "
                          "whole units as a decimal string (\"0.5\"), or NUMERIC/text in SQL")
    if isinstance(value, Decimal):
        value = format_decimal(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise bad(column, f"{value!r} is not an amount; write whole units as a decimal "
                          "string such as \"0.5\"")
    try:
        return parse_amount(value, decimals)
    except ValueError as e:
        raise bad(column, f"{e}; write whole units as a decimal string such as \"0.5\"") from None


def _time(bad: Any, value: object) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise bad("approved_at", f"{value.isoformat()} has no timezone; store timezone-aware "
                                     "times or RFC 3339 text such as 2026-11-24T10:00:00Z")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not value.strip():
        raise bad("approved_at", "empty; give the approval time as RFC 3339, e.g. "
                                 "2026-11-24T10:00:00Z")
    try:
        return parse_time(value)
    except ValueError as e:
        raise bad("approved_at", f"{value!r}: {e}; write RFC 3339 such as "
                                 "2026-11-24T10:00:00Z") from None


def normalise_address(text: str, asset: str, assets: Mapping[str, AssetSettings],
                      chains: Mapping[str, ChainSettings]) -> str:
    """`text` as the chains of `asset` write addresses; ValueError saying why not."""
    if not text:
        raise ValueError("empty; give the destination address")
    on = [chains[d.chain] for d in assets[asset].deployments if d.chain in chains]
    if any(c.type == "ethereum" for c in on) and _HEX40.match(text):
        return _eth(text)
    bitcoin = [c for c in on if c.type == "bitcoin"]
    if bitcoin:
        from .chains.bitcoin.addresses import check_address

        return check_address(text, bitcoin[0].network or "bitcoin")
    shown = text if len(text) <= 64 else text[:12] + "…"
    raise ValueError(f"{shown!r} is not an Ethereum address (0x followed by 40 hex digits); "
                     f"{asset} lives on {', '.join(c.name for c in on) or 'no configured chain'}")


def _eth(text: str) -> str:
    body = text[2:]
    if body != body.lower() and body != body.upper():
        from eth_utils.address import is_checksum_address

        if not is_checksum_address(text):
            raise ValueError(f"{text} has a wrong EIP-55 checksum (mixed case); check the "
                             "address, or export it all lowercase")
    return text.lower()


# --- files ---------------------------------------------------------------------


def _csv_rows(path: Path, raw: str) -> list[RawRow]:
    reader = csv.DictReader(raw.splitlines())
    fields = [(f or "").strip() for f in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise InputError(f"{path}: the first row must be a header "
                         f"`{','.join(COLUMNS)}[,fee]`; it lacks {', '.join(missing)}")
    out: list[RawRow] = []
    for i, row in enumerate(reader, start=2):
        clean = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v
                 for k, v in row.items()}
        if not any(clean.values()):
            continue
        if None in row:
            raise InputError(f"{path}: line {i}: more values than header columns; quote "
                             "values that contain a comma")
        out.append((f"line {i}", clean))
    return out


def _json_rows(path: Path, raw: str) -> list[RawRow]:
    try:
        doc: Any = json.loads(raw, parse_float=lambda s: _no_float(path, s))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, list):
        raise InputError(f"{path}: expected a list of requests: "
                         '[{"id": …, "asset": …, "to": …, "amount": "0.5", "approved_at": …}]')
    out: list[RawRow] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise InputError(f"{path}: [{i}]: each request is an object with "
                             f"{', '.join(COLUMNS)}")
        missing = [c for c in COLUMNS if c not in item]
        if missing:
            raise InputError(f"{path}: [{i}]: column `{missing[0]}`: missing; each request "
                             f"needs {', '.join(COLUMNS)}")
        out.append((f"[{i}]", item))
    return out


def _no_float(path: Path, s: str) -> str:
    raise InputError(f"{path}: the number {s} is not quoted; write amounts as strings "
                     "(\"0.5\") so no precision is lost")
