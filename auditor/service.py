"""run_cycle(): one poll, orchestration only.

Read every chain (concurrently, bounded by the cycle deadline), turn the
readings into per-wallet totals, load prices and the ledger, compute the
exposure, evaluate the rules, advance the alerts, and write all of it to the
store in one transaction. The arithmetic lives in the pure modules; the I/O
lives here and in chains/, ledger, prices and store.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from . import alerting, rules, silences
from .approvals import valid_approvals
from .chains.base import ChainClient, make_client
from .config import config_material, diff_material
from .deliveries import plan_deliveries, with_notified
from .errors import AuditorError
from .exposure import Exposure, compute_exposure, exposure_json
from .ledger import load_liabilities
from .model import ChainReading, Evaluation, Liabilities, Price, Transition
from .prices import fetch_prices
from .service_flows import Flows, prepare_flows, reorg_transitions
from .service_records import record_inputs, write_due_record
from .settings import ChainSettings, Settings
from .store import CycleRecord, Store
from .store_transfers import KEEP_BLOCK_HASHES
from .times import rfc3339
from .units import rescale

__all__ = ["CycleOutcome", "PollJson", "run_cycle", "poll_exit_code", "rfc3339"]

log = logging.getLogger("auditor.service")

ClientFactory = Callable[[str], ChainClient]


class PollJson(TypedDict):
    """DESIGN.md's `poll --json` object (also stored with the cycle)."""

    exchange: str
    cycle: int | None
    taken_at: str
    status: str
    chains: dict[str, dict[str, object]]
    exposure: dict[str, object] | None
    alerts: list[dict[str, object]]


@dataclass
class CycleOutcome:
    status: str  # ok | partial | failed
    cycle_id: int | None
    poll: PollJson
    head: str
    duration_s: float
    chain_lag_s: dict[str, float] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)


@dataclass
class _Totals:
    """Per wallet/asset totals of the readable chains, per view."""

    settled: dict[tuple[str, str], int] = field(default_factory=dict)
    watch: dict[tuple[str, str], int] = field(default_factory=dict)
    nonces: dict[str, dict[str, int]] = field(default_factory=lambda: {"settled": {}, "watch": {}})
    addresses: list[tuple[str, str, str, str, int]] = field(default_factory=list)


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    deadline_s: float | None = None,
    clients: Mapping[str, ChainClient] | None = None,
) -> CycleOutcome:
    """Run one cycle and store it. Never raises for chain or input trouble:
    that becomes `stale_data`; raises AuditorError only if the store fails."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    budget = deadline_s if deadline_s is not None else 0.8 * settings.schedule.poll_every
    own = clients is None
    use = dict(clients) if clients is not None else {n: _client(c) for n, c in settings.chains.items()}
    try:
        readings = _read_chains(settings, use, started + budget, store)
        totals, bad_chains = _wallet_totals(settings, readings)
        for name, reason in bad_chains.items():
            readings[name] = ChainReading(chain=name, ok=False, settled=None, watch=None,
                                          problems=readings[name].problems, error=reason)
        ok_chains = [n for n, r in readings.items() if r.ok]
        # Transfers (ingested, screened, classified) and Safes; their trouble is a warning on the chain.
        flows = prepare_flows(settings, store, readings, now, started + budget, use) if ok_chains else Flows()
    finally:
        if own:
            _close(use.values())
    for name, extra in flows.problems.items():
        readings[name] = dataclasses.replace(readings[name], problems=readings[name].problems + tuple(extra))

    in_scope = _assets_in_scope(settings)
    # Feeds are read at the settled block the chain client read: reproducible from its hash.
    priced = fetch_prices(settings.prices, settings.assets, now, chains=settings.chains,
                          blocks={n: r.settled.block for n, r in readings.items()
                                  if r.ok and r.settled is not None},
                          deadline=started + budget)
    prices = priced.prices
    liabilities, liab_error = _load_ledger(settings)

    inputs_ok = liab_error is None and all(prices.get(a) for a in in_scope)
    if not ok_chains:
        status = "failed"
    elif len(ok_chains) < len(readings) or not inputs_ok:
        status = "partial"
    else:
        status = "ok"

    exposure: Exposure | None = None
    if status != "failed":
        exposure = compute_exposure(
            settings.wallets, settings.assets, totals.settled, prices, liabilities,
            settings.rules.scope_classes, now, settings.prices.max_age, settings.exchange.fiat,
        )

    material = config_material(settings)
    digest = _digest(material)
    last_cfg = store.last_config()
    diff = None
    if last_cfg is not None and last_cfg[0] != digest:
        diff = diff_material(last_cfg[1], material) or ["config changed"]

    evaluations = _evaluate(settings, store, now, readings, totals, exposure, prices,
                            liabilities, liab_error, diff, status,
                            price_status=priced.statuses(), flows=flows.rule_input)
    evaluations += flows.evaluations
    if status == "failed":
        # A failed cycle decides nothing but staleness.
        evaluations = [e for e in evaluations if e.rule in ("stale_data", "daily_record")]
    wallet_chain = {w.name: w.chain for w in settings.wallets}
    update = alerting.advance(
        evaluations, store.open_alerts(), now, settings.exchange.id,
        settings.alerts.repeat_every, status != "ok",
        repeat_for=lambda a: alerting.repeat_interval(a, settings.alerts.routes, wallet_chain,
                                                      settings.alerts.repeat_every),
    )
    update.transitions += reorg_transitions(flows.removed, settings.exchange.id,
                                            set(store.open_alerts()), now)
    # Silenced transitions are stored and audit-logged (marked), only not delivered.
    update.transitions, muted = silences.apply_silences(
        update.transitions, store.silences(active_at=now), now,
        notified={a.fingerprint for a in update.alerts if a.notified_channels})
    deliveries, notified = plan_deliveries(settings, update.transitions, update.alerts,
                                           last_cfg[1] if last_cfg is not None else None, muted)
    update.alerts = [with_notified(a, notified.get(a.fingerprint, ())) for a in update.alerts]
    consumed = sorted({a for e in evaluations for a in getattr(e, "consumed", frozenset())})

    poll = _poll_json(settings, now, status, readings, exposure, update, store)
    _transfers_json(poll, flows)
    rec = CycleRecord(
        taken_at=now,
        status=status,
        reason=_reason(readings, liab_error) if status != "ok" else None,
        chains={n: _chain_json(r) for n, r in readings.items()},
        totals=_totals_rows(totals) if status != "failed" else [],
        nonces=[(v, w, n) for v, m in totals.nonces.items() for w, n in m.items()] if status != "failed" else [],
        address_balances=totals.addresses if status != "failed" else [],
        exposure=poll["exposure"] if status != "failed" else None,
        findings=[_finding_json(f) for e in evaluations for f in e.findings],
        alerts=update.alerts,
        transitions=update.transitions,
        deliveries=deliveries,
        consumed_approvals=consumed,
        config=material if last_cfg is None or last_cfg[0] != digest else None,
        config_digest=digest,
        poll=poll,
        wallet_chains={w.name: w.chain for w in settings.wallets},
        discovery=[(n, b, i) for n, r in readings.items() if r.ok for b, i in r.discovery.items()]
        if status != "failed" else [],
        transfers=flows.writes if status != "failed" else [],
        safe_states=flows.safe_states if status != "failed" else [],
    )
    with store.transaction():  # the cycle and the daily record it may write: both or neither
        result = store.write_cycle(rec)
        if status == "ok":
            write_due_record(store, settings, now, poll, result.cycle_id)
    poll["cycle"] = result.cycle_id
    lag = {n: max(0.0, (now.timestamp() - r.head_timestamp)) for n, r in readings.items()
           if r.head_timestamp is not None}
    transitions = [
        _with_seq(t, s) for t, s in zip(update.transitions, result.seqs, strict=True)
    ]
    return CycleOutcome(status=status, cycle_id=result.cycle_id, poll=poll, head=result.head,
                        duration_s=time.monotonic() - started, chain_lag_s=lag,
                        transitions=transitions)


def poll_exit_code(outcome: CycleOutcome, fail_on: str | None) -> int:
    """DESIGN.md exit codes: 3 failed; 1 when --fail-on matched; else 0 (partial included)."""
    if outcome.status == "failed":
        return 3
    if fail_on:
        floor = 1 if fail_on == "warning" else 2
        for a in outcome.poll.get("alerts", []):
            if a["state"] == "firing" and (2 if a["severity"] == "critical" else 1) >= floor:
                return 1
    return 0


# --- reading -----------------------------------------------------------------


class _UnusableClient:
    """A chain whose client could not be created: read as unreadable (stale_data), never zero."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self._reason = name, reason

    def read(self, wallets: object, assets: object, deadline: float | None = None) -> ChainReading:
        return _unreadable(self.name, self._reason)

    def close(self) -> None:
        pass


def _client(chain: ChainSettings) -> ChainClient:
    try:
        return make_client(chain)
    except Exception as exc:  # a client that cannot start must not take the other chains down
        log.error("chain %s: client could not be created: %s", chain.name, type(exc).__name__)
        return _UnusableClient(chain.name, f"client could not be set up ({type(exc).__name__})")


def _close(clients: Iterable[ChainClient]) -> None:
    for c in clients:
        try:
            c.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass


def _read_chains(settings: Settings, use: Mapping[str, ChainClient],
                 deadline: float, store: Store) -> dict[str, ChainReading]:
    for name, client in use.items():
        resume = getattr(client, "resume", None)  # clients that discover addresses (Bitcoin)
        if callable(resume):
            resume(store.discovery(name))
        resume_transfers = getattr(client, "resume_transfers", None)  # and read transfers themselves
        if callable(resume_transfers):
            cursor = store.ingest_cursor(name)
            resume_transfers(cursor, store.ingest_hashes(name, (cursor or 0) - KEEP_BLOCK_HASHES))
    out: dict[str, ChainReading] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(use)), thread_name_prefix="chain")
    try:
        futures = {}
        for name, client in use.items():
            wallets = [w for w in settings.wallets if w.chain == name]
            futures[name] = pool.submit(client.read, wallets, settings.assets, deadline)
        for name, fut in futures.items():
            try:
                out[name] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                out[name] = _unreadable(name, "not read by the cycle deadline")
            except Exception as e:  # a client bug must not become a zero balance
                log.exception("chain %s: read crashed", name)
                out[name] = _unreadable(name, f"read failed: {type(e).__name__}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def _unreadable(name: str, reason: str) -> ChainReading:
    return ChainReading(chain=name, ok=False, settled=None, watch=None, error=reason)


@functools.lru_cache(maxsize=1024)
def _lowered(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """A wallet's addresses as the chain clients key them; the same strings every
    cycle, so 100k addresses are not re-lowered (and re-allocated) per view and asset."""
    return tuple(sys.intern(a.lower()) for a in addresses)


def _wallet_totals(settings: Settings, readings: Mapping[str, ChainReading]) -> tuple[_Totals, dict[str, str]]:
    """Sum address balances per wallet/asset in the asset's decimals; a missing
    balance in a reading that claims ok makes the chain unreadable, never zero."""
    t = _Totals()
    bad: dict[str, str] = {}
    for w in settings.wallets:
        r = readings.get(w.chain)
        if r is None or not r.ok or w.chain in bad:
            continue
        # Discovered addresses (Bitcoin) are keyed as written on chain: base58 is case-sensitive.
        lows = (r.wallet_addresses.get(w.name, ()) if r.wallet_addresses is not None
                else _lowered(w.addresses))
        try:
            for view_name, view in (("settled", r.settled), ("watch", r.watch)):
                assert view is not None
                dest = t.settled if view_name == "settled" else t.watch
                balances = view.balances
                for asset in w.assets:
                    dep = settings.assets[asset].on_chain(w.chain)
                    assert dep is not None
                    to_dec = settings.assets[asset].decimals
                    rows = [(w.chain, view_name, a, asset,
                             rescale(balances[(a, asset)], dep.decimals, to_dec)) for a in lows]
                    dest[(w.name, asset)] = sum(row[4] for row in rows)
                    t.addresses.extend(rows)
                if settings.chains[w.chain].type == "ethereum":  # Bitcoin has no nonces
                    t.nonces[view_name][w.name] = sum(view.nonces[a] for a in lows)
        except (KeyError, AssertionError):
            bad[w.chain] = f"the reading of wallet {w.name} is incomplete"
    if bad:  # drop everything of a chain that turned out unreadable
        names = {w.name for w in settings.wallets if w.chain in bad}
        for d in (t.settled, t.watch):
            for k in [k for k in d if k[0] in names]:
                del d[k]
        for m in t.nonces.values():
            for name in [n for n in m if n in names]:
                del m[name]
        t.addresses = [a for a in t.addresses if a[0] not in bad]
    return t, bad


def _load_ledger(settings: Settings) -> tuple[Liabilities | None, str | None]:
    if settings.liabilities is None:
        return None, None
    try:
        return load_liabilities(settings.liabilities, settings.assets), None
    except AuditorError as e:
        return None, str(e)


def _assets_in_scope(settings: Settings) -> list[str]:
    scope = settings.rules.scope_classes
    return [a for a, s in settings.assets.items() if scope is None or s.cls in scope]


# --- rules -------------------------------------------------------------------


def _evaluate(settings: Settings, store: Store, now: datetime,
              readings: Mapping[str, ChainReading], totals: _Totals, exposure: Exposure | None,
              prices: Mapping[str, Price | None], liabilities: Liabilities | None,
              liab_error: str | None, diff: list[str] | None, status: str, *,
              price_status: Mapping[str, rules.InputStatus] | None = None,
              flows: Mapping[str, object] | None = None) -> list[Evaluation]:
    longest = max((w.window for w in settings.rules.hot_drain.windows), default=0)
    history = store.watch_history(now - timedelta(seconds=longest)) if status != "failed" else []
    last = store.last_watch()
    inp = rules.RuleInput(
        now=now,
        exchange_id=settings.exchange.id,
        rules=settings.rules,
        wallets=settings.wallets,
        assets=settings.assets,
        exposure=exposure,
        prices=prices,
        watch_now=totals.watch,
        nonces_now=totals.nonces["watch"],
        watch_history=history,
        prev_watch=last[0] if last else None,
        prev_nonces=last[1] if last else None,
        approvals=valid_approvals(settings.approvals)[0],  # forged or under-signed: no cover
        used_approvals=frozenset(store.used_approvals()),
        config_digest_changed=diff,
        chain_status={n: _chain_status(settings, store, n, r, now) for n, r in readings.items()},
        liabilities_status=rules.InputStatus.from_liabilities(liabilities, liab_error, settings, now)
        if hasattr(rules, "InputStatus") else None,
        price_status=price_status,
        last_ok_cycle_at=store.last_ok_cycle_at(),
        poll_every=settings.schedule.poll_every,
        **record_inputs(store, settings, now),
        **(flows or {}),  # type: ignore[arg-type]
    )
    return rules.evaluate_all(inp)


def _chain_status(settings: Settings, store: Store, name: str, r: ChainReading, now: datetime) -> rules.ChainStatus:
    max_age = settings.chains[name].max_head_age
    head_age = int(now.timestamp() - r.head_timestamp) if r.head_timestamp is not None else None
    advanced = None
    heads = store.last_heads()
    if r.ok and r.watch is not None and name in heads:
        prev_block, _hash, first_seen = heads[name]
        advanced = r.watch.block.number > prev_block or (now - first_seen).total_seconds() <= max_age
    return rules.ChainStatus(ok=r.ok, error=r.error, problems=r.problems, head_age_s=head_age,
                             max_head_age=max_age, head_advanced=advanced)


# --- alerts and output ---------------------------------------------------------


def _poll_json(settings: Settings, now: datetime, status: str, readings: Mapping[str, ChainReading],
               exposure: Exposure | None, update: alerting.AlertUpdate, store: Store) -> PollJson:
    firing = {fp: a for fp, a in store.open_alerts().items()}
    for a in update.alerts:
        if a.state == "firing":
            firing[a.fingerprint] = a
        else:
            firing.pop(a.fingerprint, None)
    resolved = [a for a in update.alerts if a.state == "resolved"]
    return {
        "exchange": settings.exchange.id,
        "cycle": None,
        "taken_at": rfc3339(now),
        "status": status,
        "chains": {n: _chain_view_json(r, status) for n, r in readings.items()},
        "exposure": exposure_json(exposure) if exposure is not None and status != "failed" else None,
        "alerts": [alerting.alert_json(a) for a in [*firing.values(), *resolved]],
    }


def _transfers_json(poll: PollJson, flows: Flows) -> None:
    """Per chain whose transfers were ingested: the new transfers by class and the last
    block ingested (`transfers: {"new": {"unknown": 2}, "ingested_to": 123}`)."""
    for w in flows.writes:
        chain = poll["chains"].get(w.chain)
        if chain is None:
            continue
        counts: dict[str, int] = {}
        for c in flows.new:
            if c.transfer.chain == w.chain:
                counts[c.cls] = counts.get(c.cls, 0) + 1
        chain["transfers"] = {"new": counts, "ingested_to": w.cursor}


def _chain_view_json(r: ChainReading, status: str) -> dict[str, object]:
    ok = r.ok and status != "failed"
    out: dict[str, object] = {"ok": ok}
    if ok and r.settled and r.watch:
        out["settled"] = {"block": r.settled.block.number, "block_hash": r.settled.block.hash}
        out["watch"] = {"block": r.watch.block.number, "block_hash": r.watch.block.hash}
    elif r.error:
        out["error"] = r.error
    if ok and r.wallet_addresses is not None:  # discovered (Bitcoin): addresses per wallet
        out["addresses"] = {w: len(a) for w, a in r.wallet_addresses.items()}
    # Which provider failed, lags or disagrees (labels only: scheme://host:port).
    out["problems"] = [{"severity": p.severity, "provider": p.provider, "message": p.message,
                        "values": dict(p.values)} for p in r.problems]
    return out


def _chain_json(r: ChainReading) -> dict[str, object]:
    def view(v: object) -> object:
        if v is None:
            return None
        b = v.block  # type: ignore[attr-defined]
        return {"block": b.number, "block_hash": b.hash, "timestamp": b.timestamp}

    out: dict[str, object] = {
        "ok": r.ok,
        "error": r.error,
        "settled": view(r.settled),
        "watch": view(r.watch),
        "head_timestamp": r.head_timestamp,
        "problems": [{"severity": p.severity, "provider": p.provider, "message": p.message,
                      "values": dict(p.values)} for p in r.problems],
    }
    if r.wallet_addresses is not None:  # discovered: say how many addresses each wallet has
        out["addresses"] = {w: len(a) for w, a in r.wallet_addresses.items()}
    return out


def _totals_rows(t: _Totals) -> list[tuple[str, str, str, int]]:
    rows = [("settled", w, a, v) for (w, a), v in t.settled.items()]
    rows += [("watch", w, a, v) for (w, a), v in t.watch.items()]
    return rows


def _finding_json(f: object) -> dict[str, object]:
    from .units import format_decimal

    def d(v: object) -> object:
        return None if v is None else format_decimal(v)  # type: ignore[arg-type]

    return {"rule": f.rule, "subject": f.subject, "severity": f.severity,  # type: ignore[attr-defined]
            "summary": f.summary, "value": d(f.value), "threshold": d(f.threshold),  # type: ignore[attr-defined]
            "details": f.details}  # type: ignore[attr-defined]


def _reason(readings: Mapping[str, ChainReading], liab_error: str | None) -> str:
    parts = [f"{n}: {r.error}" for n, r in readings.items() if not r.ok]
    if liab_error:
        parts.append(f"liabilities: {liab_error}")
    return "; ".join(parts) or "an input is missing"


def _digest(material: Mapping[str, object]) -> str:
    raw = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def _with_seq(t: Transition, seq: int) -> Transition:
    from dataclasses import replace

    return replace(t, seq=seq)
