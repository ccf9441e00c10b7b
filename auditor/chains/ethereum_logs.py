"""ERC-20 `Transfer` and `Approval` logs of watched addresses: raw `eth_getLogs`, hand decoding.

Two filters per chunk: topic0 ∈ {Transfer, Approval} with a watched topic1
(what leaves a watched address, and its approvals), and topic0 = Transfer with
a watched topic2 (what arrives). Filters are split by block range
(`LOG_BLOCK_SPAN`), by watched addresses (`TOPICS_PER_FILTER`, geth's default
limit) and by token contracts (`TOKENS_PER_FILTER`); a node that refuses a
range as too large (result caps of providers) gets it in halves. Each log is
decoded by hand (web3's decoding is ~20x slower, CHAINS.md) and checked: three
topics of the right shape, exactly 32 bytes of data, a token and addresses that
the filter asked for. Anything else raises `RpcFailure`: a log is never skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .ethereum_rpc import RawParams, RpcConnection, RpcFailure

__all__ = [
    "TRANSFER_TOPIC",
    "APPROVAL_TOPIC",
    "LOG_BLOCK_SPAN",
    "TOPICS_PER_FILTER",
    "TOKENS_PER_FILTER",
    "TokenLog",
    "log_tasks",
    "decode_log",
]

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL_TOPIC = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
LOG_BLOCK_SPAN = 2000  # blocks per eth_getLogs (providers cap ranges at 2k-10k blocks)
TOPICS_PER_FILTER = 1000  # watched addresses per topic position (geth's logQueryLimit is 1000)
TOKENS_PER_FILTER = 1000  # contract addresses per filter (same limit)
_TOPIC_ADDRESS = re.compile(r"0x0{24}[0-9a-fA-F]{40}\Z").match
_WORD = re.compile(r"0x[0-9a-fA-F]{64}\Z").match
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,16}\Z").match
# A node refusing a range as too big (Infura -32005 "more than 10000 results", Alchemy
# "log response size exceeded", QuickNode "limited to a 10,000 range", timeouts). Limits
# on topics or addresses are not fixed by a smaller range: those are not split.
_TOO_BIG = re.compile(r"more than|too many|limit|range|exceed|too large|response size|time ?out|timed out",
                      re.IGNORECASE)
_NOT_RANGE = re.compile(r"topic|address", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TokenLog:
    """One decoded log. `sender`/`recipient` are from/to (Transfer) or owner/spender (Approval)."""

    block: int
    block_hash: str
    tx: str
    tx_index: int
    log_index: int
    token: str  # lowercase 0x
    approval: bool
    sender: str
    recipient: str
    value: int


def log_tasks(conn: RpcConnection, tokens: Sequence[str], watched: Sequence[str], first: int, last: int,
              deadline: float | None) -> list[Callable[[], list[TokenLog]]]:
    """One task per filter: each returns its decoded logs (a log may come from two filters)."""
    if not tokens or not watched:
        return []
    token_set, watched_set = frozenset(tokens), frozenset(watched)
    tasks: list[Callable[[], list[TokenLog]]] = []
    for t in range(0, len(tokens), TOKENS_PER_FILTER):
        contracts = list(tokens[t:t + TOKENS_PER_FILTER])
        for w in range(0, len(watched), TOPICS_PER_FILTER):
            topics = ["0x" + "0" * 24 + a[2:] for a in watched[w:w + TOPICS_PER_FILTER]]
            outgoing = [[TRANSFER_TOPIC, APPROVAL_TOPIC], topics]
            incoming = [TRANSFER_TOPIC, None, topics]
            for start in range(first, last + 1, LOG_BLOCK_SPAN):
                end = min(last, start + LOG_BLOCK_SPAN - 1)
                for shape in (outgoing, incoming):
                    tasks.append(_task(conn, contracts, shape, start, end, token_set, watched_set, deadline))
    return tasks


def _task(conn: RpcConnection, contracts: list[str], topics: list[Any], start: int, end: int,
          tokens: Collection[str], watched: Collection[str],
          deadline: float | None) -> Callable[[], list[TokenLog]]:
    # The addresses and topics are the bulk of the request: encode them once, not per split.
    shape = json.dumps({"address": contracts, "topics": topics}, separators=(",", ":"))[1:]

    def run() -> list[TokenLog]:
        return [decode_log(raw, tokens, watched, start, end)
                for raw in _get_logs(conn, shape, start, end, deadline)]

    return run


def _get_logs(conn: RpcConnection, shape: str, start: int, end: int, deadline: float | None) -> list[Any]:
    params = RawParams(f'[{{"fromBlock":"{hex(start)}","toBlock":"{hex(end)}",{shape}]')
    try:
        result = conn.call("eth_getLogs", params, deadline)
    except RpcFailure as exc:
        if end > start and exc.rpc_code is not None and _TOO_BIG.search(exc.reason) \
                and not _NOT_RANGE.search(exc.reason):
            middle = (start + end) // 2
            return (_get_logs(conn, shape, start, middle, deadline)
                    + _get_logs(conn, shape, middle + 1, end, deadline))
        raise
    if not isinstance(result, list):
        raise RpcFailure(f"eth_getLogs for blocks {start}..{end} did not answer a list")
    return result


def decode_log(raw: Any, tokens: Collection[str], watched: Collection[str], first: int, last: int) -> TokenLog:
    """A Transfer or Approval log, checked against what the filter asked for."""
    try:
        topics, data, token = raw["topics"], raw["data"], raw["address"].lower()
        number, block_hash, tx = raw["blockNumber"], raw["blockHash"], raw["transactionHash"]
        tx_index, log_index = raw["transactionIndex"], raw["logIndex"]
    except (KeyError, TypeError, AttributeError):
        raise RpcFailure(f"eth_getLogs: malformed log object {str(raw)[:80]!r}") from None
    if type(topics) is not list or len(topics) != 3 or not all(type(t) is str for t in topics):
        raise RpcFailure(f"log {log_index} of block {number}: expected 3 topics (ERC-20 Transfer/Approval), "
                         f"got {topics!r:.200}; is {token} an ERC-20 token?")
    topic0 = topics[0].lower()
    if topic0 != TRANSFER_TOPIC and topic0 != APPROVAL_TOPIC:
        raise RpcFailure(f"log {log_index} of block {number}: topic0 {topic0[:20]}… is not Transfer or "
                         "Approval: the node ignored the filter")
    if not (_TOPIC_ADDRESS(topics[1]) and _TOPIC_ADDRESS(topics[2])):
        raise RpcFailure(f"log {log_index} of block {number}: an address topic is not a padded address "
                         f"({topics[1][:70]!r}, {topics[2][:70]!r})")
    if type(data) is not str or not _WORD(data):
        raise RpcFailure(f"log {log_index} of block {number} from {token}: data is not exactly 32 bytes "
                         f"({str(data)[:80]!r}); is it an ERC-20 token?")
    approval = topic0 == APPROVAL_TOPIC
    sender, recipient = "0x" + topics[1][26:].lower(), "0x" + topics[2][26:].lower()
    if token not in tokens or not (sender in watched or (not approval and recipient in watched)):
        raise RpcFailure(f"log {log_index} of block {number}: not what the filter asked for "
                         f"({token}, {sender}, {recipient}): the node ignored the filter")
    if raw.get("removed"):
        raise RpcFailure(f"log {log_index} of block {number} is marked removed (reorg during the read?)")
    log = TokenLog(_quantity(number, "blockNumber"), _hash(block_hash, "blockHash"), _hash(tx, "transactionHash"),
                   _quantity(tx_index, "transactionIndex"), _quantity(log_index, "logIndex"), token, approval,
                   sender, recipient, int(data, 16))
    if not first <= log.block <= last:
        raise RpcFailure(f"eth_getLogs for blocks {first}..{last} returned a log of block {log.block}")
    return log


def _quantity(value: Any, what: str) -> int:
    if type(value) is str and _QUANTITY(value):
        return int(value, 16)
    raise RpcFailure(f"log {what}: not a hex quantity: {str(value)[:40]!r}")


def _hash(value: Any, what: str) -> str:
    if type(value) is str and _WORD(value):
        return value.lower()
    raise RpcFailure(f"log {what}: not a 32-byte hash: {str(value)[:70]!r}")
