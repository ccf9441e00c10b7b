"""BitcoinClient logic on in-memory backends: discovery (gap limit, issued fleets,
resume), the settled and watch views from coins, and cross-checking backends.

Derivation is replaced by synthetic addresses ("<desc>:<index>") so these tests
pin down the client's own rules; the real derivation and backends have their
own tests (test_btc_descriptors, test_btc_esplora/electrum/bitcoind, test_btc_e2e).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from auditor.chains.bitcoin import client as client_mod
from auditor.chains.bitcoin import descriptors
from auditor.chains.bitcoin.client import BitcoinClient, settled_value, watch_value
from auditor.chains.bitcoin.types import BackendError, Coin, ScriptRef, ScriptState, Tip
from auditor.settings import ChainSettings, WalletSettings


@dataclass(frozen=True)
class FakeBranch:
    descriptor: str
    ranged: bool
    receive: bool


@pytest.fixture(autouse=True)
def synthetic_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    def branches(d: str) -> tuple[FakeBranch, ...]:
        if d.endswith("/<0;1>/*"):
            base = d[: -len("/<0;1>/*")]
            return (FakeBranch(base + "/0/*", True, True), FakeBranch(base + "/1/*", True, False))
        return (FakeBranch(d, d.endswith("*"), not d.endswith("/1/*")),)

    def derive(d: str, network: str, start: int, stop: int) -> list[tuple[str, str]]:
        return [(f"{d}:{i}", f"s:{d}:{i}") for i in range(start, stop)]

    monkeypatch.setattr(descriptors, "branches", branches, raising=False)
    monkeypatch.setattr(descriptors, "derive", derive, raising=False)
    monkeypatch.setattr(descriptors, "address_script", lambda a, n: f"s:{a}", raising=False)
    client_mod._derived.clear()


@dataclass
class FakeBackend:
    label: str
    height: int = 100
    coins: dict[str, list[Coin]] = field(default_factory=dict)  # script → coins
    used: set[str] = field(default_factory=set)
    fail: str | None = None  # "tip" | "scan" | "hash"
    hash_prefix: str = "h"
    scanned: list[int] = field(default_factory=list)  # scripts per scan call
    seen: set[str] = field(default_factory=set)

    def tip(self, deadline: float) -> Tip:
        if self.fail == "tip":
            raise BackendError(f"{self.label}: connection refused")
        return Tip(self.height, f"{self.hash_prefix}{self.height}", 1_700_000_000 + self.height)

    def block_hash(self, height: int, deadline: float) -> str:
        if self.fail == "hash":
            raise BackendError(f"{self.label}: HTTP 500")
        return f"{self.hash_prefix}{height}"

    def scan(self, refs: Sequence[ScriptRef], since: int, deadline: float) -> dict[str, ScriptState]:
        if self.fail == "scan":
            raise BackendError(f"{self.label}: malformed answer")
        self.scanned.append(len(refs))
        self.seen.update(r.script for r in refs)
        return {r.script: ScriptState(r.script, r.script in self.used or bool(self.coins.get(r.script)),
                                      tuple(self.coins.get(r.script, ()))) for r in refs}

    def close(self) -> None:
        pass

    def give(self, script: str, *coins: Coin) -> None:
        self.coins.setdefault(script, []).extend(coins)
        self.used.add(script)


CHAIN = ChainSettings(name="bitcoin", type="bitcoin", network="regtest", confirmations=3,
                      max_head_age=7200, native_asset="BTC")


def wallet(name: str = "w", descriptors_: tuple[str, ...] = ("D/<0;1>/*",), gap: int = 5,
           issued: int = 0, addresses: tuple[str, ...] = ()) -> WalletSettings:
    return WalletSettings(name=name, chain="bitcoin", tier="hot", role="customer",
                          addresses=addresses, assets=("BTC",), descriptors=descriptors_,
                          gap_limit=gap, issued=issued)


def read(backends: list[FakeBackend], wallets: list[WalletSettings], known: dict[str, int] | None = None):
    c = BitcoinClient(CHAIN, backends)  # type: ignore[arg-type]
    if known is not None:
        c.resume(known)
    return c.read(wallets, {}, time.monotonic() + 10)


def coin(value: int, height: int, spent: int | None = None, txid: str = "t", vout: int = 0,
         by: str | None = None) -> Coin:
    return Coin(txid, vout, value, height, spent, by if by else (None if spent is None else "spender"))


# --- the views -------------------------------------------------------------------------


def test_settled_counts_coins_created_up_to_s_and_not_spent_up_to_s() -> None:
    coins = [coin(1, 90), coin(2, 98), coin(4, 99), coin(8, 90, spent=97), coin(16, 90, spent=99),
             coin(32, 90, spent=0), coin(64, 0)]
    # S = 98: 1 and 2 created ≤ 98; 4 too late; 8 spent ≤ 98; 16 spent above S;
    # 32 spent only in the mempool; 64 in the mempool.
    assert settled_value(coins, 98) == 1 + 2 + 16 + 32


def test_watch_counts_change_of_own_mempool_spends_but_not_foreign_mempool_deposits() -> None:
    coins = [coin(100, 90, spent=0, by="pay"), coin(30, 0, txid="pay", vout=1),
             coin(7, 0, txid="stranger"), coin(5, 95), coin(3, 96, spent=97)]
    assert watch_value(coins, frozenset({"pay"})) == 30 + 5


def test_a_hot_wallet_payment_with_change_never_dips_settled_by_its_whole_input() -> None:
    b = FakeBackend("esplora://a:1")
    b.give("s:D/0/*:0", coin(100_000, 90, spent=0, by="pay"))
    b.give("s:D/1/*:0", coin(60_000, 0, txid="pay", vout=1))
    r = read([b], [wallet()])
    assert r.ok
    assert r.settled is not None and r.watch is not None
    assert sum(r.settled.balances.values()) == 100_000
    assert sum(r.watch.balances.values()) == 60_000
    assert r.settled.block.number == 98 and r.watch.block.number == 100
    assert r.settled.block.hash == "h98"


# --- discovery -------------------------------------------------------------------------


def test_funds_at_the_last_index_within_the_gap_are_found_and_just_beyond_are_not() -> None:
    b = FakeBackend("esplora://a:1")
    b.give("s:D/0/*:4", coin(10, 50))  # indexes 0-3 unused: 4 is the 5th, inside gap 5
    b.give("s:D/0/*:10", coin(20, 50))  # 5..9 unused after 4: gap reached before 10
    r = read([b], [wallet(gap=5)])
    assert r.ok and r.wallet_addresses == {"w": ("D/0/*:4",)}
    assert r.discovery == {"w|D/0/*": 4}
    b2 = FakeBackend("esplora://a:1")
    b2.give("s:D/0/*:5", coin(10, 50))  # six unused in a row before it: beyond gap 5
    r2 = read([b2], [wallet(gap=5)])
    assert r2.ok and r2.wallet_addresses == {"w": ()}
    assert r2.discovery == {}


def test_a_chain_of_used_addresses_is_followed_past_many_gaps_in_few_rounds() -> None:
    b = FakeBackend("esplora://a:1")
    for i in range(0, 1000, 3):
        b.give(f"s:D/0/*:{i}", coin(1, 50, txid=f"t{i}"))
    r = read([b], [wallet(gap=5)])
    assert r.ok and r.settled is not None
    assert sum(r.settled.balances.values()) == 334
    assert r.discovery["w|D/0/*"] == 999
    assert len(b.scanned) < 40  # grows ahead by a quarter of what is known, not gap by gap


def test_a_backend_that_pays_per_round_gets_far_fewer_rounds_and_the_same_result() -> None:
    def world(bulk: bool) -> FakeBackend:
        b = FakeBackend("bitcoind://c:3")
        if bulk:
            b.scans_in_bulk = True  # type: ignore[attr-defined]
        for i in range(0, 3000, 4):
            b.give(f"s:D/0/*:{i}", coin(1, 50, txid=f"t{i}"))
        return b

    per_script, bulk = world(False), world(True)
    a, b = read([per_script], [wallet(gap=5)]), read([bulk], [wallet(gap=5)])
    assert a.settled is not None and b.settled is not None
    assert a.settled.balances == b.settled.balances and a.discovery == b.discovery == {"w|D/0/*": 2996}
    assert len(bulk.scanned) <= 4 < len(per_script.scanned)


def test_issued_fleet_scans_every_issued_receive_index_then_the_gap_change_gap_only() -> None:
    b = FakeBackend("esplora://a:1")
    b.give("s:D/0/*:40", coin(5, 50))  # far beyond any gap from 0, but issued
    b.give("s:D/0/*:53", coin(6, 50))  # within the gap after the last issued index 49
    b.give("s:D/1/*:9", coin(7, 50))  # change beyond its gap of 5: issued does not apply
    r = read([b], [wallet(gap=5, issued=50)])
    assert r.ok and r.settled is not None
    assert sum(r.settled.balances.values()) == 11
    assert "s:D/0/*:49" in b.seen and "s:D/1/*:9" not in b.seen


def test_a_resumed_poll_starts_from_the_stored_last_used_index() -> None:
    b = FakeBackend("esplora://a:1")
    for i in range(0, 300, 10):  # gaps of 9 > gap limit 5: discovery from scratch stops at 0
        b.give(f"s:D/0/*:{i}", coin(1, 50, txid=f"t{i}"))
    fresh = read([b], [wallet(gap=5)])
    assert fresh.discovery == {"w|D/0/*": 0}
    b.scanned.clear()
    resumed = read([b], [wallet(gap=5)], known={"w|D/0/*": 290})
    assert resumed.ok and resumed.settled is not None
    assert sum(resumed.settled.balances.values()) == 30
    assert resumed.discovery == {"w|D/0/*": 290}
    assert len(b.scanned) == 1  # one round: everything up to 290 + gap in one batch


def test_plain_addresses_are_read_and_reported_even_when_empty() -> None:
    b = FakeBackend("esplora://a:1")
    b.give("s:bcrt1qcold", coin(9, 10))
    r = read([b], [wallet(descriptors_=(), addresses=("bcrt1qcold", "bcrt1qempty"))])
    assert r.ok and r.settled is not None
    assert r.wallet_addresses == {"w": ("bcrt1qcold", "bcrt1qempty")}
    assert r.settled.balances == {("bcrt1qcold", "BTC"): 9, ("bcrt1qempty", "BTC"): 0}


# --- several backends --------------------------------------------------------------------


def test_one_failed_backend_among_agreeing_ones_is_a_warning_and_the_chain_stays_ok() -> None:
    a, b, c = FakeBackend("esplora://a:1"), FakeBackend("electrum://b:2"), FakeBackend("bitcoind://c:3")
    for x in (a, b):
        x.give("s:D/0/*:0", coin(10, 50))
    c.fail = "scan"
    r = read([a, b, c], [wallet()])
    assert r.ok
    assert [(p.severity, p.provider) for p in r.problems] == [("warning", "bitcoind://c:3")]


def test_backends_that_disagree_on_a_settled_balance_make_the_chain_unreadable() -> None:
    a, b = FakeBackend("esplora://a:1"), FakeBackend("electrum://b:2")
    a.give("s:D/0/*:0", coin(10, 50))
    b.give("s:D/0/*:0", coin(11, 50))
    r = read([a, b], [wallet()])
    assert not r.ok and r.settled is None
    crit = [p for p in r.problems if p.severity == "critical"]
    assert crit and crit[0].values == {"esplora://a:1": "10", "electrum://b:2": "11"}
    assert "D/0/*:0" in crit[0].message


def test_backends_on_different_chains_at_s_disagree_on_the_block_hash() -> None:
    a, b = FakeBackend("esplora://a:1"), FakeBackend("electrum://b:2", hash_prefix="x")
    r = read([a, b], [wallet()])
    assert not r.ok
    assert any("hash differs" in p.message for p in r.problems)


def test_settled_is_compared_at_the_lowest_tip_so_a_backend_one_block_ahead_agrees() -> None:
    a, b = FakeBackend("esplora://a:1", height=100), FakeBackend("electrum://b:2", height=101)
    a.give("s:D/0/*:0", coin(10, 50))
    b.give("s:D/0/*:0", coin(10, 50), coin(5, 101))  # the new block's coin is above S
    r = read([a, b], [wallet()])
    assert r.ok and r.settled is not None and r.settled.block.number == 98


def test_a_backend_lagging_more_than_five_blocks_is_dropped_with_a_warning() -> None:
    a, b = FakeBackend("esplora://a:1", height=100), FakeBackend("electrum://b:2", height=90)
    r = read([a, b], [wallet()])
    assert r.ok and r.settled is not None and r.settled.block.number == 98
    assert [(p.severity, p.provider) for p in r.problems] == [("warning", "electrum://b:2")]


def test_no_backend_answering_is_unreadable_never_zero() -> None:
    a = FakeBackend("esplora://a:1", fail="tip")
    r = read([a], [wallet()])
    assert not r.ok and r.settled is None and r.watch is None
    assert "esplora://a:1" in (r.error or "")
    b = FakeBackend("esplora://a:1", fail="hash")
    assert not read([b], [wallet()]).ok
