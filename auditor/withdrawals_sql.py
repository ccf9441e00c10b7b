"""Approved withdrawal requests straight from the back-office database (SQLAlchemy 2).

`withdrawals.url` is an SQLAlchemy URL and a secret: messages name it by
`ledger_sql.dsn_label` (no password, no query string). The configured query
must return the columns `id`, `asset`, `to`, `amount`, `approved_at` and
optionally `fee` (rename with `AS`; `to` is an SQL keyword, so quote it:
`select dest as "to"`). Amounts are decimal text, integers or NUMERIC (a
float has lost precision and is refused); `approved_at` is a timezone-aware
timestamp or RFC 3339 text. The rows then go through the same checks as a
csv or json export (`withdrawals.validate_requests`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InputError
from .settings import WithdrawalsSettings
from .withdrawals import COLUMNS, RawRow

__all__ = ["sql_rows"]


def sql_rows(ws: WithdrawalsSettings) -> tuple[list[RawRow], datetime]:
    """The query's rows (column → value) and the time they were read."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    assert ws.url is not None and ws.query is not None
    dsn = ws.url.reveal()
    label = ws.url_label or "the withdrawals database"
    failure: str | None = None
    try:
        engine = create_engine(dsn, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                result = conn.execute(text(ws.query))
                names = [str(k).lower() for k in result.keys()]
                raw = [tuple(r) for r in result.fetchall()]
        finally:
            engine.dispose()
    except SQLAlchemyError as e:
        failure = _scrub(_reason(e), dsn)
    except ImportError as e:  # SQLAlchemy loads the URL's driver on first use
        failure = f"the database driver is not installed ({e.name or e}); pip install it"
    if failure is not None:  # raised outside `except`: no context carrying the DSN
        raise InputError(f"{label}: the withdrawals query failed: {failure}; check "
                         "withdrawals.url, withdrawals.query and that the auditor's database "
                         "user may read the table")
    fetched_at = datetime.now(UTC)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{label}: the withdrawals query returns columns {names}, without "
                         f"{', '.join(missing)}; select id, asset, \"to\", amount, approved_at "
                         "[, fee] (rename with AS)")
    wanted = [*COLUMNS, "fee"] if "fee" in names else list(COLUMNS)
    at = {c: names.index(c) for c in wanted}
    return [(f"row {i}", {c: r[j] for c, j in at.items()}) for i, r in enumerate(raw, 1)], fetched_at


def _reason(e: Exception) -> str:
    orig = getattr(e, "orig", None)
    base = orig if isinstance(orig, Exception) else e
    first = str(base).splitlines()[0] if str(base) else ""
    return f"{type(base).__name__}: {first[:200]}" if first else type(base).__name__


def _scrub(text: str, dsn: str) -> str:
    from sqlalchemy.engine import make_url

    out = text.replace(dsn, "<withdrawals.url>")
    try:
        password = make_url(dsn).password
    except Exception:  # noqa: BLE001 - the label is best effort; the DSN is already gone
        password = None
    if password:
        out = out.replace(str(password), "***")
    return out
