"""One cycle's flows: transfers ingested, screened and classified; Safes read.

Called by `run_cycle` after the chains are read. Order matters:

1. the withdrawal-request feed (when configured): if it cannot be read, no
   transfer is ingested this cycle (cursors stay, the next cycle catches up)
   and `stale_data withdrawals` fires — classifying without it would turn
   every customer payout into an `unmatched_outflow`; meanwhile the drain and
   cold-outflow rules judge balances and nonces, as on a chain without ingestion;
2. the sanctions lists (local files and the cache `auditor sanctions update`
   fills; never fetched here): a list that cannot be read or is older than
   `sanctions.max_age` is a `stale_data` warning `sanctions:LABEL`, the others
   still screen;
3. ingestion (`service_transfers`), then the Chainalysis oracle (if
   configured) for the Ethereum counterparties of the new transfers, then
   classification (`flows.classify`) of the transfers first seen now;
4. the Safes (`safe: true` wallets) at the watch head.

Everything returned is written by the cycle's one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .alerting import fingerprint
from .chains.ethereum_rpc import RpcFailure
from .errors import AuditorError
from .flows import Classified, classify, used_requests
from .model import ChainReading, Evaluation, Finding, ProviderProblem, Transfer, Transition
from .service_transfers import ingest_chains
from .settings import Settings
from .store import Store
from .store_transfers import StoredTransfer, TransferWrite

__all__ = ["Flows", "prepare_flows", "reorg_transitions"]

log = logging.getLogger("auditor.flows")
ORACLE_LIST = "chainalysis-oracle"
_OUTFLOW_RULES = ("large_outflow", "unmatched_outflow", "unknown_destination", "sanctioned_counterparty")


@dataclass
class Flows:
    """What the flows part of a cycle hands to the rules and the store."""

    rule_input: dict[str, Any] = field(default_factory=dict)  # extra RuleInput fields
    evaluations: list[Evaluation] = field(default_factory=list)  # stale_data of lists/feed, safe_changed
    writes: list[TransferWrite] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)  # transfers a reorg took away
    problems: dict[str, list[ProviderProblem]] = field(default_factory=dict)  # chain → warnings
    safe_states: list[tuple[str, str, str]] = field(default_factory=list)  # address, wallet, state JSON
    new: list[Classified] = field(default_factory=list)


def prepare_flows(settings: Settings, store: Store, readings: Mapping[str, ChainReading], now: datetime,
                  deadline: float, clients: Mapping[str, object]) -> Flows:
    out = Flows()
    stale: list[Finding] = []
    covered = {"withdrawals"} if settings.withdrawals is not None else set()
    requests, feed_ok = _withdrawals(settings, now, stale)
    screen_match, lists = _screen(settings, store, now, stale)
    covered |= {f"sanctions:{label}" for label in lists}
    if feed_ok:
        _transfers(settings, store, readings, now, deadline, requests, screen_match, out, stale, clients)
    else:
        # No transfers this cycle: hot_drain and cold_outflow judge every chain by balances and
        # nonces meanwhile (a cold wallet emptied during a back-office outage still pages now;
        # at worst an approved movement is judged twice, which can only page, never hide).
        out.rule_input.update(transfers=None, transfer_chains=frozenset())
    _safes(settings, store, readings, deadline, out)
    out.evaluations.append(Evaluation("stale_data", tuple(stale), frozenset(covered)))
    return out


def reorg_transitions(removed: list[dict[str, Any]], exchange_id: str, open_fps: set[str],
                      now: datetime) -> list[Transition]:
    """`outflow_reorged` for each alerted outflow a reorg took away (never a resolution)."""
    out: list[Transition] = []
    for row in removed:
        for rule in _OUTFLOW_RULES:
            for cp in row["counterparties"] or [row["recipient"]]:
                subject = f"{row['chain']}:{row['tx']}:{cp}"
                fp = fingerprint(exchange_id, rule, subject)
                if fp in open_fps:
                    open_fps.discard(fp)  # one per alert
                    out.append(Transition(
                        kind="outflow_reorged", fingerprint=fp, rule=rule, subject=subject,
                        severity="critical", at=now,
                        summary=f"The outflow {row['tx']} of block {row['block']} is no longer on chain "
                                f"{row['chain']} (a reorg): check whether it comes back; the alert stays "
                                "open until a person resolves it",
                        details={"tx": row["tx"], "block": row["block"], "block_hash": row["block_hash"]}))
    return out


# --- inputs --------------------------------------------------------------------------


def _withdrawals(settings: Settings, now: datetime, stale: list[Finding]) -> tuple[Any, bool]:
    ws = settings.withdrawals
    if ws is None:
        return None, True
    from .withdrawals import load_withdrawal_feed

    try:
        feed = load_withdrawal_feed(ws, settings.assets, settings.chains)
    except AuditorError as exc:
        stale.append(Finding("stale_data", "withdrawals", "critical",
                             f"The withdrawal requests cannot be read ({exc}): outflows are not judged "
                             "until they can (no transfer is skipped: they are read when the feed is back)"))
        return None, False
    if ws.max_age is not None and (now - feed.as_of).total_seconds() > ws.max_age:
        stale.append(Finding("stale_data", "withdrawals", "critical",
                             f"The withdrawal requests are older than {ws.max_age}s (as of "
                             f"{feed.as_of.isoformat()}): payouts approved since then will page as "
                             "unmatched_outflow; check the export"))
    return feed.requests, True


def _screen(settings: Settings, store: Store, now: datetime, stale: list[Finding]) -> tuple[Any, list[str]]:
    from .sanctions import load_screen, stale_lists

    cache = settings.sanctions.cache_dir or Path(settings.store.path).parent / "sanctions"
    screen, problems = load_screen(settings.sanctions, cache)
    for label, message in problems:
        stale.append(Finding("stale_data", f"sanctions:{label}", "warning",
                             f"Sanctions list {label} cannot be read: {message}; transfers are screened "
                             "against the other lists only"))
    for label, message in (stale_lists(screen, settings.sanctions.max_age, now)
                           if settings.sanctions.configured else ()):
        stale.append(Finding("stale_data", f"sanctions:{label}", "warning",
                             f"{message}; run `auditor sanctions update` or point `sanctions.lists` at a "
                             "current list"))
    labels = [s.label for s in settings.sanctions.lists] + ([ORACLE_LIST] if settings.sanctions.oracle else [])
    return screen.match, labels


def _transfers(settings: Settings, store: Store, readings: Mapping[str, ChainReading], now: datetime,
               deadline: float, requests: Any, screen_match: Any, out: Flows, stale: list[Finding],
               clients: Mapping[str, object]) -> None:
    ing = ingest_chains(settings, store, readings, deadline, clients)
    for name, problem in ing.problems.items():
        out.problems.setdefault(name, []).append(problem)
    match = _with_oracle(settings, readings, ing.new, screen_match, deadline, stale)
    own = _own_addresses(settings, readings)
    chain_types = {n: c.type for n, c in settings.chains.items()}
    cold = frozenset(w.name for w in settings.wallets if w.tier == "cold")
    from .withdrawals import fee_tolerances

    classified = classify(ing.new, own_addresses=own, allow=settings.counterparties, screen_match=match,
                          chain_types=chain_types, withdrawals=requests,
                          used_withdrawals=frozenset(store.used_withdrawals()),
                          fee_tolerance=fee_tolerances(settings.withdrawals, settings.assets),
                          cold_wallets=cold)
    out.new = classified
    used = used_requests(classified)
    by_key = {(c.transfer.chain, c.transfer.tx, c.transfer.index, c.transfer.kind): c for c in classified}
    for name, write in ing.writes.items():
        batch = ing.batches.get(name)
        rows = []
        for t in batch.transfers if batch is not None else ():
            c = by_key.get((t.chain, t.tx, t.index, t.kind))
            # Already stored (seen before, e.g. in the mempool): the row keeps its class.
            rows.append(StoredTransfer(c.transfer if c else t, c.cls if c else "unknown",
                                       c.match if c else None, c.lists if c else ()))
        write.rows = rows
        write.used_withdrawals = sorted(u for u in used if any(
            c.match == u and c.transfer.chain == name for c in classified))
        out.writes.append(write)
    out.removed = ing.removed
    longest = max((w.window for w in settings.rules.hot_drain.windows), default=0)
    drained = [w.name for w in settings.wallets if w.tier in ("hot", "warm")]
    window = [c for c in _stored_window(store, drained, now - timedelta(seconds=longest))
              if c.transfer.chain in ing.tracked]
    heads = store.last_heads()
    reconcile = frozenset(
        n for n, b in ing.batches.items() if settings.chains[n].type == "ethereum" and n in ing.tracked
        and n in heads and b.first == heads[n][0] + 1)
    out.rule_input.update(
        transfers=tuple(classified), tracked_chains=frozenset(ing.tracked),
        transfer_chains=frozenset(ing.capable), window_transfers=tuple(window) + tuple(classified),
        withdrawals_configured=settings.withdrawals is not None, reconcile_chains=reconcile)


def _with_oracle(settings: Settings, readings: Mapping[str, ChainReading], new: list[Transfer],
                 screen_match: Any, deadline: float, stale: list[Finding]) -> Any:
    """`screen_match` plus the Chainalysis oracle's answers for the new Ethereum counterparties."""
    s = settings.sanctions
    if not s.oracle or not s.oracle_chain or not new:
        return screen_match
    r = readings.get(s.oracle_chain)
    addresses = sorted({a.lower() for t in new if settings.chains[t.chain].type == "ethereum"
                        for a in t.counterparties if a.startswith("0x")})
    if not addresses:
        return screen_match
    if r is None or not r.ok or r.watch is None:
        stale.append(Finding("stale_data", f"sanctions:{ORACLE_LIST}", "warning",
                             f"The sanctions oracle's chain {s.oracle_chain} was not read this cycle: "
                             "transfers were screened against the lists only"))
        return screen_match
    from .sanctions import oracle_sanctioned

    try:
        hits = {a.lower() for a in oracle_sanctioned(settings.chains[s.oracle_chain], s.oracle, addresses,
                                                      r.watch.block.number, deadline)}
    except RpcFailure as exc:
        stale.append(Finding("stale_data", f"sanctions:{ORACLE_LIST}", "warning",
                             f"The sanctions oracle could not be asked ({exc}): transfers were screened "
                             "against the lists only"))
        return screen_match

    def match(chain_type: str, address: str) -> tuple[str, ...]:
        found = screen_match(chain_type, address)
        return (*found, ORACLE_LIST) if chain_type == "ethereum" and address.lower() in hits else found

    return match


def _own_addresses(settings: Settings, readings: Mapping[str, ChainReading]) -> dict[tuple[str, str], str]:
    own: dict[tuple[str, str], str] = {}
    for w in settings.wallets:
        eth = settings.chains[w.chain].type == "ethereum"
        for a in w.addresses:
            own[(w.chain, a.lower() if eth else a)] = w.name
    for name, r in readings.items():
        for wallet, addresses in (r.wallet_addresses or {}).items():
            for a in addresses:
                own[(name, a)] = wallet
    return own


def _stored_window(store: Store, wallets: list[str], since: datetime) -> list[Classified]:
    out = []
    for row in store.outflows_since(wallets, int(since.timestamp())):
        t = Transfer(chain=row["chain"], block=row["block"], block_hash=row["block_hash"], tx=row["tx"],
                     index=row["idx"], kind=row["kind"], asset=row["asset"], amount=row["amount"],
                     sender=row["sender"], recipient=row["recipient"], wallet_from=row["wallet_from"],
                     wallet_to=row["wallet_to"], counterparties=tuple(row["counterparties"]),
                     timestamp=row["timestamp"])
        out.append(Classified(t, row["class"] or "unknown", row["match"], tuple(row["lists"])))
    return out


# --- Safes ---------------------------------------------------------------------------


def _safes(settings: Settings, store: Store, readings: Mapping[str, ChainReading], deadline: float,
           out: Flows) -> None:
    safes = [w for w in settings.wallets if w.safe]
    if not safes:
        return
    from .chains.ethereum_safe import SafeState, read_safes
    from .rules_safe import safe_changed

    prev_raw = store.safe_states()
    prev = {}
    for address, state in prev_raw.items():
        try:
            prev[address] = SafeState.from_json(json.loads(state))
        except ValueError:
            log.warning("stored state of Safe %s is unreadable; taking a new baseline", address)
    now: dict[str, SafeState] = {}
    judged = []
    for chain in {w.chain for w in safes}:
        r = readings.get(chain)
        wallets = [w for w in safes if w.chain == chain]
        if r is None or not r.ok or r.watch is None:
            continue
        try:
            now.update(read_safes(settings.chains[chain], [w.addresses[0] for w in wallets],
                                  r.watch.block.number, deadline))
            judged += wallets
        except RpcFailure as exc:
            label = settings.chains[chain].rpc[0].label if settings.chains[chain].rpc else chain
            out.problems.setdefault(chain, []).append(ProviderProblem(
                "warning", label, f"Safes not read this cycle ({exc}); safe_changed waits for the next read"))
    if not judged:
        return
    ev = safe_changed({a: s for a, s in prev.items() if a in now}, now, judged)
    out.evaluations.append(dataclasses.replace(ev, covered=frozenset(w.name for w in judged)))
    out.safe_states = [(a, next(w.name for w in judged if w.addresses[0].lower() == a),
                        json.dumps(s.to_json(), sort_keys=True)) for a, s in now.items()]
