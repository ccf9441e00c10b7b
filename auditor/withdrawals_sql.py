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
from .ledger_sql import run_query
from .settings import WithdrawalsSettings
from .withdrawals import COLUMNS, RawRow

__all__ = ["sql_rows"]


def sql_rows(ws: WithdrawalsSettings) -> tuple[list[RawRow], datetime]:
    """The query's rows (column → value) and the time they were read."""
    assert ws.url is not None and ws.query is not None
    label = ws.url_label or "the withdrawals database"
    names, raw = run_query(ws.url.reveal(), ws.query, label, "withdrawals")
    fetched_at = datetime.now(UTC)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InputError(f"{label}: the withdrawals query returns columns {names}, without "
                         f"{', '.join(missing)}; select id, asset, \"to\", amount, approved_at "
                         "[, fee] (rename with AS)")
    wanted = [*COLUMNS, "fee"] if "fee" in names else list(COLUMNS)
    at = {c: names.index(c) for c in wanted}
    return [(f"row {i}", {c: r[j] for c, j in at.items()}) for i, r in enumerate(raw, 1)], fetched_at
