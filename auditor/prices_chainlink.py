"""Chainlink AggregatorV3 feeds read at a chain's settled block.

Each feed is asked `decimals()` and `latestRoundData()` with `eth_call`
pinned to the settled block S by its hash (EIP-1898), so anyone can
recompute the price from S. The calls are hand-encoded and sent as one
JSON-RPC batch per provider; every configured provider is asked, and
providers that give different answers for the same block make that feed
unusable (a lying node must not set the price). JPY per asset = asset/USD ÷
JPY/USD, computed from the integer answers exactly and rounded half-even to
18 places (DESIGN.md "Amounts"). Anything odd about a feed (a failed call, a
return that is not 5 words, an answer ≤ 0, an unfinished round) leaves its
assets without a price and with a reason; a stale round is judged by the
caller from `as_of` (the feed's `updatedAt`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .chains.ethereum_rpc import RpcConnection, RpcFailure, block_param, hex_bytes
from .model import BlockRef, Price
from .settings import ChainSettings

__all__ = ["DECIMALS", "LATEST_ROUND_DATA", "Round", "chainlink_prices", "decode_decimals",
           "decode_round", "divide_answers", "read_rounds"]

LATEST_ROUND_DATA = "0xfeaf968c"  # latestRoundData()
DECIMALS = "0x313ce567"  # decimals()
_PRICE_PLACES = 18


@dataclass(frozen=True)
class Round:
    """One feed's latest round at a block (answers are raw integers)."""

    feed: str  # lowercase 0x hex
    round_id: int
    answer: int
    started_at: int
    updated_at: int  # unix seconds
    answered_in_round: int
    decimals: int


def decode_round(data: bytes) -> tuple[int, int, int, int, int]:
    """latestRoundData's (roundId, answer, startedAt, updatedAt, answeredInRound)."""
    if len(data) != 5 * 32:
        raise ValueError(f"latestRoundData returned {len(data)} bytes, not 160 "
                         "(is this an AggregatorV3 feed?)")
    words = [data[i:i + 32] for i in range(0, 160, 32)]
    answer = int.from_bytes(words[1], "big", signed=True)
    round_id, started, updated, answered_in = (int.from_bytes(words[i], "big") for i in (0, 2, 3, 4))
    return round_id, answer, started, updated, answered_in


def decode_decimals(data: bytes) -> int:
    if len(data) != 32:
        raise ValueError(f"decimals() returned {len(data)} bytes, not 32")
    value = int.from_bytes(data, "big")
    if value > 255:
        raise ValueError(f"decimals() returned {value}, not a uint8")
    return value


def divide_answers(asset: Round, fiat: Round | None) -> Decimal:
    """asset/USD ÷ fiat/USD from the raw answers, exact then rounded half-even to 18 places.

    Integer arithmetic all the way: a/10^da ÷ f/10^df = a·10^df / (f·10^da),
    scaled by 10^18 and rounded on the remainder, so no intermediate rounding
    can tip a half-way case.
    """
    num = asset.answer * 10 ** _PRICE_PLACES
    den = 10 ** asset.decimals
    if fiat is not None:
        num *= 10 ** fiat.decimals
        den *= fiat.answer
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return Decimal(q).scaleb(-_PRICE_PLACES)


def _calls(feeds: Sequence[str], block: BlockRef) -> list[tuple[str, list[object]]]:
    at = block_param(block.number, block.hash)
    out: list[tuple[str, list[object]]] = []
    for feed in feeds:
        out.append(("eth_call", [{"to": feed, "data": DECIMALS}, at]))
        out.append(("eth_call", [{"to": feed, "data": LATEST_ROUND_DATA}, at]))
    return out


def _decode(feed: str, dec_raw: object, round_raw: object) -> Round | str:
    try:
        decimals = decode_decimals(hex_bytes(dec_raw, "decimals()"))
        rid, answer, started, updated, answered = decode_round(
            hex_bytes(round_raw, "latestRoundData()"))
    except (ValueError, RpcFailure) as e:
        return f"feed {feed}: {e}"
    return Round(feed, rid, answer, started, updated, answered, decimals)


def read_rounds(conn: RpcConnection, feeds: Sequence[str], block: BlockRef,
                deadline: float | None) -> dict[str, Round | str]:
    """Each feed's round at `block` through one provider, or why not (a reason).

    One batch for all feeds; when a call in it fails (a feed reverts), each
    feed is asked on its own so one bad feed does not take the others down.
    """
    try:
        results = conn.batch(_calls(feeds, block), deadline)
    except RpcFailure as e:
        if e.rpc_code is None or len(feeds) == 1:
            return {f: f"feed {f}: {e.reason}" for f in feeds}
        out: dict[str, Round | str] = {}
        for f in feeds:
            out.update(read_rounds(conn, [f], block, deadline))
        return out
    return {f: _decode(f, results[2 * i], results[2 * i + 1]) for i, f in enumerate(feeds)}


def _agreed(feeds: Sequence[str], answers: Mapping[str, Mapping[str, Round | str]],
            block: BlockRef) -> dict[str, Round | str]:
    """Per feed: the round every answering provider gave, or a reason."""
    out: dict[str, Round | str] = {}
    for f in feeds:
        rounds = {label: a[f] for label, a in answers.items() if isinstance(a[f], Round)}
        if not rounds:
            out[f] = next(iter(answers.values()))[f] if answers else f"feed {f}: no provider"
            continue
        if len(set(rounds.values())) > 1:
            seen = ", ".join(f"{lbl} says {r.answer} (round {r.round_id})"  # type: ignore[union-attr]
                             for lbl, r in sorted(rounds.items()))
            out[f] = f"feed {f}: providers disagree at block {block.number}: {seen}"
            continue
        out[f] = next(iter(rounds.values()))
    return out


def _unusable(r: Round, what: str) -> str | None:
    if r.answer <= 0:
        return f"{what} feed {r.feed} answered {r.answer} (round {r.round_id}): not a price"
    if r.updated_at == 0:
        return f"{what} feed {r.feed} round {r.round_id} is not complete (updatedAt 0)"
    return None


def chainlink_prices(chain: ChainSettings, feeds: Mapping[str, str], fiat_feed: str | None,
                     block: BlockRef, assets: Iterable[str], deadline: float | None
                     ) -> tuple[dict[str, Price], dict[str, str]]:
    """Prices of `assets` at `block`, and a reason for each asset without one."""
    wanted = [a for a in assets if a in feeds]
    addresses = sorted({feeds[a].lower() for a in wanted} | ({fiat_feed.lower()} if fiat_feed else set()))
    answers: dict[str, dict[str, Round | str]] = {}
    for endpoint in chain.rpc:
        conn = RpcConnection(endpoint)
        try:
            answers[endpoint.label] = read_rounds(conn, addresses, block, deadline)
        finally:
            conn.close()
    rounds = _agreed(addresses, answers, block)
    fiat: Round | None = None
    fiat_problem: str | None = None
    if fiat_feed:
        got = rounds[fiat_feed.lower()]
        fiat_problem = got if isinstance(got, str) else _unusable(got, "fiat")
        fiat = got if isinstance(got, Round) else None
    prices: dict[str, Price] = {}
    problems: dict[str, str] = {}
    for asset in wanted:
        got = rounds[feeds[asset].lower()]
        problem = got if isinstance(got, str) else _unusable(got, asset) or fiat_problem
        if problem is not None or not isinstance(got, Round):
            problems[asset] = problem or f"feed of {asset}: no answer"
            continue
        prices[asset] = _price(asset, got, fiat, block)
    return prices, problems


def _price(asset: str, r: Round, fiat: Round | None, block: BlockRef) -> Price:
    updated = r.updated_at if fiat is None else min(r.updated_at, fiat.updated_at)
    source = f"chainlink:{r.feed}" + (f"/{fiat.feed}" if fiat else "") + f"@{block.number}"
    round_id = str(r.round_id) + (f"/{fiat.round_id}" if fiat else "")
    return Price(asset=asset, value=divide_answers(r, fiat), source=source,
                 as_of=datetime.fromtimestamp(updated, UTC), round_id=round_id)
