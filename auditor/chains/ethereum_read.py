"""Reading one Ethereum provider: its head, then both views at given blocks.

Balances go through Multicall3 `aggregate3` (hand-encoded, chunked) when the
contract has code at the block, else through JSON-RPC batches of
`eth_getBalance` / `eth_call balanceOf`; nonces always through batches of
`eth_getTransactionCount`. Every read is pinned to the block's hash
(EIP-1898, `requireCanonical`), or by number with the hashes re-checked
afterwards on nodes without EIP-1898. Any doubt raises `RpcFailure`: a
balance is never guessed, never zero by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..model import BlockRef, ChainView
from ..settings import AssetSettings, ChainSettings, WalletSettings
from .ethereum_rpc import BlockParam, RawParams, RpcConnection, RpcFailure, block_param, hex_bytes, hex_int
from .multicall import BALANCE_OF, GET_ETH_BALANCE, address_call, decode_aggregate3, encode_aggregate3

__all__ = [
    "MULTICALL_CHUNK",
    "MAX_POST_BYTES",
    "RPC_BATCH",
    "PARALLEL_POSTS",
    "ReadPlan",
    "build_plan",
    "ProviderReader",
]

MULTICALL_CHUNK = 1000  # calls per aggregate3: ~0.4 MB of calldata, ~10M gas
MAX_POST_BYTES = 1_200_000  # per HTTP body: anvil refuses requests over ~2 MiB
RPC_BATCH = 1000  # JSON-RPC calls per POST for plain batches
PARALLEL_POSTS = 3  # POSTs in flight per provider (nodes answer batches on several cores)
_ZERO_ADDRESS = "0x" + "00" * 20

Call = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class ReadPlan:
    """What to read on one chain: every (address, asset) balance and every nonce.

    `keys` are the balance map keys, made once and shared by both views (and by
    consecutive readings while the plan is cached): 100k addresses x 3 assets
    make memory count. `tokens[asset]` is the lowercase ERC-20 address, or None
    for the chain's native coin.
    """

    keys: tuple[tuple[str, str], ...]  # (lowercase address, asset symbol)
    addresses: tuple[str, ...]  # lowercase, for nonces
    tokens: dict[str, str | None]


def build_plan(chain: ChainSettings, wallets: Sequence[WalletSettings],
               assets: Mapping[str, AssetSettings]) -> ReadPlan:
    keys: dict[tuple[str, str], None] = {}
    addresses: dict[str, None] = {}
    tokens: dict[str, str | None] = {}
    for wallet in wallets:
        if wallet.chain != chain.name:
            continue
        symbols = [s for s in wallet.assets if _token_of(chain, assets, s, tokens)]
        for raw in wallet.addresses:
            address = raw.lower()
            addresses[address] = None
            for symbol in symbols:
                keys[(address, symbol)] = None
    return ReadPlan(tuple(keys), tuple(addresses), tokens)


def _token_of(chain: ChainSettings, assets: Mapping[str, AssetSettings], symbol: str,
              tokens: dict[str, str | None]) -> bool:
    """Record the asset's token on this chain; False if it has no deployment here."""
    if symbol not in tokens:
        asset = assets.get(symbol)
        deployment = asset.on_chain(chain.name) if asset else None
        if deployment is None and symbol != chain.native_asset:
            return False  # not on this chain: config validation reports it
        tokens[symbol] = deployment.token.lower() if deployment and deployment.token else None
    return True


def parse_block(raw: Any, expected: int | None, what: str) -> BlockRef:
    if raw is None:
        raise RpcFailure(f"{what} not found (pruned history or node not synced?)")
    if not isinstance(raw, dict):
        raise RpcFailure(f"{what}: malformed block object")
    number = hex_int(raw.get("number"), f"{what} number")
    block_hash = raw.get("hash")
    if not isinstance(block_hash, str) or len(hex_bytes(block_hash, f"{what} hash")) != 32:
        raise RpcFailure(f"{what}: malformed block hash")
    if expected is not None and number != expected:
        raise RpcFailure(f"{what}: node returned block {number}")
    return BlockRef(number, block_hash.lower(), hex_int(raw.get("timestamp"), f"{what} timestamp"))


class _ViewReader:
    """Builds one view's requests lazily and collects the answers into its maps."""

    def __init__(self, block: BlockRef, pin: BlockParam, plan: ReadPlan) -> None:
        self.block = block
        self.pin = pin
        self.plan = plan
        self._pin_json = json.dumps(pin, separators=(",", ":"))
        self.balances: dict[tuple[str, str], int] = {}
        self.nonces: dict[str, int] = {}

    def view(self) -> ChainView:
        return ChainView(self.block, self.balances, self.nonces)

    def _bad_balance(self, key: tuple[str, str], data: bytes) -> RpcFailure:
        token = self.plan.tokens[key[1]]
        hint = ("" if token is None else
                f": is {token} the {key[1]} ERC-20 contract on this chain? "
                f"check assets.{key[1]}.deployments")
        return RpcFailure(f"{self._call_name(key)} returned {len(data)} bytes, not 32, "
                          f"at block {self.block.number}{hint}")

    def _call_name(self, key: tuple[str, str]) -> str:
        token = self.plan.tokens[key[1]]
        if token is None:
            return f"{key[1]} balance of {key[0]}"
        return f"balanceOf({key[0]}) on {key[1]} token {token}"

    def multicall_jobs(self, multicall: str) -> list[_Job]:
        n = len(self.plan.keys)
        return [_Job(1, 200 + 400 * min(MULTICALL_CHUNK, n - i),
                     partial(self._multicall_request, multicall, i),
                     partial(self._take_multicall, i))
                for i in range(0, n, MULTICALL_CHUNK)]

    def _multicall_request(self, multicall: str, start: int) -> list[Call]:
        tokens = self.plan.tokens
        calls = []
        for address, asset in self.plan.keys[start:start + MULTICALL_CHUNK]:
            token = tokens[asset]
            calls.append((token, address_call(BALANCE_OF, address)) if token else
                         (multicall, address_call(GET_ETH_BALANCE, address)))
        data = encode_aggregate3(calls)
        return [("eth_call", RawParams(f'[{{"to":"{multicall}","data":"{data}"}},{self._pin_json}]'))]

    def _take_multicall(self, start: int, results: list[Any]) -> None:
        result = results[0]  # one eth_call per multicall job
        keys = self.plan.keys[start:start + MULTICALL_CHUNK]
        try:
            answers = decode_aggregate3(hex_bytes(result, "aggregate3"), len(keys))
        except ValueError as exc:
            raise RpcFailure(f"{exc} at block {self.block.number}") from None
        balances, word = self.balances, int.from_bytes
        for key, (success, data) in zip(keys, answers):
            if not success:
                raise RpcFailure(f"{self._call_name(key)} reverted at block {self.block.number}")
            if len(data) != 32:  # a token address without code answers success + nothing
                raise self._bad_balance(key, data)
            balances[key] = word(data, "big")

    def batch_jobs(self) -> list[_Job]:
        n = len(self.plan.keys)
        return [_Job(min(RPC_BATCH, n - i), 200 * min(RPC_BATCH, n - i),
                     partial(self._batch_request, i), partial(self._take_batch, i))
                for i in range(0, n, RPC_BATCH)]

    def _batch_request(self, start: int) -> list[Call]:
        pin, tokens = self._pin_json, self.plan.tokens
        calls: list[Call] = []
        for address, asset in self.plan.keys[start:start + RPC_BATCH]:
            token = tokens[asset]
            if token is None:
                calls.append(("eth_getBalance", RawParams(f'["{address}",{pin}]')))
            else:
                data = address_call(BALANCE_OF, address)
                calls.append(("eth_call", RawParams(f'[{{"to":"{token}","data":"0x{data}"}},{pin}]')))
        return calls

    def _take_batch(self, start: int, results: list[Any]) -> None:
        for key, result in zip(self.plan.keys[start:], results):
            if self.plan.tokens[key[1]] is None:
                self.balances[key] = hex_int(result, self._call_name(key))
                continue
            data = hex_bytes(result, self._call_name(key))
            if len(data) != 32:
                raise self._bad_balance(key, data)
            self.balances[key] = int.from_bytes(data, "big")

    def nonce_jobs(self) -> list[_Job]:
        n = len(self.plan.addresses)
        return [_Job(min(RPC_BATCH, n - i), 130 * min(RPC_BATCH, n - i),
                     partial(self._nonce_request, i), partial(self._take_nonces, i))
                for i in range(0, n, RPC_BATCH)]

    def _nonce_request(self, start: int) -> list[Call]:
        return [("eth_getTransactionCount", RawParams(f'["{a}",{self._pin_json}]'))
                for a in self.plan.addresses[start:start + RPC_BATCH]]

    def _take_nonces(self, start: int, results: list[Any]) -> None:
        for address, result in zip(self.plan.addresses[start:], results):
            self.nonces[address] = hex_int(result, f"nonce of {address}")


@dataclass(frozen=True)
class _Job:
    """Some calls of one POST, built only when sent (100k addresses: ~500 MB of calldata)."""

    count: int  # JSON-RPC calls
    size: int  # estimated request bytes
    build: Callable[[], list[Call]]
    take: Callable[[list[Any]], None]


class ProviderReader:
    """Reads one provider. Methods raise `RpcFailure`; nothing here is shared across threads."""

    def __init__(self, conn: RpcConnection, multicall: str | None) -> None:
        self.conn = conn
        self.multicall = multicall.lower() if multicall else None

    @property
    def label(self) -> str:
        return self.conn.label

    def head(self, deadline: float | None) -> BlockRef:
        number, block = self.conn.batch(
            [("eth_blockNumber", []), ("eth_getBlockByNumber", ["latest", False])], deadline)
        hex_int(number, "eth_blockNumber")
        return parse_block(block, None, "head block")

    def read_views(self, plan: ReadPlan, settled: int, watch: int, head: BlockRef,
                   deadline: float | None) -> tuple[ChainView, ChainView]:
        s_block, w_block = self._blocks(settled, watch, deadline)
        if w_block.number == head.number and w_block.hash != head.hash:
            raise RpcFailure(f"head block {head.number} hash changed between requests "
                             "(reorg at the tip?); the next read retries")
        by_hash, code_s, code_w = self._probe(s_block, w_block, deadline)
        readers = [_ViewReader(b, block_param(b.number, b.hash if by_hash else None), plan)
                   for b in (s_block, w_block)]
        jobs: list[_Job] = []
        for reader, code in zip(readers, (code_s, code_w)):
            if self.multicall and code:
                jobs += reader.multicall_jobs(self.multicall)
            else:
                jobs += reader.batch_jobs()
            jobs += reader.nonce_jobs()
        self._run(jobs, deadline)
        if not by_hash:  # pinned by number only: make sure the blocks did not change
            if self._blocks(settled, watch, deadline) != (s_block, w_block):
                raise RpcFailure("block hashes changed during the read (reorg?); "
                                 "the next read retries")
        _share_equal_values(readers[0].balances, readers[1].balances)
        return readers[0].view(), readers[1].view()

    def _blocks(self, settled: int, watch: int, deadline: float | None) -> tuple[BlockRef, BlockRef]:
        raw_s, raw_w = self.conn.batch([("eth_getBlockByNumber", [hex(settled), False]),
                                        ("eth_getBlockByNumber", [hex(watch), False])], deadline)
        return (parse_block(raw_s, settled, f"settled block {settled}"),
                parse_block(raw_w, watch, f"watch block {watch}"))

    def _probe(self, s: BlockRef, w: BlockRef, deadline: float | None) -> tuple[bool, bool, bool]:
        """(pin by hash?, Multicall3 code at S?, at W?). Nodes without EIP-1898 get numbers."""
        target = self.multicall or _ZERO_ADDRESS
        try:
            codes = self._codes(target, s, w, True, deadline)
            by_hash = True
        except RpcFailure as exc:
            if exc.rpc_code is None:
                raise
            codes = self._codes(target, s, w, False, deadline)
            by_hash = False
        has_code = [self.multicall is not None and len(hex_bytes(c, "eth_getCode")) > 0
                    for c in codes]
        return by_hash, has_code[0], has_code[1]

    def _codes(self, target: str, s: BlockRef, w: BlockRef, by_hash: bool,
               deadline: float | None) -> list[Any]:
        pins = [block_param(b.number, b.hash if by_hash else None) for b in (s, w)]
        return self.conn.batch([("eth_getCode", [target, p]) for p in pins], deadline)

    def _run(self, jobs: list[_Job], deadline: float | None) -> None:
        """Send the jobs, several calls per POST and a few POSTs in flight."""
        posts = _pack(jobs)
        if len(posts) == 1 or PARALLEL_POSTS == 1:
            for post in posts:
                _send(self.conn, post, deadline)
            return
        with ThreadPoolExecutor(max_workers=PARALLEL_POSTS) as pool:
            futures = [pool.submit(_send, self.conn, post, deadline) for post in posts]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            _raise_first(futures)


def _share_equal_values(settled: dict[tuple[str, str], int],
                        watch: dict[tuple[str, str], int]) -> None:
    """Most balances are the same in both views: keep one int object, not two."""
    for key, value in watch.items():
        same = settled.get(key)
        if same == value and same is not value:
            watch[key] = same  # replacing a value while iterating is allowed


def _pack(jobs: list[_Job]) -> list[list[_Job]]:
    """Group jobs into POSTs under MAX_POST_BYTES (and RPC_BATCH calls)."""
    posts: list[list[_Job]] = []
    size = count = 0
    for job in jobs:
        job_size, job_count = job.size, job.count
        if posts and size + job_size <= MAX_POST_BYTES and count + job_count <= RPC_BATCH:
            posts[-1].append(job)
            size, count = size + job_size, count + job_count
        else:
            posts.append([job])
            size, count = job_size, job_count
    return posts


def _send(conn: RpcConnection, post: list[_Job], deadline: float | None) -> None:
    results = conn.batch([call for job in post for call in job.build()], deadline)
    at = 0
    for job in post:
        job.take(results[at:at + job.count])
        at += job.count


def _raise_first(futures: list[Future[None]]) -> None:
    for f in futures:
        if f.done() and not f.cancelled() and f.exception() is not None:
            raise f.exception()  # type: ignore[misc]
