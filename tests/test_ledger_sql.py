"""SQL liabilities from a real SQLite database file through SQLAlchemy."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.ledger import load_liabilities
from auditor.ledger_sql import dsn_label
from auditor.settings import AssetSettings, Deployment, LiabilitiesSettings, Secret

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
}
QUERY = "select asset, amount, as_of from customer_balances"


def db(tmp_path: Path, rows: list[tuple[object, object, object]], amount_type: str = "TEXT") -> str:
    path = tmp_path / "ledger.db"
    con = sqlite3.connect(path)
    con.execute(f"create table customer_balances (asset TEXT, amount {amount_type}, as_of TEXT)")
    con.executemany("insert into customer_balances values (?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def ls(url: str, query: str = QUERY) -> LiabilitiesSettings:
    return LiabilitiesSettings(source="sql", path=Path(), max_age=3600, url=Secret(url),
                               url_label=dsn_label(url), query=query)


def test_rows_become_liabilities_with_the_oldest_as_of(tmp_path) -> None:
    url = db(tmp_path, [("ETH", "400.5", "2026-11-24T10:00:00Z"),
                        ("USDC", "7000000.000001", "2026-11-24T09:30:00+09:00")])
    led = load_liabilities(ls(url), ASSETS)
    assert led.amounts == {"ETH": 4005 * 10**17, "USDC": 7_000_000_000_001}
    assert led.as_of == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
    assert led.source == f"sql:sqlite:///{tmp_path / 'ledger.db'}"


def test_integer_and_numeric_amounts_are_accepted(tmp_path) -> None:
    url = db(tmp_path, [("ETH", 400, "2026-11-24T10:00:00Z")], amount_type="INTEGER")
    assert load_liabilities(ls(url), ASSETS).amounts == {"ETH": 400 * 10**18}


def test_float_amounts_are_refused_with_a_fix(tmp_path) -> None:
    url = db(tmp_path, [("ETH", 400.5, "2026-11-24T10:00:00Z")], amount_type="REAL")
    with pytest.raises(InputError, match=r"row 1: the amount of ETH is a binary float .*cast"):
        load_liabilities(ls(url), ASSETS)
    # Cast in the query and it reads exactly.
    cast = "select asset, cast(amount as text) as amount, as_of from customer_balances"
    assert load_liabilities(ls(url, cast), ASSETS).amounts == {"ETH": 4005 * 10**17}


@pytest.mark.parametrize("rows,message", [
    ([("DOGE", "1", "2026-11-24T10:00:00Z")], "asset 'DOGE' is not configured"),
    ([("ETH", "1", "2026-11-24T10:00:00Z"), ("ETH", "2", "2026-11-24T10:00:00Z")], "listed twice"),
    ([("ETH", "-1", "2026-11-24T10:00:00Z")], "negative"),
    ([("USDC", "1.0000001", "2026-11-24T10:00:00Z")], "more than 6 decimal places"),
    ([("ETH", "1", "2026-11-24T10:00:00")], "has no timezone"),
    ([("ETH", "1", None)], "as_of of ETH is empty"),
    ([("ETH", None, "2026-11-24T10:00:00Z")], "the amount of ETH is None"),
])
def test_the_same_validation_as_the_file_exports(tmp_path, rows, message) -> None:
    with pytest.raises(InputError, match=message):
        load_liabilities(ls(db(tmp_path, rows)), ASSETS)


def test_a_query_without_the_columns_says_how_to_rename(tmp_path) -> None:
    url = db(tmp_path, [("ETH", "1", "2026-11-24T10:00:00Z")])
    with pytest.raises(InputError, match="without as_of; select asset, amount and as_of"):
        load_liabilities(ls(url, "select asset, amount from customer_balances"), ASSETS)


def test_a_failing_query_names_the_database_but_never_the_password(tmp_path) -> None:
    url = db(tmp_path, [])
    with pytest.raises(InputError, match="no such table: nope") as e:
        load_liabilities(ls(url, "select asset, amount, as_of from nope"), ASSETS)
    assert "liabilities.query" in str(e.value)
    pg = "postgresql://auditor:hunter2@127.0.0.1:1/ledger?sslkey=/k"
    with pytest.raises(InputError) as e2:
        load_liabilities(ls(pg), ASSETS)
    assert "hunter2" not in str(e2.value) and "sslkey" not in str(e2.value)
    assert "postgresql://auditor@127.0.0.1:1/ledger" in str(e2.value)
    assert e2.value.__context__ is None and e2.value.__cause__ is None


def test_dsn_label_drops_password_and_query() -> None:
    assert dsn_label("postgresql+psycopg://u:p%40ss@db.internal:5432/ledger?sslmode=require") \
        == "postgresql+psycopg://u@db.internal:5432/ledger"
    with pytest.raises(ValueError, match="not an SQLAlchemy URL"):
        dsn_label("not a url")
