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
from typing import Any, NamedTuple

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
_ADDRESSES_AND_WORD = re.compile(r"0x0{24}[0-9a-fA-F]{40}0x0{24}[0-9a-fA-F]{40}0x[0-9a-fA-F]{64}\Z").match
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,16}\Z").match
# A node refusing a range as too big (Infura -32005 "more than 10000 results", Alchemy
# "log response size exceeded", QuickNode "limited to a 10,000 range", timeouts). Limits
# on topics or addresses, and rate or quota limits, are not fixed by a smaller range (splitting
# would only send more requests): those are not split.
_TOO_BIG = re.compile(r"more than|too many|limit|range|exceed|too large|response size|time ?out|timed out",
                      re.IGNORECASE)
_NOT_RANGE = re.compile(r"topic|address|rate|daily|quota|credit|request count", re.IGNORECASE)


class TokenLog(NamedTuple):
    """One decoded log. `sender`/`recipient` are from/to (Transfer) or owner/spender (Approval).
    A tuple, not a dataclass: tens of thousands are made per read."""

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
        decode = _Decoder(tokens, watched, start, end)
        return [decode(raw) for raw in _get_logs(conn, shape, start, end, deadline)]

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
    return _Decoder(tokens, watched, first, last)(raw)


class _Decoder:
    """Decodes the logs of one answer. Fields that many logs share (block number and
    hash, transaction hash and index) are checked once and remembered: 50,000 logs
    must decode in a fraction of a second."""

    def __init__(self, tokens: Collection[str], watched: Collection[str], first: int, last: int) -> None:
        self.tokens, self.watched, self.first, self.last = tokens, watched, first, last
        self.numbers: dict[str, int] = {}  # quantity text already checked → value
        self.hashes: dict[str, str] = {}  # 32-byte hash text already checked → lowercase

    def __call__(self, raw: Any) -> TokenLog:
        try:
            topics, data, token = raw["topics"], raw["data"], raw["address"]
            number, block_hash, tx = raw["blockNumber"], raw["blockHash"], raw["transactionHash"]
            tx_index, log_index = raw["transactionIndex"], raw["logIndex"]
        except (KeyError, TypeError):
            raise RpcFailure(f"eth_getLogs: malformed log object {str(raw)[:80]!r}") from None
        if type(topics) is not list or len(topics) != 3:
            raise RpcFailure(f"log {log_index} of block {number}: expected 3 topics (ERC-20 Transfer/Approval), "
                             f"got {topics!r:.200}; is {token} an ERC-20 token?")
        topic0, topic1, topic2 = topics
        # One match checks both address topics and the 32-byte data (the common case).
        if not (type(topic1) is str and type(topic2) is str and type(data) is str
                and _ADDRESSES_AND_WORD(topic1 + topic2 + data)):
            raise self._shape_error(topic1, topic2, data, log_index, number, token)
        if topic0 != TRANSFER_TOPIC and topic0 != APPROVAL_TOPIC:
            topic0 = str(topic0).lower()
            if topic0 != TRANSFER_TOPIC and topic0 != APPROVAL_TOPIC:
                raise RpcFailure(f"log {log_index} of block {number}: topic0 {topic0[:20]}… is not Transfer or "
                                 "Approval: the node ignored the filter")
        approval = topic0 == APPROVAL_TOPIC
        sender, recipient = "0x" + topic1[26:].lower(), "0x" + topic2[26:].lower()
        if token not in self.tokens:
            token = str(token).lower()
        if token not in self.tokens or not (sender in self.watched
                                            or (not approval and recipient in self.watched)):
            raise RpcFailure(f"log {log_index} of block {number}: not what the filter asked for "
                             f"({token}, {sender}, {recipient}): the node ignored the filter")
        if raw.get("removed"):
            raise RpcFailure(f"log {log_index} of block {number} is marked removed (reorg during the read?)")
        block = self._number(number, "blockNumber")
        if not self.first <= block <= self.last:
            raise RpcFailure(f"eth_getLogs for blocks {self.first}..{self.last} returned a log of block {block}")
        return TokenLog(block, self._hash(block_hash, "blockHash"), self._hash(tx, "transactionHash"),
                        self._number(tx_index, "transactionIndex"), _quantity(log_index, "logIndex"), token,
                        approval, sender, recipient, int(data, 16))

    def _number(self, value: Any, what: str) -> int:
        known = self.numbers.get(value) if type(value) is str else None
        if known is None:
            known = self.numbers[value] = _quantity(value, what)
        return known

    def _hash(self, value: Any, what: str) -> str:
        known = self.hashes.get(value) if type(value) is str else None
        if known is None:
            if not (type(value) is str and _WORD(value)):
                raise RpcFailure(f"log {what}: not a 32-byte hash: {str(value)[:70]!r}")
            known = self.hashes[value] = value.lower()
        return known

    @staticmethod
    def _shape_error(topic1: Any, topic2: Any, data: Any, log_index: Any, number: Any, token: Any) -> RpcFailure:
        if not (type(topic1) is str and _TOPIC_ADDRESS(topic1) and type(topic2) is str and _TOPIC_ADDRESS(topic2)):
            return RpcFailure(f"log {log_index} of block {number}: an address topic is not a padded address "
                              f"({str(topic1)[:70]!r}, {str(topic2)[:70]!r})")
        return RpcFailure(f"log {log_index} of block {number} from {token}: data is not exactly 32 bytes "
                          f"({str(data)[:80]!r}); is it an ERC-20 token?")


def _quantity(value: Any, what: str) -> int:
    if type(value) is str and _QUANTITY(value):
        return int(value, 16)
    raise RpcFailure(f"log {what}: not a hex quantity: {str(value)[:40]!r}")
