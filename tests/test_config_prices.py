"""The `prices` (static, chainlink, http, check) and `liabilities` (csv, json, sql) sections."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from test_config_fixtures import full_config, problems_of, write

from auditor.config import check_config, load_config

ETH_FEED = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
USDC_FEED = "0x8fFfFfd4AfB6115b954Bd326cbe7B4BA576818f6"
JPY_FEED = "0xBcE206caE7f0ec07b545EddE332A47C2F75bbeb3"
STATIC = """prices:
  source: static
  static: {ETH: "450000.5", USDC: 150}
  max_age: 10m
"""
ENV = {"SOC_SECRET": "x", "PRICE_URL": "https://prices.example/v1?key=SECRET123",
       "LEDGER_DSN": "postgresql://auditor:hunter2@db.internal:5432/ledger"}


def with_prices(block: str) -> str:
    cfg = full_config()
    assert STATIC in cfg
    return cfg.replace(STATIC, block)


def chainlink(extra: str = "", feeds: str = f'{{ETH: "{ETH_FEED}", USDC: "{USDC_FEED}"}}') -> str:
    return (f"prices:\n  source: chainlink\n  chain: ethereum\n  feeds: {feeds}\n"
            f'  fiat_feed: "{JPY_FEED}"\n  max_age: 1h\n{extra}')


def test_chainlink_prices_load(tmp_path) -> None:
    s = load_config(write(tmp_path, with_prices(chainlink())), env=ENV)
    p = s.prices
    assert p.source == "chainlink" and p.chain == "ethereum" and p.max_age == 3600
    assert p.feeds == {"ETH": ETH_FEED, "USDC": USDC_FEED} and p.fiat_feed == JPY_FEED


def test_chainlink_feed_with_a_wrong_checksum_is_refused(tmp_path) -> None:
    bad = ETH_FEED[:2] + ETH_FEED[2:].swapcase()
    path = write(tmp_path, with_prices(chainlink(feeds=f'{{ETH: "{bad}", USDC: "{USDC_FEED}"}}')))
    (p,) = problems_of(path, "prices.feeds.ETH", env=ENV)
    assert "EIP-55" in p.message and ETH_FEED in p.message


def test_chainlink_on_an_unknown_chain_names_the_configured_ones(tmp_path) -> None:
    cfg = with_prices(chainlink()).replace("  chain: ethereum\n  feeds", "  chain: mainnet\n  feeds")
    (p,) = problems_of(write(tmp_path, cfg), "prices.chain", env=ENV)
    assert "unknown chain `mainnet`" in p.message and "ethereum" in p.message


def test_chainlink_needs_a_fiat_feed_unless_the_fiat_is_usd(tmp_path) -> None:
    cfg = with_prices(chainlink()).replace(f'  fiat_feed: "{JPY_FEED}"\n', "")
    (p,) = problems_of(write(tmp_path, cfg), "prices", env=ENV)
    assert "`fiat_feed` is required" in p.message and "JPY/USD" in p.message
    usd = cfg.replace("  fiat: JPY\n", "  fiat: USD\n")
    assert load_config(write(tmp_path, usd), env=ENV).prices.fiat_feed is None


def test_feeds_for_unknown_assets_are_refused_and_missing_ones_warned(tmp_path) -> None:
    path = write(tmp_path, with_prices(chainlink(feeds=f'{{ETH: "{ETH_FEED}", DOGE: "{USDC_FEED}"}}')))
    (p,) = problems_of(path, "prices.feeds.DOGE", env=ENV)
    assert "unknown asset `DOGE`" in p.message
    (w,) = problems_of(path, "prices.feeds", env=ENV, severity="warning")
    assert "no feed for USDC" in w.message


def test_keys_of_another_source_say_which_source_they_belong_to(tmp_path) -> None:
    path = write(tmp_path, with_prices(chainlink('  paths: {ETH: "eth.jpy"}\n')))
    (p,) = problems_of(path, "prices.paths", env=ENV)
    assert "belongs to `source: http`" in p.message


def test_http_prices_load_and_the_url_is_a_secret(tmp_path) -> None:
    block = ('prices:\n  source: http\n  url: "${PRICE_URL}"\n'
             '  paths: {ETH: "ethereum.jpy", USDC: "usd-coin.jpy"}\n  as_of_path: "meta.time"\n'
             '  timeout: 5s\n  max_age: 5m\n')
    s = load_config(write(tmp_path, with_prices(block)), env=ENV)
    p = s.prices
    assert p.source == "http" and p.url is not None and "SECRET123" not in repr(p)
    assert p.url.reveal() == ENV["PRICE_URL"] and p.url_label == "https://prices.example:443"
    assert p.paths == {"ETH": "ethereum.jpy", "USDC": "usd-coin.jpy"}
    assert (p.as_of_path, p.timeout, p.max_age) == ("meta.time", 5, 300)


def test_http_url_errors_never_show_the_key(tmp_path) -> None:
    block = 'prices:\n  source: http\n  url: "ftp://prices.example/v1?key=SECRET123"\n  paths: {ETH: "a"}\n'
    _, problems = check_config(write(tmp_path, with_prices(block)), env=ENV)
    (p,) = [p for p in problems if p.path == "prices.url"]
    assert "SECRET123" not in p.message and "https://" in p.message


def test_a_check_source_and_max_deviation(tmp_path) -> None:
    block = chainlink('  check:\n    source: http\n    url: "${PRICE_URL}"\n'
                      '    paths: {ETH: "eth", USDC: "usdc"}\n  max_deviation: "2%"\n')
    p = load_config(write(tmp_path, with_prices(block)), env=ENV).prices
    assert p.max_deviation == Decimal("0.02")
    assert p.check is not None and p.check.source == "http" and p.check.max_age == 3600


@pytest.mark.parametrize("extra,path,message", [
    ('  max_deviation: "2%"\n', "prices.max_deviation", "only means something with `check`"),
    ('  check: {source: static, static: {ETH: "1", USDC: "1"}}\n', "prices",
     "`check` needs `max_deviation`"),
    ('  check: {source: static, static: {ETH: "1"}, check: {source: static}}\n'
     '  max_deviation: "1%"\n', "prices.check.check", "cannot have its own `check`"),
    ('  check: {source: static, static: {ETH: "1"}}\n  max_deviation: "150%"\n',
     "prices.max_deviation", "more than 100%"),
])
def test_check_problems(tmp_path, extra, path, message) -> None:
    (p,) = problems_of(write(tmp_path, with_prices(chainlink(extra))), path, env=ENV)
    assert message in p.message


def test_sql_liabilities_load_with_the_password_hidden(tmp_path) -> None:
    cfg = full_config().replace(
        "liabilities:\n  source: csv\n  path: liabilities.csv\n",
        'liabilities:\n  source: sql\n  url: "${LEDGER_DSN}"\n'
        '  query: "select asset, amount, as_of from customer_balances"\n')
    s = load_config(write(tmp_path, cfg), env=ENV)
    led = s.liabilities
    assert led is not None and led.source == "sql" and led.max_age == 3600
    assert led.url is not None and led.url.reveal() == ENV["LEDGER_DSN"]
    assert led.url_label == "postgresql://auditor@db.internal:5432/ledger"
    assert "hunter2" not in repr(led)


def test_sql_liabilities_need_url_and_query_and_refuse_path(tmp_path) -> None:
    cfg = full_config().replace("liabilities:\n  source: csv\n", "liabilities:\n  source: sql\n")
    path = write(tmp_path, cfg)
    _, problems = check_config(path, env=ENV)
    messages = [p.message for p in problems if p.path.startswith("liabilities")]
    assert any("`url` is required" in m for m in messages)
    assert any("`query` is required" in m for m in messages)
    assert any("unknown key `path`" in m for m in messages)


def test_a_bad_sql_url_is_reported_without_echoing_it(tmp_path) -> None:
    cfg = full_config().replace(
        "liabilities:\n  source: csv\n  path: liabilities.csv\n",
        'liabilities:\n  source: sql\n  url: "hunter2 is not a url"\n  query: "select 1"\n')
    (p,) = problems_of(write(tmp_path, cfg), "liabilities.url", env=ENV)
    assert "not an SQLAlchemy URL" in p.message and "hunter2" not in p.message


# --- docs --------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
KEYS = ["prices.source", "prices.max_age", "prices.static", "prices.chain", "prices.feeds",
        "prices.feeds.<ASSET>", "prices.fiat_feed", "prices.url", "prices.url_file",
        "prices.paths", "prices.paths.<ASSET>", "prices.as_of_path", "prices.timeout",
        "prices.check", "prices.check.source", "prices.max_deviation", "liabilities.source",
        "liabilities.path", "liabilities.url", "liabilities.url_file", "liabilities.query",
        "liabilities.max_age"]


def _section(title: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"## `{title}`\n")
    return text[start:text.index("\n## ", start + 1)]


def test_every_prices_and_liabilities_key_is_documented() -> None:
    documented = {m for t in ("prices", "liabilities") for m in
                  re.findall(r"^\| `([^`]+)` \|", _section(t), flags=re.M)}
    assert [k for k in KEYS if k not in documented] == []


@pytest.mark.parametrize("title", ["prices", "liabilities"])
def test_the_documented_examples_load(tmp_path, title) -> None:
    examples = re.findall(r"```yaml\n(.*?)```", _section(title), flags=re.S)
    assert examples
    for example in examples:
        if title == "prices":
            cfg = with_prices(example)
        else:
            cfg = full_config().replace(
                "liabilities:\n  source: csv\n  path: liabilities.csv\n  max_age: 1h\n", example)
        s = load_config(write(tmp_path, cfg), env=ENV)
        assert getattr(s, title).source in example
