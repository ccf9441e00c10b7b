"""`BitcoinClient`: both views of a Bitcoin chain from one or more backends.

Each read:

1. every backend's tip (concurrently); a backend lagging the highest tip by
   more than `MAX_LAG` blocks is dropped with a warning. W = the lowest tip
   left, S = W − confirmations + 1 (the tip counts as 1).
2. discovery: every wallet's plain addresses and, per descriptor branch
   (receive `/0/*`, change `/1/*`), indexes 0 … max(last used, issued − 1 on
   the receive branch) + gap_limit. Every live backend scans them (with
   `since = S`); while a used index appears within the last `gap_limit`
   scanned, the range grows. The highest used index of each branch comes back
   in `ChainReading.discovery` (the service stores it, `resume` hands it in
   next time), so a poll resumes where the last one ended instead of walking
   the gap again from index 0.
3. views from the coins (`types.ScriptState`): settled = coins created in
   blocks ≤ S and not spent in blocks ≤ S (a coin spent above S, or in the
   mempool, still counts); watch = coins confirmed at the tip and not spent,
   also not in the mempool, plus the mempool outputs of transactions that
   spend own coins (change and internal moves count at once; other incoming
   coins count once mined).
4. cross-check: every backend's settled figures and S block hash must agree,
   else the chain is unreadable (critical, both values named). One failing
   backend among agreeing ones is a warning; none answering is critical.

Backends are named by label only (scheme://host:port). Amounts are satoshis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from ...model import BlockRef, ChainReading, ChainView, ProviderProblem, TransferBatch
from ...settings import AssetSettings, BackendSettings, ChainSettings, WalletSettings
from ..gather import gather
from . import descriptors
from .types import Backend, BackendError, Coin, ScriptRef, ScriptState, Tip

__all__ = ["BitcoinClient", "make_backend", "MAX_LAG", "settled_value", "watch_value"]

MAX_LAG = 5
MAX_DISAGREEMENTS = 5
MAX_ROUNDS = 1000  # discovery rounds per read; each adds ≥ 1 index per growing branch
BULK_LOOKAHEAD = 1000  # indexes looked ahead per round at least, with a backend that scans in bulk
MAX_TRANSFER_BLOCKS = 1000  # blocks of transfer history per read (Core's getblock window, ~7 days)
log = logging.getLogger(__name__)
T = TypeVar("T")


def make_backend(settings: BackendSettings, network: str) -> Backend:
    """The backend for `settings.type` (imported lazily: each has its own dependencies)."""
    if settings.type == "esplora":
        from .esplora import EsploraBackend

        return EsploraBackend(settings, network)
    if settings.type == "electrum":
        from .electrum import ElectrumBackend

        return ElectrumBackend(settings, network)
    if settings.type == "bitcoind":
        from .bitcoind import BitcoindBackend

        return BitcoindBackend(settings, network)
    raise ValueError(f"no bitcoin backend of type {settings.type!r}")


class _Unusable:
    """A backend that could not even be set up (e.g. an unreadable `ca_file`): every call
    fails with why, so it counts as a failed backend (a warning while others agree)."""

    def __init__(self, label: str, reason: str) -> None:
        self.label, self._reason = label, reason

    def _fail(self, *_args: object) -> Any:
        raise BackendError(f"{self.label}: {self._reason}")

    tip = block_hash = scan = transactions = _fail

    def close(self) -> None:
        pass


def _made(settings: BackendSettings, network: str) -> Backend:
    try:
        return make_backend(settings, network)
    except (BackendError, ValueError, OSError) as exc:
        reason = str(exc).removeprefix(f"{settings.label}: ")
        return _Unusable(settings.label, f"cannot be set up: {reason}")


# --- derivation cache ----------------------------------------------------------------

_derived: dict[tuple[str, str], list[tuple[str, str]]] = {}
_derived_lock = threading.Lock()


def _addresses(descriptor: str, network: str, stop: int) -> list[tuple[str, str]]:
    """(address, script) of indexes 0..stop-1, derived once per process: a daemon's
    cycles and a resumed poll reuse what earlier cycles derived."""
    key = (descriptor, network)
    with _derived_lock:
        have = _derived.setdefault(key, [])
        if len(have) < stop:
            have.extend(descriptors.derive(descriptor, network, len(have), stop))
        return have[:stop]


# --- the views -----------------------------------------------------------------------


def settled_value(coins: Sequence[Coin], s: int) -> int:
    """Satoshis held at the end of block `s`: created ≤ s, not spent ≤ s."""
    return sum(c.value for c in coins
               if 1 <= c.height <= s and (c.spent_height is None or c.spent_height == 0
                                          or c.spent_height > s))


def watch_value(coins: Sequence[Coin], own_spends: frozenset[str]) -> int:
    """Satoshis at the tip: confirmed and unspent (not even in the mempool), plus
    unspent mempool outputs of transactions that spend own coins."""
    return sum(c.value for c in coins
               if c.spent_height is None and (c.height >= 1 or c.txid in own_spends))


@dataclass
class _Branch:
    key: str  # "wallet|branch descriptor": what the store remembers
    wallet: str
    descriptor: str
    ranged: bool
    floor: int  # indexes below this are always scanned (issued fleets)
    gap: int
    scanned: int = 0  # indexes 0..scanned-1 have been scanned
    last_used: int = -1


@dataclass
class _Scan:
    """One backend's answers for the read."""

    label: str
    tip: Tip
    states: dict[str, ScriptState] = field(default_factory=dict)
    s_hash: str | None = None
    s_time: int | None = None


class BitcoinClient:
    """Reads the configured wallets of one Bitcoin chain."""

    def __init__(self, chain: ChainSettings, backends: Sequence[Backend] | None = None) -> None:
        if chain.network is None:
            raise ValueError(f"chain {chain.name!r} has no network")
        self.name = chain.name
        self.chain = chain
        self.network: str = chain.network
        if backends is None:
            backends = [_made(b, chain.network) for b in chain.backends]
        if not backends:
            raise ValueError(f"chain {chain.name!r} has no backend")
        self._backends = list(backends)
        self._known: dict[str, int] = {}
        self._ingest: tuple[int | None, dict[int, str]] | None = None  # None: no transfer ingestion

    def resume(self, known: Mapping[str, int]) -> None:
        """The highest used index per branch from earlier reads (the store's)."""
        self._known = dict(known)

    def resume_transfers(self, cursor: int | None, hashes: Mapping[int, str]) -> None:
        """Also read the transfers since `cursor` (the last ingested block; None:
        from the tip on), checking `hashes` (stored block hashes) for a reorg."""
        self._ingest = (cursor, dict(hashes))

    def close(self) -> None:
        for b in self._backends:
            try:
                b.close()
            except Exception:  # pragma: no cover - closing is best effort
                log.debug("closing %s failed", b.label, exc_info=True)

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading:
        started = time.monotonic()
        end = deadline if deadline is not None else started + 300.0
        try:
            reading = self._read(wallets, end)
        except Exception as exc:  # a bug must not take the cycle down; never a zero either
            log.exception("reading chain %s failed unexpectedly", self.name)
            reading = _failed(self.name, f"unexpected {type(exc).__name__} while reading", [])
        return _with_elapsed(reading, time.monotonic() - started)

    # --- the read ----------------------------------------------------------------

    def _read(self, wallets: Sequence[WalletSettings], deadline: float) -> ChainReading:
        problems: list[ProviderProblem] = []
        failures: dict[str, str] = {}
        by_label = {b.label: b for b in self._backends}
        tips = _gather({b.label: partial(b.tip, deadline) for b in self._backends}, deadline)
        live: dict[str, _Scan] = {}
        for label, outcome in tips.items():
            if isinstance(outcome, BackendError):
                failures[label] = str(outcome)
            else:
                live[label] = _Scan(label, outcome)
        if not live:
            return _failed(self.name, "no backend answered", _problems(failures, "critical"))
        highest = max(s.tip.height for s in live.values())
        for label, scan in list(live.items()):
            if scan.tip.height < highest - MAX_LAG:
                del live[label]
                problems.append(ProviderProblem(
                    "warning", label, f"lags {highest - scan.tip.height} blocks behind the highest "
                    f"tip ({scan.tip.height} < {highest}); not used this cycle"))
        w = min(s.tip.height for s in live.values())
        s_height = max(0, w - self.chain.confirmations + 1)
        ingest = self._ingest_from(by_label[next(iter(live))], w, deadline, problems) \
            if self._ingest is not None else None
        since = s_height if ingest is None else min(s_height, ingest[0])

        plain, branches = self._plan(wallets)
        refs: dict[str, ScriptRef] = {r.script: r for r in plain}
        owner: dict[str, str] = {r.script: wallet for wallet, r in _plain_owners(wallets, plain)}
        batch = list(plain)
        for br in branches:
            batch += self._grow(br, refs, owner, max(br.floor, br.last_used + 1) + br.gap)
        # Look ahead a quarter of what is known (per-script backends pay per address), or,
        # when a backend pays per round (bitcoind: one UTXO-set scan), double it, ≥ 1,000.
        bulk = any(getattr(by_label[label], "scans_in_bulk", False) for label in live)

        def ahead(scanned: int) -> int:
            return max(scanned, BULK_LOOKAHEAD) if bulk else scanned // 4

        for _round in range(MAX_ROUNDS):
            answers = _gather({label: partial(by_label[label].scan, batch, since, deadline)
                               for label in live}, deadline)
            for label, answer in answers.items():
                if isinstance(answer, BackendError):
                    failures[label] = str(answer)
                    del live[label]
                elif set(answer) != {r.script for r in batch}:
                    failures[label] = "answered for other scripts than asked (a backend bug)"
                    del live[label]
                else:
                    live[label].states.update(answer)
            if not live:
                return _failed(self.name, "no backend answered",
                               problems + _problems(failures, "critical"))
            by_key = {(br.wallet, br.descriptor): br for br in branches}
            for ref in batch:  # in index order per branch: the gap rule walks them in order
                if ref.index is None:
                    continue
                br = by_key[(owner[ref.script], ref.descriptor or "")]
                if ref.index <= max(br.floor - 1, br.last_used) + br.gap:
                    if any(s.states[ref.script].used or s.states[ref.script].coins
                           for s in live.values()):
                        br.last_used = max(br.last_used, ref.index)
            batch = []
            for br in branches:
                want = max(br.floor - 1, br.last_used) + 1 + br.gap if br.ranged else 1
                if want > br.scanned:
                    # Funds found near the end of what was scanned: look further ahead than
                    # the gap (a quarter of what is known) so 10,000 used addresses take
                    # ~30 rounds, not 500; unused extra addresses cost a request each.
                    batch += self._grow(br, refs, owner, want + ahead(br.scanned))
            if not batch:
                break
        else:
            return _failed(self.name, "address discovery did not settle", problems)

        hashes = _gather({label: partial(_block, by_label[label], s_height, deadline)
                          for label in live}, deadline)
        for label, got in hashes.items():
            if isinstance(got, BackendError):
                failures[label] = str(got)
                del live[label]
            else:
                live[label].s_hash, live[label].s_time = got
        if not live:
            return _failed(self.name, "no backend answered", problems + _problems(failures, "critical"))
        problems += _problems(failures, "warning")
        last = {(br.wallet, br.descriptor): br.last_used for br in branches}
        used = {sc for sc in _used_scripts(live.values(), refs)  # not what lay beyond the gap
                if _within(refs[sc], last.get((owner[sc], refs[sc].descriptor or ""), -1))}
        settled = {label: _settled(scan, used, s_height) for label, scan in live.items()}
        disagreements = _disagreements(live, settled, s_height, refs)
        if disagreements:
            return _failed(self.name, f"backends disagree ({disagreements[0].message}); the chain "
                           "is not read until they agree", problems + disagreements)
        first = next(iter(live.values()))
        asset = self.chain.native_asset or "BTC"
        s_ref = BlockRef(s_height, _hex(first.s_hash), first.s_time or first.tip.timestamp)
        w_ref = BlockRef(first.tip.height, _hex(first.tip.hash), first.tip.timestamp)
        sv = {(refs[sc].address, asset): v for sc, v in settled[first.label].items()}
        wv = {(refs[sc].address, asset): v for sc, v in _watch(first, used).items()}
        transfers, problem = (None, None) if ingest is None else \
            self._transfers(by_label[first.label], first, used, refs, owner, ingest[0], w, deadline)
        if problem is not None:
            problems.append(problem)
        wallet_addresses: dict[str, list[str]] = {w.name: [] for w in wallets}
        for sc in sorted(used, key=lambda sc: (owner[sc], refs[sc].descriptor or "", refs[sc].index or 0,
                                             refs[sc].address)):
            wallet_addresses[owner[sc]].append(refs[sc].address)
        return ChainReading(
            self.name, True, ChainView(s_ref, sv, {}), ChainView(w_ref, wv, {}),
            head_timestamp=first.tip.timestamp, problems=tuple(problems),
            wallet_addresses={k: tuple(v) for k, v in wallet_addresses.items()},
            discovery={br.key: br.last_used for br in branches if br.ranged and br.last_used >= 0},
            transfers=transfers, transfers_rollback=ingest[1] if ingest is not None else None)

    # --- transfers -------------------------------------------------------------------

    def _ingest_from(self, backend: Backend, tip: int, deadline: float,
                     problems: list[ProviderProblem]) -> tuple[int, int | None] | None:
        """(the last block already ingested, the first block a reorg took away or None);
        None: transfers cannot be read this cycle (a warning says why)."""
        assert self._ingest is not None
        cursor, hashes = self._ingest
        if cursor is None:
            return tip - 1, None
        rollback = None
        try:
            if cursor in hashes and (cursor > tip or backend.block_hash(cursor, deadline) != hashes[cursor]):
                rollback = next((n for n in sorted(hashes)
                                 if n > tip or backend.block_hash(n, deadline) != hashes[n]), None)
        except BackendError as exc:
            problems.append(ProviderProblem("warning", backend.label, "transfers not read this cycle ("
                                            f"{str(exc).removeprefix(backend.label + ': ')}); drains are "
                                            "judged on balances meanwhile"))
            return None
        if rollback is not None:
            cursor = rollback - 1
        if cursor < tip - MAX_TRANSFER_BLOCKS:
            problems.append(ProviderProblem(
                "warning", backend.label, f"transfers of blocks {cursor + 1}–{tip - MAX_TRANSFER_BLOCKS} "
                f"not ingested: more than {MAX_TRANSFER_BLOCKS} blocks since the last poll; balances "
                "and later transfers are read as usual"))
            cursor = tip - MAX_TRANSFER_BLOCKS
        return cursor, rollback

    def _transfers(self, backend: Backend, scan: _Scan, used: set[str], refs: Mapping[str, ScriptRef],
                   owner: Mapping[str, str], cursor: int, tip: int,
                   deadline: float) -> tuple[TransferBatch | None, ProviderProblem | None]:
        """The transfers of own coins created or spent above `cursor` (or in the mempool)."""
        from .transfers import bitcoin_transfers

        txids: set[str] = set()
        for sc in used:
            for c in scan.states[sc].coins:
                if c.height == 0 or c.height > cursor:
                    txids.add(c.txid)
                if c.spent_by and (c.spent_height == 0 or (c.spent_height or 0) > cursor):
                    txids.add(c.spent_by)
        try:
            details = backend.transactions(sorted(txids), deadline) if txids else {}
        except BackendError as exc:
            return None, ProviderProblem("warning", backend.label, "transfers not read this cycle "
                                         f"({str(exc).removeprefix(backend.label + ': ')}); drains are judged "
                                         "on balances meanwhile")
        own = {sc: (owner[sc], refs[sc].address) for sc in used}
        found = bitcoin_transfers(self.name, self.chain.native_asset or "BTC", details.values(), own,
                                  self.network)
        hashes = {d.height: d.block_hash for d in details.values() if d.height > 0}
        hashes[tip] = scan.tip.hash if scan.tip.height == tip else hashes.get(tip, "")
        hashes = {n: h for n, h in hashes.items() if h}
        return TransferBatch(self.name, cursor + 1, tip, tuple(found), hashes), None

    def _plan(self, wallets: Sequence[WalletSettings]) -> tuple[list[ScriptRef], list[_Branch]]:
        plain: list[ScriptRef] = []
        branches: list[_Branch] = []
        for w in wallets:
            for a in w.addresses:
                plain.append(ScriptRef(a, descriptors.address_script(a, self.network)))
            for d in w.descriptors:
                for b in descriptors.branches(d):
                    key = f"{w.name}|{b.descriptor}"
                    floor = w.issued if (b.receive and b.ranged) else 0
                    branches.append(_Branch(key, w.name, b.descriptor, b.ranged, floor, w.gap_limit,
                                            last_used=self._known.get(key, -1) if b.ranged else -1))
        return plain, branches

    def _grow(self, br: _Branch, refs: dict[str, ScriptRef], owner: dict[str, str],
              stop: int) -> list[ScriptRef]:
        """ScriptRefs of br's indexes scanned..stop-1 (non-ranged: index 0 only)."""
        stop = stop if br.ranged else 1
        if stop <= br.scanned:
            return []
        out = []
        for i, (address, script) in enumerate(_addresses(br.descriptor, self.network, stop)[br.scanned:],
                                              start=br.scanned):
            ref = ScriptRef(address, script, br.descriptor, i if br.ranged else None)
            refs[script] = ref
            owner[script] = br.wallet
            out.append(ref)
        br.scanned = stop
        return out


def _plain_owners(wallets: Sequence[WalletSettings], plain: list[ScriptRef]) -> list[tuple[str, ScriptRef]]:
    it = iter(plain)
    return [(w.name, next(it)) for w in wallets for _a in w.addresses]


def _within(ref: ScriptRef, last_used: int) -> bool:
    return ref.index is None or ref.index <= last_used


def _used_scripts(scans: Iterable[_Scan], refs: Mapping[str, ScriptRef]) -> set[str]:
    """Scripts any backend saw used, plus every configured plain address."""
    out = {sc for sc, r in refs.items() if r.descriptor is None}
    for scan in scans:
        out.update(sc for sc, st in scan.states.items() if st.used or st.coins)
    return out


def _settled(scan: _Scan, used: set[str], s: int) -> dict[str, int]:
    return {sc: settled_value(scan.states[sc].coins, s) for sc in used}


def _watch(scan: _Scan, used: set[str]) -> dict[str, int]:
    own_spends = frozenset(c.spent_by for st in scan.states.values() for c in st.coins
                           if c.spent_height == 0 and c.spent_by)
    return {sc: watch_value(scan.states[sc].coins, own_spends) for sc in used}


def _block(backend: Backend, height: int, deadline: float) -> tuple[str, int | None]:
    """S's hash, and its time when the backend can tell it."""
    header = getattr(backend, "block", None)
    if callable(header):
        tip: Tip = header(height, deadline)
        return tip.hash, tip.timestamp
    return backend.block_hash(height, deadline), None


def _disagreements(live: Mapping[str, _Scan], settled: Mapping[str, dict[str, int]],
                   s: int, refs: Mapping[str, ScriptRef]) -> list[ProviderProblem]:
    labels = list(live)
    first = labels[0]
    found: list[ProviderProblem] = []
    for other in labels[1:]:
        pair = f"{first} vs {other}"
        a, b = live[first], live[other]
        if a.s_hash != b.s_hash:
            found.append(ProviderProblem("critical", pair, f"settled block {s} hash differs",
                                         {first: str(a.s_hash), other: str(b.s_hash)}))
        sa, sb = settled[first], settled[other]
        if sa == sb:
            continue
        for script in sorted(sa.keys() | sb.keys()):
            va, vb = sa.get(script), sb.get(script)
            if va != vb:
                addr = refs[script].address
                found.append(ProviderProblem(
                    "critical", pair, f"BTC balance of {addr} at settled block {s} differs",
                    {first: str(va), other: str(vb)}))
            if len(found) > MAX_DISAGREEMENTS:
                return found
    return found


def _hex(value: str | None) -> str:
    """Bitcoin hashes as Bitcoin tools show them (no 0x), so `getblockhash` output compares."""
    return value or ""


def _problems(failures: Mapping[str, str], severity: str) -> list[ProviderProblem]:
    # Backends put their label first in errors; the problem names it already.
    return [ProviderProblem(severity, label, reason.removeprefix(f"{label}: "))  # type: ignore[arg-type]
            for label, reason in failures.items()]


def _failed(name: str, error: str, problems: list[ProviderProblem]) -> ChainReading:
    reasons = "; ".join(f"{p.provider}: {p.message}" for p in problems
                        if p.severity == "critical" and not p.values)
    text = f"{error}: {reasons}" if reasons and error == "no backend answered" else error
    return ChainReading(name, False, None, None, problems=tuple(problems), error=text)


def _with_elapsed(r: ChainReading, elapsed: float) -> ChainReading:
    return ChainReading(r.chain, r.ok, r.settled, r.watch, r.head_timestamp, r.problems, r.error,
                        elapsed, r.wallet_addresses, r.discovery, r.transfers, r.transfers_rollback)


def _gather(tasks: Mapping[str, Callable[[], T]], deadline: float) -> dict[str, T | BackendError]:
    return gather(tasks, deadline, BackendError, lambda label, reason: BackendError(f"{label}: {reason}"),
                  "btc-read")
