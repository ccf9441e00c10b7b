"""HTTP prices from a local JSON server on 127.0.0.1, and the cross-check of two sources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from auditor.prices import fetch_prices
from auditor.prices_http import lookup
from auditor.settings import PriceSettings, Secret, redact_url

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class PriceServer:
    """Answers GET with `body` (bytes) and `status`, after `delay` seconds."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.status = 200
        self.delay = 0.0
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.paths.append(self.path)
                time.sleep(outer.delay)
                try:
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(outer.body)))
                    self.end_headers()
                    self.wfile.write(outer.body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/v1/prices?api_key=SECRET123") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[PriceServer]:
    s = PriceServer()
    yield s
    s.close()


def http_settings(url: str, paths: dict[str, str], *, max_age: int = 600, timeout: int = 2,
                  as_of_path: str | None = None, **kw: Any) -> PriceSettings:
    return PriceSettings(source="http", static={}, max_age=max_age, url=Secret(url),
                         url_label=redact_url(url), paths=paths, as_of_path=as_of_path,
                         timeout=timeout, **kw)


def test_good_answer_gives_exact_prices_from_strings_integers_and_json_numbers(server) -> None:
    server.body = (b'{"ethereum": {"jpy": "450000.123456789012345678"}, "bitcoin": {"jpy": 15000000},'
                   b' "usd-coin": {"jpy": 150.10000000000000000001}}')
    ps = http_settings(server.url(), {"ETH": "ethereum.jpy", "BTC": "bitcoin.jpy",
                                      "USDC": "usd-coin.jpy"})
    reading = fetch_prices(ps, ["ETH", "BTC", "USDC"], NOW)
    assert reading.problems == {}
    assert reading.prices["ETH"].value == Decimal("450000.123456789012345678")  # type: ignore[union-attr]
    assert reading.prices["BTC"].value == Decimal(15000000)  # type: ignore[union-attr]
    # A JSON number is parsed from its text: a float would have lost the tail.
    assert reading.prices["USDC"].value == Decimal("150.10000000000000000001")  # type: ignore[union-attr]
    eth = reading.prices["ETH"]
    assert eth is not None and eth.as_of == NOW
    assert eth.source == f"http:http://127.0.0.1:{server.server.server_address[1]}"
    assert server.paths == ["/v1/prices?api_key=SECRET123"]


def test_as_of_path_sets_the_quote_time_and_an_old_quote_is_stale(server) -> None:
    server.body = b'{"eth": "450000", "ts": "2026-11-24T09:55:00Z", "unix": 1795512000}'
    ps = http_settings(server.url(), {"ETH": "eth"}, as_of_path="ts")
    price = fetch_prices(ps, ["ETH"], NOW).prices["ETH"]
    assert price is not None and price.as_of == NOW - timedelta(minutes=5)
    stale = fetch_prices(ps, ["ETH"], NOW + timedelta(minutes=20))
    assert stale.prices["ETH"] is None and "1500s old (max 600s" in stale.problems["ETH"]
    unix = fetch_prices(http_settings(server.url(), {"ETH": "eth"}, as_of_path="unix",
                                      max_age=10**9), ["ETH"], NOW).prices["ETH"]
    assert unix is not None and unix.as_of == datetime.fromtimestamp(1795512000, UTC)


@pytest.mark.parametrize("body,reason", [
    (b"<html>rate limited</html>", "not valid JSON"),
    (b'{"ethereum": {"usd": "3000"}}', "has no `jpy` there"),
    (b'{"ethereum": {"jpy": "-1"}}', "is not a price (must be > 0)"),
    (b'{"ethereum": {"jpy": "0"}}', "is not a price (must be > 0)"),
    (b'{"ethereum": {"jpy": "4.5e5"}}', "not a plain decimal number"),
    (b'{"ethereum": {"jpy": true}}', "is not a number or a decimal string"),
    (b'{"ethereum": {"jpy": null}}', "is not a number or a decimal string"),
])
def test_malformed_answers_give_no_price_and_a_reason(server, body, reason) -> None:
    server.body = body
    reading = fetch_prices(http_settings(server.url(), {"ETH": "ethereum.jpy"}), ["ETH"], NOW)
    assert reading.prices["ETH"] is None
    assert reason in reading.problems["ETH"]
    assert "SECRET123" not in reading.problems["ETH"] and "/v1/prices" not in reading.problems["ETH"]


def test_an_error_status_gives_no_price(server) -> None:
    server.status = 503
    reading = fetch_prices(http_settings(server.url(), {"ETH": "x"}), ["ETH"], NOW)
    assert reading.prices["ETH"] is None and "HTTP 503" in reading.problems["ETH"]


def test_a_slow_server_times_out_and_gives_no_price(server) -> None:
    server.body, server.delay = b'{"x": "1"}', 3.0
    started = time.monotonic()
    reading = fetch_prices(http_settings(server.url(), {"ETH": "x"}, timeout=1), ["ETH"], NOW)
    assert time.monotonic() - started < 2.5
    assert reading.prices["ETH"] is None and "no answer within 1s" in reading.problems["ETH"]
    assert "SECRET123" not in reading.problems["ETH"]


def test_the_cycle_deadline_bounds_the_timeout(server) -> None:
    server.body, server.delay = b'{"x": "1"}', 3.0
    started = time.monotonic()
    reading = fetch_prices(http_settings(server.url(), {"ETH": "x"}, timeout=10), ["ETH"], NOW,
                           deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 2.0 and reading.prices["ETH"] is None


def test_an_unreachable_server_names_only_scheme_host_port() -> None:
    ps = http_settings("http://127.0.0.1:9/prices?key=SECRET123", {"ETH": "x"})
    reading = fetch_prices(ps, ["ETH"], NOW)
    assert reading.prices["ETH"] is None
    assert "http://127.0.0.1:9" in reading.problems["ETH"] and "SECRET123" not in reading.problems["ETH"]


def test_an_asset_without_a_path_has_no_price() -> None:
    reading = fetch_prices(PriceSettings(source="static", static={"ETH": Decimal(1)}),
                           ["ETH", "BTC"], NOW)
    assert reading.prices["BTC"] is None and "prices.static has no price for BTC" in reading.problems["BTC"]


# --- cross-check -----------------------------------------------------------------


def with_check(url: str, static: dict[str, str], max_deviation: str = "0.02") -> PriceSettings:
    check = PriceSettings(source="static", static={k: Decimal(v) for k, v in static.items()})
    return http_settings(url, {"ETH": "eth", "BTC": "btc"}, check=check,
                         max_deviation=Decimal(max_deviation))


def test_sources_that_disagree_give_no_price_naming_both_values(server) -> None:
    server.body = b'{"eth": "459001", "btc": "15000000"}'
    reading = fetch_prices(with_check(server.url(), {"ETH": "450000", "BTC": "15100000"}),
                           ["ETH", "BTC"], NOW)
    assert reading.prices["ETH"] is None
    assert "459001" in reading.problems["ETH"] and "450000" in reading.problems["ETH"]
    assert "max 2%" in reading.problems["ETH"]
    btc = reading.prices["BTC"]  # 0.66% apart: kept, the primary's value
    assert btc is not None and btc.value == Decimal(15000000)


def test_a_deviation_exactly_at_the_limit_is_kept(server) -> None:
    server.body = b'{"eth": "459000", "btc": "1"}'  # exactly 2% above 450000
    reading = fetch_prices(with_check(server.url(), {"ETH": "450000", "BTC": "1"}), ["ETH"], NOW)
    assert reading.prices["ETH"] is not None


def test_a_check_source_without_a_price_leaves_the_price_unconfirmed(server) -> None:
    server.body = b'{"eth": "450000", "btc": "1"}'
    reading = fetch_prices(with_check(server.url(), {"BTC": "1"}), ["ETH"], NOW)
    assert reading.prices["ETH"] is None and "unconfirmed" in reading.problems["ETH"]


def test_a_failing_check_server_gives_no_price(server) -> None:
    server.body = b'{"eth": "1"}'
    primary = PriceSettings(source="static", static={"ETH": Decimal("450000")})
    ps = PriceSettings(source="static", static={"ETH": Decimal("450000")},
                       check=http_settings(server.url(), {"ETH": "missing"}),
                       max_deviation=Decimal("0.02"))
    assert fetch_prices(primary, ["ETH"], NOW).prices["ETH"] is not None
    reading = fetch_prices(ps, ["ETH"], NOW)
    assert reading.prices["ETH"] is None and "has no `missing` there" in reading.problems["ETH"]


def test_lookup_walks_mappings_and_list_indexes() -> None:
    doc = {"data": [{"price": "1"}, {"price": "2"}]}
    assert lookup(doc, "data.1.price") == "2"
    with pytest.raises(KeyError):
        lookup(doc, "data.2.price")
