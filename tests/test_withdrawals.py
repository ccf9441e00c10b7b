"""The withdrawal-request feed: csv, json and sql (a real SQLite file), and every bad row."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.settings import AssetSettings, ChainSettings, Deployment, Secret, WithdrawalsSettings
from auditor.withdrawals import (
    WithdrawalRequest,
    fee_tolerances,
    load_withdrawal_feed,
    load_withdrawals,
)

ASSETS = {
    "ETH": AssetSettings("ETH", "crypto", 18, (Deployment("ethereum", None, 18),)),
    "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment("ethereum", "0x" + "a" * 40, 6),)),
    "BTC": AssetSettings("BTC", "crypto", 8, (Deployment("bitcoin", None, 8),)),
}
CHAINS = {"ethereum": ChainSettings("ethereum", "ethereum"),
          "bitcoin": ChainSettings("bitcoin", "bitcoin", network="bitcoin")}
CHECKSUMMED = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BECH32_UPPER = "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ"
BASE58 = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
HEADER = "id,asset,to,amount,approved_at,fee\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> WithdrawalsSettings:
    path = tmp_path / "withdrawals.csv"
    path.write_text(header + body, encoding="utf-8")
    return WithdrawalsSettings(source="csv", path=path)


def _load(ws: WithdrawalsSettings) -> list[WithdrawalRequest]:
    return load_withdrawals(ws, ASSETS, CHAINS)


def test_csv_rows_become_requests_in_base_units_with_normalised_addresses(tmp_path):
    ws = _csv(tmp_path, f"w-1,ETH,{CHECKSUMMED},1.5,2026-11-24T10:00:00Z,0.001\n"
                        f"w-2,BTC,{BECH32_UPPER},0.5,2026-11-24T19:00:00+09:00,\n"
                        f"w-3,BTC,{BASE58},1,2026-11-24T10:00:00Z,\n"
                        "\n")
    reqs = _load(ws)
    assert reqs == [
        WithdrawalRequest("w-1", "ETH", CHECKSUMMED.lower(), 15 * 10**17,
                          datetime(2026, 11, 24, 10, tzinfo=UTC), fee=10**15),
        WithdrawalRequest("w-2", "BTC", BECH32_UPPER.lower(), 5 * 10**7,
                          datetime(2026, 11, 24, 10, tzinfo=UTC)),
        WithdrawalRequest("w-3", "BTC", BASE58, 10**8, datetime(2026, 11, 24, 10, tzinfo=UTC)),
    ]


def test_feed_carries_the_file_time_and_source(tmp_path):
    ws = _csv(tmp_path, f"w-1,USDC,{CHECKSUMMED},100,2026-11-24T10:00:00Z,\n")
    feed = load_withdrawal_feed(ws, ASSETS, CHAINS)
    assert feed.source == "csv:withdrawals.csv"
    assert feed.as_of.tzinfo is not None and feed.requests[0].amount == 100 * 10**6


def test_csv_without_the_fee_column_is_fine(tmp_path):
    ws = _csv(tmp_path, f"w-1,ETH,{CHECKSUMMED},2,2026-11-24T10:00:00Z\n",
              header="id,asset,to,amount,approved_at\n")
    assert _load(ws)[0].fee == 0


def test_json_list_of_requests(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps([
        {"id": 17, "asset": "USDC", "to": CHECKSUMMED.lower(), "amount": "250.5",
         "approved_at": "2026-11-24T10:00:00Z", "fee": "0.5"},
        {"id": "b", "asset": "ETH", "to": CHECKSUMMED, "amount": 3,
         "approved_at": "2026-11-24T10:00:00Z"},
    ]))
    reqs = _load(WithdrawalsSettings(source="json", path=path))
    assert [(r.id, r.amount, r.fee) for r in reqs] == [("17", 250_500_000, 500_000),
                                                       ("b", 3 * 10**18, 0)]


def _sqlite(tmp_path: Path, rows: list[tuple[object, ...]], fee: bool = True) -> WithdrawalsSettings:
    db = tmp_path / "bo.db"
    con = sqlite3.connect(db)
    con.execute("create table requests (ref text, sym text, dest text, qty, at text, fee text)")
    con.executemany("insert into requests values (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    cols = 'ref as id, sym as asset, dest as "to", qty as amount, at as approved_at'
    query = f"select {cols}{', fee' if fee else ''} from requests order by ref"
    return WithdrawalsSettings(source="sql", url=Secret(f"sqlite:///{db}"),
                               url_label="sqlite:///bo.db", query=query)


def test_sql_rows_through_a_real_sqlite_file(tmp_path):
    ws = _sqlite(tmp_path, [("a", "ETH", CHECKSUMMED, "1.25", "2026-11-24T10:00:00Z", None),
                            ("b", "BTC", BECH32_UPPER, "0.1", "2026-11-24T10:00:00Z", "0.0001")])
    feed = load_withdrawal_feed(ws, ASSETS, CHAINS)
    assert feed.source == "sql:sqlite:///bo.db"
    assert [(r.id, r.to, r.amount, r.fee) for r in feed.requests] == [
        ("a", CHECKSUMMED.lower(), 125 * 10**16, 0),
        ("b", BECH32_UPPER.lower(), 10**7, 10**4)]


def test_sql_without_fee_column_and_float_amount_refused(tmp_path):
    ws = _sqlite(tmp_path, [("a", "ETH", CHECKSUMMED, "1", "2026-11-24T10:00:00Z", None)],
                 fee=False)
    assert _load(ws)[0].fee == 0
    db = tmp_path / "bo.db"
    con = sqlite3.connect(db)
    con.execute("update requests set qty = 1.5")
    con.commit()
    con.close()
    with pytest.raises(InputError) as e:
        _load(ws)
    assert "row 1: column `amount`" in str(e.value) and "float" in str(e.value)


def test_sql_query_failure_names_the_label_not_the_url(tmp_path):
    ws = _sqlite(tmp_path, [])
    broken = WithdrawalsSettings(source="sql", url=ws.url, url_label=ws.url_label,
                                 query="select * from nowhere")
    with pytest.raises(InputError) as e:
        _load(broken)
    assert "sqlite:///bo.db: the withdrawals query failed" in str(e.value)
    assert str(tmp_path) not in str(e.value)


def test_sql_missing_columns_are_named(tmp_path):
    ws = _sqlite(tmp_path, [])
    short = WithdrawalsSettings(source="sql", url=ws.url, url_label=ws.url_label,
                                query="select ref as id, sym as asset from requests")
    with pytest.raises(InputError, match="without to, amount, approved_at"):
        _load(short)


GOOD = f"w-1,ETH,{CHECKSUMMED},1,2026-11-24T10:00:00Z,\n"


@pytest.mark.parametrize("row,column,fragment", [
    (f",ETH,{CHECKSUMMED},1,2026-11-24T10:00:00Z,\n", "id", "empty"),
    (f"w-2,DOGE,{CHECKSUMMED},1,2026-11-24T10:00:00Z,\n", "asset", "not configured"),
    ("w-2,ETH,0x1234,1,2026-11-24T10:00:00Z,\n", "to", "not an Ethereum address"),
    (f"w-2,ETH,{CHECKSUMMED[:-1]}9,1,2026-11-24T10:00:00Z,\n", "to", "EIP-55"),
    (f"w-2,BTC,{CHECKSUMMED},1,2026-11-24T10:00:00Z,\n", "to", "not a Bitcoin address"),
    ("w-2,BTC,tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx,1,2026-11-24T10:00:00Z,\n", "to",
     "network is bitcoin"),
    (f"w-2,ETH,{CHECKSUMMED},1.5.2,2026-11-24T10:00:00Z,\n", "amount", "decimal string"),
    (f"w-2,BTC,{BASE58},0.000000001,2026-11-24T10:00:00Z,\n", "amount", "8 decimal places"),
    (f"w-2,ETH,{CHECKSUMMED},0,2026-11-24T10:00:00Z,\n", "amount", "not above 0"),
    (f"w-2,ETH,{CHECKSUMMED},-1,2026-11-24T10:00:00Z,\n", "amount", "not above 0"),
    (f"w-2,ETH,{CHECKSUMMED},1,2026-11-24 10:00:00,\n", "approved_at", "no timezone"),
    (f"w-2,ETH,{CHECKSUMMED},1,yesterday,\n", "approved_at", "RFC 3339"),
    (f"w-2,ETH,{CHECKSUMMED},1,,\n", "approved_at", "empty"),
    (f"w-2,ETH,{CHECKSUMMED},1,2026-11-24T10:00:00Z,1\n", "fee", "below the amount"),
    (f"w-1,ETH,{CHECKSUMMED},1,2026-11-24T10:00:00Z,\n", "id", "listed twice"),
])
def test_bad_csv_row_names_file_line_and_column(tmp_path, row, column, fragment):
    ws = _csv(tmp_path, GOOD + row)
    with pytest.raises(InputError) as e:
        _load(ws)
    assert f"withdrawals.csv: line 3: column `{column}`:" in str(e.value)
    assert fragment in str(e.value)


def test_csv_header_must_name_the_columns(tmp_path):
    with pytest.raises(InputError, match="header .* lacks approved_at"):
        _load(_csv(tmp_path, GOOD, header="id,asset,to,amount,when,fee\n"))


def test_csv_extra_values_are_refused(tmp_path):
    with pytest.raises(InputError, match="line 2: more values than header columns"):
        _load(_csv(tmp_path, f"w-1,ETH,{CHECKSUMMED},1,5,2026-11-24T10:00:00Z,\n"))


@pytest.mark.parametrize("doc,fragment", [
    ('{"id": "x"}', "expected a list of requests"),
    ('[{"id": "a", "asset": "ETH", "to": "x", "amount": 1.5, "approved_at": "x"}]',
     "not quoted"),
    ('[{"id": "a", "asset": "ETH", "amount": "1", "approved_at": "x"}]',
     "[0]: column `to`: missing"),
    ('[{"id": "a", "asset": "ETH", "to": "0x' + "1" * 40 + '", "amount": true, '
     '"approved_at": "2026-11-24T10:00:00Z"}]', "[0]: column `amount`"),
    ("[1, 2]", "[0]: each request is an object"),
    ("[", "not valid JSON"),
])
def test_bad_json_names_file_and_entry(tmp_path, doc, fragment):
    path = tmp_path / "w.json"
    path.write_text(doc)
    with pytest.raises(InputError) as e:
        _load(WithdrawalsSettings(source="json", path=path))
    assert str(e.value).startswith(str(path)) and fragment in str(e.value)


def test_unreadable_file_says_which_key_to_check(tmp_path):
    with pytest.raises(InputError, match="check withdrawals.path"):
        _load(WithdrawalsSettings(source="csv", path=tmp_path / "missing.csv"))


def test_fee_tolerances_in_base_units():
    ws = WithdrawalsSettings(source="csv", path=Path("x"),
                             fee_tolerance={"ETH": Decimal("0.001"), "BTC": Decimal("0.0001")})
    assert fee_tolerances(ws, ASSETS) == {"ETH": 10**15, "BTC": 10**4}
    assert fee_tolerances(None, ASSETS) == {}
