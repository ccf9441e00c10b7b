"""`EthereumClient`: both views of an EVM chain, cross-checked across providers.

Each read: every provider's head (concurrently); providers lagging the highest
head by more than `MAX_LAG` blocks are dropped with a warning; the watch block
W is the lowest remaining head and the settled block S = W − confirmations + 1
(the tip counts as 1). Every remaining provider then reads both views at the
same S and W (`ethereum_read`), and the answers are compared: any difference
in a balance, a nonce or a block hash makes the chain unreadable (critical);
one failed provider while the others agree is a warning. Providers are named
only by their label (scheme://host:port); URLs may carry API keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TypeAlias, TypeVar

from ..model import BlockRef, ChainReading, ChainView, ProviderProblem, TransferBatch
from ..settings import AssetSettings, ChainSettings, WalletSettings
from .ethereum_read import ProviderReader, ReadPlan, build_plan
from .ethereum_rpc import RpcConnection, RpcFailure
from .gather import gather

__all__ = ["EthereumClient", "MAX_LAG", "MAX_DISAGREEMENTS"]

MAX_LAG = 5  # blocks behind the highest head before a provider is not used
MAX_DISAGREEMENTS = 5  # critical problems listed per read; the rest are counted
log = logging.getLogger(__name__)
T = TypeVar("T")
Outcome: TypeAlias = T | RpcFailure


class EthereumClient:
    """Reads balances and nonces of the configured wallets on one EVM chain."""

    def __init__(self, chain: ChainSettings) -> None:
        if not chain.rpc:
            raise ValueError(f"chain {chain.name!r} has no rpc endpoint")
        self.name = chain.name
        self.chain = chain
        labels = _unique_labels([e.label for e in chain.rpc])
        self._readers = [ProviderReader(RpcConnection(e, label), chain.multicall3)
                         for e, label in zip(chain.rpc, labels)]
        self._plan: tuple[object, ReadPlan] | None = None

    def close(self) -> None:
        for reader in self._readers:
            reader.conn.close()

    def ingest_transfers(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
                         first: int, last: int, deadline: float) -> TransferBatch:
        """Every transfer touching the wallets in blocks first..last (`ethereum_transfers`)."""
        from .ethereum_transfers import ingest_ethereum

        return ingest_ethereum(self.chain, wallets, assets, first, last, deadline)

    def block_hashes(self, numbers: Sequence[int], deadline: float) -> dict[int, str]:
        from .ethereum_transfers import block_hashes

        return block_hashes(self.chain, numbers, deadline)

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        started = time.monotonic()
        try:
            reading = self._read(self._plan_for(wallets, assets), deadline)
        except Exception as exc:  # a bug must not take the cycle down; never a zero either
            log.exception("reading chain %s failed unexpectedly", self.name)
            reading = self._failed(f"unexpected {type(exc).__name__} while reading", [])
        return _with_elapsed(reading, time.monotonic() - started)

    def _plan_for(self, wallets: Sequence[WalletSettings],
                  assets: Mapping[str, AssetSettings]) -> ReadPlan:
        """The same wallets read every cycle: reuse the plan (and its keys, shared by
        consecutive readings) instead of rebuilding 100k addresses x assets each time."""
        key = (tuple(wallets), tuple(assets.items()))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, build_plan(self.chain, wallets, assets))
        return self._plan[1]

    def _read(self, plan: ReadPlan, deadline: float | None) -> ChainReading:
        problems: list[ProviderProblem] = []
        failures: dict[str, str] = {}
        heads = _gather({r.label: partial(r.head, deadline) for r in self._readers}, deadline)
        live: dict[str, BlockRef] = {}
        for label, outcome in heads.items():
            if isinstance(outcome, RpcFailure):
                failures[label] = outcome.reason
            else:
                live[label] = outcome
        if not live:
            return self._failed("no provider answered", _failure_problems(failures, "critical"))
        highest = max(b.number for b in live.values())
        for label, block in list(live.items()):
            if block.number < highest - MAX_LAG:
                del live[label]
                problems.append(ProviderProblem(
                    "warning", label, f"lags {highest - block.number} blocks behind the highest "
                    f"head ({block.number} < {highest}); not used this cycle"))
        watch = min(b.number for b in live.values())
        settled = max(0, min(watch, watch - self.chain.confirmations + 1))
        readers = {r.label: r for r in self._readers}
        views = _gather({label: partial(readers[label].read_views, plan, settled, watch, head, deadline)
                         for label, head in live.items()}, deadline)
        good: dict[str, tuple[ChainView, ChainView]] = {}
        for label, answer in views.items():
            if isinstance(answer, RpcFailure):
                failures[label] = answer.reason
            else:
                good[label] = answer
        if not good:
            return self._failed("no provider answered", problems
                                + _failure_problems(failures, "critical"))
        problems += _failure_problems(failures, "warning")
        disagreements = _disagreements(good)
        if disagreements:
            return self._failed(
                f"providers disagree ({disagreements[0].message}); the chain is not read "
                "until they agree", problems + disagreements)
        settled_view, watch_view = next(iter(good.values()))
        return ChainReading(self.name, True, settled_view, watch_view,
                            head_timestamp=watch_view.block.timestamp, problems=tuple(problems))

    def _failed(self, error: str, problems: list[ProviderProblem]) -> ChainReading:
        reasons = "; ".join(f"{p.provider}: {p.message}" for p in problems
                            if p.severity == "critical" and not p.values)
        text = f"{error}: {reasons}" if reasons and error == "no provider answered" else error
        return ChainReading(self.name, False, None, None, problems=tuple(problems), error=text)


def _with_elapsed(reading: ChainReading, elapsed: float) -> ChainReading:
    return ChainReading(reading.chain, reading.ok, reading.settled, reading.watch,
                        reading.head_timestamp, reading.problems, reading.error, elapsed)


def _unique_labels(labels: list[str]) -> list[str]:
    """Two endpoints on one host:port (different paths/keys) still get distinct names."""
    return [label if labels.count(label) == 1 else f"{label}#{labels[:i].count(label) + 1}"
            for i, label in enumerate(labels)]


def _gather(tasks: Mapping[str, Callable[[], T]], deadline: float | None) -> dict[str, Outcome[T]]:
    return gather(tasks, deadline, RpcFailure, lambda _label, reason: RpcFailure(reason), "eth-read")


def _failure_problems(failures: Mapping[str, str], severity: str) -> list[ProviderProblem]:
    return [ProviderProblem(severity, label, reason)  # type: ignore[arg-type]
            for label, reason in failures.items()]


def _disagreements(good: Mapping[str, tuple[ChainView, ChainView]]) -> list[ProviderProblem]:
    labels = list(good)
    first = labels[0]
    found: list[ProviderProblem] = []
    for other in labels[1:]:
        for name, a, b in zip(("settled", "watch"), good[first], good[other]):
            found += _compare_views(name, first, a, other, b)
    if len(found) > MAX_DISAGREEMENTS:
        extra = len(found) - MAX_DISAGREEMENTS
        found = found[:MAX_DISAGREEMENTS]
        found.append(ProviderProblem("critical", found[0].provider,
                                     f"and {extra} more disagreements"))
    return found


def _compare_views(view: str, la: str, a: ChainView, lb: str, b: ChainView) -> list[ProviderProblem]:
    pair = f"{la} vs {lb}"
    out: list[ProviderProblem] = []
    if a.block.hash != b.block.hash:  # then the figures likely differ too: list them as well
        out.append(ProviderProblem("critical", pair, f"{view} block {a.block.number} hash differs",
                                   {la: a.block.hash, lb: b.block.hash}))
    if a.balances == b.balances and a.nonces == b.nonces:  # the usual case, at C speed
        return out
    for key in sorted(a.balances.keys() | b.balances.keys()):
        va, vb = a.balances.get(key), b.balances.get(key)
        if va != vb:
            out.append(ProviderProblem(
                "critical", pair, f"{key[1]} balance of {key[0]} at {view} block "
                f"{a.block.number} differs", {la: str(va), lb: str(vb)}))
        if len(out) > MAX_DISAGREEMENTS:
            return out
    for address in sorted(a.nonces.keys() | b.nonces.keys()):
        na, nb = a.nonces.get(address), b.nonces.get(address)
        if na != nb:
            out.append(ProviderProblem(
                "critical", pair, f"nonce of {address} at {view} block {a.block.number} differs",
                {la: str(na), lb: str(nb)}))
        if len(out) > MAX_DISAGREEMENTS:
            return out
    return out
