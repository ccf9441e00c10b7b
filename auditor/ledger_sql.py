"""Liabilities straight from the exchange's ledger database (SQLAlchemy 2).

`liabilities.url` is an SQLAlchemy URL (`postgresql+psycopg://auditor:…@db/ledger`,
`sqlite:///ledger.db`) and a secret: messages name it by `dsn_label`, which
drops the password and the query string. The configured query must return
columns `asset`, `amount` and `as_of` (rename with `AS`). An amount is a
decimal string, an integer or a Decimal (a float has already lost
precision and is refused); `as_of` is a timezone-aware datetime or RFC 3339
text. The rows then go through the same checks as a csv or json export.
Give the auditor a read-only database user: it only ever runs this query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .errors import InputError
from .ledger import Row
from .settings import LiabilitiesSettings
from .units import format_decimal

__all__ = ["COLUMNS", "dsn_label", "run_query", "sql_rows"]

COLUMNS = ("asset", "amount", "as_of")


def dsn_label(dsn: str) -> str:
    """driver://user@host:port/database of an SQLAlchemy URL: no password, no query.

    Raises ValueError when the text is not an SQLAlchemy URL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):
        raise ValueError("not an SQLAlchemy URL; write it like "
                         "postgresql+psycopg://user:password@host:5432/ledger or "
                         "sqlite:///path/to/ledger.db") from None
    user = f"{url.username}@" if url.username else ""
    host = url.host or ""
    port = f":{url.port}" if url.port else ""
    return f"{url.drivername}://{user}{host}{port}/{url.database or ''}"


def run_query(dsn: str, query: str, label: str, what: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(lowercase column names, rows) of `query`; InputError naming `label` and the
    config section `what` (liabilities, withdrawals) on any trouble, never the DSN."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    failure: str | None = None
    names: list[str] = []
    raw: list[tuple[Any, ...]] = []
    try:
        engine = create_engine(dsn, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                result = conn.execute(text(query))
                names = [str(k).lower() for k in result.keys()]
                raw = [tuple(r) for r in result.fetchall()]
        finally:
            engine.dispose()
    except SQLAlchemyError as e:
        failure = _scrub(_reason(e), dsn, what)
    except ImportError as e:  # SQLAlchemy loads the URL's driver on first use
        failure = f"the database driver is not installed ({e.name or e}); pip install it"
    if failure is not None:  # raised outside `except`: no context carrying the DSN
        raise InputError(f"{label}: the {what} query failed: {failure}; check "
                         f"{what}.url, {what}.query and that the auditor's database "
                         "user may read the table")
    return names, raw


def sql_rows(ls: LiabilitiesSettings) -> tuple[list[Row], datetime]:
    """The query's rows as ledger rows, and the time they were read."""
    assert ls.url is not None and ls.query is not None
    label = ls.url_label or "the ledger database"
    names, raw = run_query(ls.url.reveal(), ls.query, label, "liabilities")
    fetched_at = datetime.now(UTC)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{label}: the liabilities query returns columns {names}, without "
                         f"{', '.join(missing)}; select asset, amount and as_of (rename "
                         "with AS, e.g. `select sym as asset, …`)")
    at = [names.index(c) for c in COLUMNS]
    return [_row(label, i, r[at[0]], r[at[1]], r[at[2]]) for i, r in enumerate(raw, 1)], fetched_at


def _row(label: str, i: int, asset: Any, amount: Any, as_of: Any) -> Row:
    where = f"row {i}"
    if not isinstance(asset, str):
        raise InputError(f"{label}: {where}: asset {asset!r} is not text; select the asset symbol")
    if isinstance(amount, float):
        raise InputError(f"{label}: {where}: the amount of {asset} is a binary float "
                         f"({amount!r}) and may have lost precision; store amounts as NUMERIC "
                         "or text, or cast them in the query (`cast(amount as text)`)")
    if isinstance(amount, Decimal):
        amount = format_decimal(amount)
    elif isinstance(amount, int) and not isinstance(amount, bool):
        amount = str(amount)
    elif not isinstance(amount, str):
        raise InputError(f"{label}: {where}: the amount of {asset} is {amount!r}; select a "
                         "decimal string, an integer or a NUMERIC")
    if as_of is not None and not isinstance(as_of, (str, datetime)):
        raise InputError(f"{label}: {where}: as_of {as_of!r} is neither a timestamp nor "
                         "RFC 3339 text")
    if as_of is None:
        raise InputError(f"{label}: {where}: as_of of {asset} is empty; every row needs the "
                         "time its balance was taken")
    return (where, asset, amount, as_of)


def _reason(e: Exception) -> str:
    orig = getattr(e, "orig", None)
    base = orig if isinstance(orig, Exception) else e
    first = str(base).splitlines()[0] if str(base) else ""
    return f"{type(base).__name__}: {first[:200]}" if first else type(base).__name__


def _scrub(text: str, dsn: str, what: str) -> str:
    from sqlalchemy.engine import make_url

    out = text.replace(dsn, f"<{what}.url>")
    try:
        password = make_url(dsn).password
    except Exception:  # noqa: BLE001 - the label is best effort; the DSN is already gone
        password = None
    if password:
        out = out.replace(str(password), "***")
    return out
