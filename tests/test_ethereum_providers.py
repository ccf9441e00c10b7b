"""EthereumClient with several, failing, hanging or lying providers (real anvils + a local proxy)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from auditor.chains import EthereumClient

pytestmark = pytest.mark.integration

SECRET = "secret-key-123"
HANG = object()
Policy = Callable[["RpcProxy", list[dict[str, Any]]], Any]


class RpcProxy:
    """A JSON-RPC server on 127.0.0.1 (any path) that forwards to a node and may misbehave.

    The policy gets the request's calls and returns the answer: a list/dict (sent as JSON),
    bytes (sent raw), (status, bytes), or HANG (never answer).
    """

    def __init__(self, upstream: str | None, policy: Policy | None = None) -> None:
        self.upstream = upstream
        self.policy = policy or (lambda proxy, calls: proxy.forward(calls))
        self.methods: list[str] = []
        self.posts = 0
        self._release = threading.Event()
        self._http = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                calls = body if isinstance(body, list) else [body]
                proxy.posts += 1
                proxy.methods += [c["method"] for c in calls]
                answer = proxy.policy(proxy, calls)
                if answer is HANG:
                    proxy._release.wait()
                    return
                status, raw = answer if isinstance(answer, tuple) else (200, answer)
                if not isinstance(raw, bytes):
                    raw = json.dumps(raw if isinstance(body, list) else raw[0]).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{SECRET}"

    @property
    def label(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forward(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self._http.post(self.upstream, json=calls).json()
        return sorted(answer, key=lambda a: a["id"])

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@pytest.fixture
def proxies():
    made: list[RpcProxy] = []

    def make(upstream: str | None, policy: Policy | None = None) -> RpcProxy:
        made.append(RpcProxy(upstream, policy))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(world, chain, wallets, deadline=None):
    client = EthereumClient(chain)
    try:
        return client.read(wallets, world.assets(), deadline=deadline)
    finally:
        client.close()


def _funded(world):
    a = world.new_address()
    world.fund(a, eth=2**70, usdc=123, dai=456)
    world.anvil.mine(3)
    return a


def test_disagreeing_providers_make_the_chain_unreadable_with_both_values(make_anvil, eth_world):
    node_a, node_b = make_anvil(), make_anvil()
    holder = eth_world.new_address()
    node_a.set_balance(holder, 10**18)
    node_b.set_balance(holder, 10**18 + 1)
    node_a.mine()
    node_b.mine()
    chain = eth_world.chain([node_a.url, node_b.url], confirmations=1)
    reading = _read(eth_world, chain, [eth_world.wallet([holder], ["ETH"])])
    assert not reading.ok
    assert reading.settled is None and reading.watch is None
    assert "disagree" in reading.error
    la, lb = f"http://127.0.0.1:{node_a.port}", f"http://127.0.0.1:{node_b.port}"
    critical = [p for p in reading.problems if p.severity == "critical"]
    assert any(p.values == {la: str(10**18), lb: str(10**18 + 1)} and p.provider == f"{la} vs {lb}"
               for p in critical)


def test_agreeing_providers_behind_secret_paths_read_ok_without_problems(eth_world, proxies):
    holder = _funded(eth_world)
    one, two = proxies(eth_world.anvil.url), proxies(eth_world.anvil.url)
    reading = _read(eth_world, eth_world.chain([one.url, two.url]), [eth_world.wallet([holder])])
    assert reading.ok, reading.error
    assert reading.problems == ()
    assert reading.settled.balances[(holder.lower(), "ETH")] == 2**70
    assert {"eth_call", "eth_getTransactionCount"} <= set(one.methods) & set(two.methods)


def test_one_provider_down_is_a_warning_naming_host_and_port_only(eth_world):
    holder = _funded(eth_world)
    port = _closed_port()
    chain = eth_world.chain([f"http://127.0.0.1:{port}/{SECRET}", eth_world.anvil.url])
    reading = _read(eth_world, chain, [eth_world.wallet([holder])])
    assert reading.ok, reading.error
    assert reading.watch.balances[(holder.lower(), "USDC")] == 123
    assert [(p.severity, p.provider) for p in reading.problems] == [
        ("warning", f"http://127.0.0.1:{port}")]
    assert "connection failed" in reading.problems[0].message
    assert SECRET not in repr(reading)


def test_no_provider_answering_makes_the_chain_unreadable_without_leaking_urls(eth_world):
    ports = [_closed_port(), _closed_port()]
    chain = eth_world.chain([f"http://127.0.0.1:{p}/{SECRET}?apikey={SECRET}" for p in ports])
    reading = _read(eth_world, chain, [eth_world.wallet([eth_world.new_address()])])
    assert not reading.ok and reading.settled is None
    assert reading.error.startswith("no provider answered")
    assert {p.provider for p in reading.problems} == {f"http://127.0.0.1:{p}" for p in ports}
    assert all(p.severity == "critical" for p in reading.problems)
    assert SECRET not in repr(reading)


def test_provider_lagging_more_than_five_blocks_is_dropped_with_a_warning(make_anvil, eth_world):
    behind, ahead = make_anvil(), make_anvil(mine=11)
    chain = eth_world.chain([behind.url, ahead.url], confirmations=2)
    reading = _read(eth_world, chain, [eth_world.wallet([eth_world.new_address()], ["ETH"])])
    assert reading.ok, reading.error
    assert reading.watch.block.number == ahead.block_number() == 11
    assert reading.settled.block.number == 10
    assert [(p.severity, p.provider) for p in reading.problems] == [
        ("warning", f"http://127.0.0.1:{behind.port}")]
    assert "lags 10 blocks" in reading.problems[0].message


def test_provider_that_never_answers_fails_the_read_by_the_deadline(eth_world, proxies):
    silent = proxies(None, lambda proxy, calls: HANG)
    chain = eth_world.chain([silent.url], timeout=60)
    reading = _read(eth_world, chain, [eth_world.wallet([eth_world.new_address()])],
                    deadline=time.monotonic() + 0.5)
    assert not reading.ok
    # The deadline, not the 60 s endpoint timeout, ended the read.
    assert "deadline" in reading.error or "within 0." in reading.error
    assert SECRET not in repr(reading)


def test_provider_that_stops_answering_mid_read_fails_by_the_deadline(eth_world, proxies):
    holder = _funded(eth_world)

    def hang_on_balances(proxy, calls):
        if any(c["method"] in ("eth_call", "eth_getTransactionCount") for c in calls):
            return HANG
        return proxy.forward(calls)

    stuck = proxies(eth_world.anvil.url, hang_on_balances)
    reading = _read(eth_world, eth_world.chain([stuck.url], timeout=60), [eth_world.wallet([holder])],
                    deadline=time.monotonic() + 0.8)
    assert not reading.ok
    assert "deadline" in reading.error or "within 0." in reading.error
    assert "eth_getBlockByNumber" in stuck.methods


def test_killed_node_fails_the_next_read(make_anvil, eth_world):
    node = make_anvil(mine=3)
    chain = eth_world.chain([node.url])
    wallets = [eth_world.wallet([eth_world.new_address()], ["ETH"])]
    client = EthereumClient(chain)
    try:
        assert client.read(wallets, eth_world.assets()).ok
        node.stop()
        reading = client.read(wallets, eth_world.assets(), deadline=time.monotonic() + 5)
    finally:
        client.close()
    assert not reading.ok
    assert "connection failed" in reading.error


def test_balances_of_many_addresses_take_a_few_posts_not_one_per_address(eth_world, proxies):
    holders = [eth_world.new_address() for _ in range(300)]
    counted = proxies(eth_world.anvil.url)
    reading = _read(eth_world, eth_world.chain([counted.url]), [eth_world.wallet(holders)])
    assert reading.ok, reading.error
    assert len(reading.watch.balances) == 900
    assert counted.methods.count("eth_call") == 2  # one aggregate3 per view
    assert "eth_getBalance" not in counted.methods
    assert counted.methods.count("eth_getTransactionCount") == 600
    assert counted.posts <= 4  # head, blocks, Multicall3 code, data


def test_nodes_without_eip1898_are_read_by_block_number(eth_world, proxies):
    holder = _funded(eth_world)
    pins: list[Any] = []

    def no_block_hash_params(proxy, calls):
        for c in calls:
            if c["method"] in ("eth_getCode", "eth_call", "eth_getTransactionCount"):
                pins.append(c["params"][-1])
                if isinstance(c["params"][-1], dict):
                    return [{"jsonrpc": "2.0", "id": c["id"],
                             "error": {"code": -32602, "message": "invalid block param"}}
                            for c in calls]
        return proxy.forward(calls)

    old = proxies(eth_world.anvil.url, no_block_hash_params)
    reading = _read(eth_world, eth_world.chain([old.url]), [eth_world.wallet([holder])])
    assert reading.ok, reading.error
    assert reading.settled.balances[(holder.lower(), "DAI")] == 456
    assert isinstance(pins[0], dict) and all(isinstance(p, str) for p in pins[2:])


def _mangle(method: str, change: Callable[[dict[str, Any]], None]) -> Policy:
    def policy(proxy, calls):
        answers = proxy.forward(calls)
        for call, answer in zip(calls, answers):
            if call["method"] == method:
                change(answer)
        return answers
    return policy


def _fail_first_subcall(answer: dict[str, Any]) -> None:
    data = bytearray(bytes.fromhex(answer["result"][2:]))
    element = 64 + int.from_bytes(data[64:96], "big")
    data[element + 31] = 0  # success = false
    answer["result"] = "0x" + data.hex()


def _only_first_head(change: Callable[[dict[str, Any]], None]) -> Policy:
    seen: list[bool] = []

    def policy(proxy, calls):
        answers = proxy.forward(calls)
        for call, answer in zip(calls, answers):
            if call["params"][:1] == ["latest"] and not seen:
                seen.append(True)
                change(answer)
        return answers
    return policy


GARBAGE: dict[str, tuple[Policy, str]] = {
    "malformed JSON": (lambda p, calls: b"{not json", "not valid JSON"),
    "HTTP 500": (lambda p, calls: (500, b"oops"), "HTTP 500"),
    "single error object for a batch": (
        lambda p, calls: b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"nope"}}',
        "-32600"),
    "JSON-RPC error on eth_call": (
        _mangle("eth_call", lambda a: (a.pop("result"), a.update(error={"code": -32000,
                                                                         "message": "boom"}))),
        "boom"),
    "missing response id": (lambda p, calls: p.forward(calls)[:-1], "lacks the response"),
    "non-hex nonce": (_mangle("eth_getTransactionCount", lambda a: a.update(result="0xzz")),
                      "not a hex quantity"),
    "nonce without 0x": (_mangle("eth_getTransactionCount", lambda a: a.update(result="12")),
                         "not a hex quantity"),
    "truncated aggregate3": (_mangle("eth_call", lambda a: a.update(result=a["result"][:200])),
                             "truncated"),
    "failed aggregate3 sub-call": (_mangle("eth_call", _fail_first_subcall), "reverted"),
    "head hash changes": (_only_first_head(lambda a: a["result"].update(hash="0x" + "ab" * 32)),
                          "hash changed"),
    "block missing": (_mangle("eth_getBlockByNumber", lambda a: a.update(result=None)),
                      "not found"),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_answers_fail_the_read_never_a_zero(eth_world, proxies, case):
    policy, reason = GARBAGE[case]
    holder = _funded(eth_world)
    liar = proxies(eth_world.anvil.url, policy)
    reading = _read(eth_world, eth_world.chain([liar.url]), [eth_world.wallet([holder])],
                    deadline=time.monotonic() + 20)
    assert not reading.ok
    assert reading.settled is None and reading.watch is None
    assert reason in reading.error
    assert SECRET not in repr(reading)


@pytest.mark.parametrize("result", ["0x", "0x" + "00" * 31, "0x" + "00" * 33])
def test_balance_of_answer_not_32_bytes_fails_the_batch_path(eth_world, proxies, result):
    holder = _funded(eth_world)
    liar = proxies(eth_world.anvil.url, _mangle("eth_call", lambda a: a.update(result=result)))
    reading = _read(eth_world, eth_world.chain([liar.url], multicall3=None),
                    [eth_world.wallet([holder])])
    assert not reading.ok
    assert "not 32" in reading.error
