"""Customer liabilities from the exchange's ledger export (csv, json or sql).

CSV: a header row `asset,amount[,as_of]`, amounts in whole units as decimal
strings ("400.5"), `as_of` RFC 3339; without the column the file's
modification time is the as-of time. JSON: either
`{"as_of": "…", "balances": {"ETH": "400.5"}}` or a list of
`{"asset": …, "amount": …, "as_of": …}` objects. Each asset at most once.
SQL (`ledger_sql`): a query returning `asset, amount, as_of` rows.
Anything malformed raises InputError naming the file, row and fix: a
ledger that cannot be read is a `stale_data` alert, never a zero.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InputError
from .model import Liabilities
from .settings import AssetSettings, LiabilitiesSettings
from .times import parse_time
from .units import parse_amount

__all__ = ["Row", "load_liabilities", "parse_time", "validate_rows"]


def load_liabilities(ls: LiabilitiesSettings, assets: Mapping[str, AssetSettings]) -> Liabilities:
    if ls.source == "sql":
        from .ledger_sql import sql_rows  # SQLAlchemy only when a database is configured

        label = ls.url_label or "the ledger database"
        rows, fetched_at = sql_rows(ls)
        return validate_rows(label, rows, assets, fetched_at, f"sql:{label}")
    path = ls.path
    try:
        raw = path.read_text(encoding="utf-8")
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as e:
        raise InputError(f"{path}: cannot read the liabilities file ({e.strerror}); "
                         "check liabilities.path") from None
    found = _csv_rows(path, raw) if ls.source == "csv" else _json_rows(path, raw)
    return validate_rows(str(path), found, assets, mtime, f"{ls.source}:{path.name}")


Row = tuple[str, str, str, str | datetime | None]  # where, asset, amount text, as_of


def validate_rows(where_from: str, rows: Sequence[Row], assets: Mapping[str, AssetSettings],
                  fallback_as_of: datetime, source: str) -> Liabilities:
    """The checks every ledger source shares: known assets, once each, amounts
    within the asset's decimals and not negative, as_of with a timezone."""
    amounts: dict[str, int] = {}
    times: list[datetime] = []
    for where, asset, amount, as_of in rows:
        at = f"{where_from}: {where}"
        if asset not in assets:
            raise InputError(f"{at}: asset {asset!r} is not configured under `assets`; "
                             "add it there or remove it from the ledger export")
        if asset in amounts:
            raise InputError(f"{at}: asset {asset} is listed twice; give one total per asset")
        try:
            value = parse_amount(amount, assets[asset].decimals)
        except ValueError as e:
            raise InputError(f"{at}: amount {amount!r}: {e}; "
                             "write whole units as a decimal string, e.g. 400.5") from None
        if value < 0:
            raise InputError(f"{at}: amount of {asset} is negative")
        amounts[asset] = value
        if isinstance(as_of, datetime):
            if as_of.tzinfo is None:
                raise InputError(f"{at}: as_of {as_of.isoformat()} has no timezone; store "
                                 "timezone-aware times (or RFC 3339 text such as "
                                 "2026-11-24T10:00:00Z)")
            times.append(as_of.astimezone(UTC))
        elif as_of:
            try:
                times.append(parse_time(as_of))
            except ValueError as e:
                raise InputError(f"{at}: as_of {as_of!r}: {e}") from None
    # The oldest row decides how fresh the ledger is: one stale asset is enough to mislead.
    as_of_time = min(times) if times else fallback_as_of
    return Liabilities(amounts=amounts, as_of=as_of_time, source=source)


def _csv_rows(path: Path, raw: str) -> list[tuple[str, str, str, str | None]]:
    reader = csv.DictReader(raw.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "asset" not in fields or "amount" not in fields:
        raise InputError(f"{path}: the first row must be a header `asset,amount[,as_of]`; found {fields}")
    out = []
    for i, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        out.append((f"line {i}", row.get("asset", ""), row.get("amount", ""), row.get("as_of") or None))
    return out


def _json_rows(path: Path, raw: str) -> list[tuple[str, str, str, str | None]]:
    try:
        doc: Any = json.loads(raw, parse_float=lambda s: _no_float(path, s))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(doc, dict) and isinstance(doc.get("balances"), dict):
        as_of = doc.get("as_of")
        return [(f"balances.{k}", str(k), _amount_text(path, v), as_of)
                for k, v in doc["balances"].items()]
    if isinstance(doc, list):
        out = []
        for i, item in enumerate(doc):
            if not isinstance(item, dict) or "asset" not in item or "amount" not in item:
                raise InputError(f"{path}: [{i}]: each entry needs `asset` and `amount`")
            out.append((f"[{i}]", str(item["asset"]), _amount_text(path, item["amount"]),
                        item.get("as_of")))
        return out
    raise InputError(f'{path}: expected {{"as_of": …, "balances": {{"ETH": "400"}}}} '
                     "or a list of {asset, amount, as_of} objects")


def _amount_text(path: Path, v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise InputError(f"{path}: amount {v!r} must be a decimal string such as \"400.5\"")
    return str(v)


def _no_float(path: Path, s: str) -> str:
    raise InputError(f"{path}: the number {s} is not quoted; write amounts as strings "
                     "(\"400.5\") so no precision is lost")
