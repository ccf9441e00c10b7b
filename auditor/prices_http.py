"""Prices from a JSON endpoint: one dotted path per asset.

GET the URL (a secret: it may carry an API key, so it is named only as
scheme://host:port), parse the body with `parse_float=Decimal` so that a
JSON number never passes through a binary float, and take each asset's value
at its dotted path (`ethereum.jpy`; a list index is a number, `data.0.price`).
A value must be a JSON string holding a plain decimal, an integer or a
number, and greater than 0. The quote time is read at `as_of_path` (RFC 3339
text or unix seconds) when configured, else it is the fetch time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from . import units
from .ledger import parse_time
from .model import Price
from .notify.http import USER_AGENT, make_client  # importing it redacts httpx's URL log lines
from .settings import PriceSettings

__all__ = ["MAX_BODY", "http_prices", "lookup"]

MAX_BODY = 4 * 1024 * 1024  # a price document is small; a huge answer is a wrong URL


class _Failed(Exception):
    """The whole document is unusable (message safe to show: no URL)."""


def lookup(doc: Any, path: str) -> Any:
    """The value at a dotted path; KeyError naming the first missing segment."""
    node = doc
    for seg in path.split("."):
        if isinstance(node, dict) and seg in node:
            node = node[seg]
        elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
            node = node[int(seg)]
        else:
            raise KeyError(seg)
    return node


def _fetch(ps: PriceSettings, deadline: float | None) -> Any:
    assert ps.url is not None
    timeout = float(ps.timeout)
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise _Failed("the cycle deadline passed before the prices were fetched")
    failure: str | None = None
    body = b""
    with make_client() as client:
        try:
            with client.stream("GET", ps.url.reveal(), timeout=httpx.Timeout(timeout),
                               headers={"Accept": "application/json",
                                        "User-Agent": USER_AGENT}) as r:
                if r.status_code != 200:
                    failure = f"HTTP {r.status_code}"
                else:
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY:
                            failure = f"the answer is larger than {MAX_BODY} bytes"
                            break
        except httpx.TimeoutException:
            failure = f"no answer within {timeout:g}s"
        except httpx.HTTPError as e:  # its text may name the URL: only the type goes out
            failure = f"request failed ({type(e).__name__})"
    if failure is not None:
        raise _Failed(failure)
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        raise _Failed("the answer is not valid JSON") from None


def _value(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise ValueError(f"{json.dumps(raw, default=str)[:40]} is not a number or a decimal string")
    value = units.parse_decimal(raw)
    if value <= 0:
        raise ValueError(f"{units.format_decimal(value)} is not a price (must be > 0)")
    return value


def _as_of(doc: Any, path: str) -> datetime:
    raw = lookup(doc, path)
    if isinstance(raw, str):
        return parse_time(raw)
    if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
        return datetime.fromtimestamp(int(raw), UTC)
    raise ValueError(f"{raw!r} is neither RFC 3339 text nor unix seconds")


def http_prices(ps: PriceSettings, assets: Iterable[str], now: datetime,
                deadline: float | None) -> tuple[dict[str, Price], dict[str, str]]:
    """Prices of `assets` from the endpoint, and a reason for each asset without one."""
    label = ps.url_label or "the price URL"
    wanted = [a for a in assets if a in ps.paths]
    try:
        doc = _fetch(ps, deadline)
        as_of = now
        if ps.as_of_path:
            try:
                as_of = _as_of(doc, ps.as_of_path)
            except (KeyError, ValueError) as e:
                raise _Failed(f"quote time at `{ps.as_of_path}`: {_why(e)}") from None
    except _Failed as e:
        return {}, {a: f"price source {label}: {e}" for a in wanted}
    prices: dict[str, Price] = {}
    problems: dict[str, str] = {}
    for asset in wanted:
        path = ps.paths[asset]
        try:
            value = _value(lookup(doc, path))
        except (KeyError, ValueError) as e:
            problems[asset] = f"price source {label}: `{path}`: {_why(e)}"
            continue
        prices[asset] = Price(asset=asset, value=value, source=f"http:{label}", as_of=as_of)
    return prices, problems


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"the answer has no `{e.args[0]}` there"
    return str(e)
