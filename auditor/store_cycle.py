"""Writing one cycle: everything it saw and decided, in the caller's one transaction.

Audit records, in order: one `snapshot` per chain, `exposure`, one `alert`
per transition (its seq is the transition's seq), `config` when the digest
changed, then `cycle`. Per-address balances are written only when they
changed since the last stored value (DESIGN.md, Store).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .model import Alert, Transition
from .store_alerts import upsert_alerts
from .store_audit import AuditChain
from .store_codec import (
    db_time,
    dumps,
    format_time,
    transition_to_json,
)
from .store_transfers import TransferWrite, write_transfers_tx

__all__ = ["BalanceCache", "CycleRecord", "CycleWriteResult", "write_cycle_tx"]

Balance = tuple[str, str, str, str, int]  # chain, view, address, asset, amount


@dataclass
class CycleRecord:
    """What one cycle hands the store. JSON-able parts carry no floats (TypeError)."""

    taken_at: datetime
    status: str  # ok | partial | failed
    reason: str | None = None
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: list[tuple[str, str, str, int]] = field(default_factory=list)  # view, wallet, asset, amount
    nonces: list[tuple[str, str, int]] = field(default_factory=list)  # view, wallet, nonce
    # chain, view, address, asset, amount: ALL current balances; the store keeps the changes
    address_balances: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    exposure: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # current state, upserted by fingerprint
    transitions: list[Transition] = field(default_factory=list)
    deliveries: list[tuple[str, list[int]]] = field(default_factory=list)  # channel, transition idx
    consumed_approvals: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None
    config_digest: str | None = None
    poll: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None  # default: taken_at (for /livez)
    wallet_chains: dict[str, str] = field(default_factory=dict)  # wallet → chain, for snapshots
    # chain, "wallet|branch descriptor", highest used index (Bitcoin address discovery)
    discovery: list[tuple[str, str, int]] = field(default_factory=list)
    transfers: list[TransferWrite] = field(default_factory=list)  # per chain: rows, rollback, cursor
    safe_states: list[tuple[str, str, str]] = field(default_factory=list)  # address, wallet, state JSON


@dataclass(frozen=True)
class CycleWriteResult:
    cycle_id: int
    seqs: list[int]  # audit seq of each transition, in order (Transition.seq)
    head: str
    balances_written: int = 0


class BalanceCache:
    """Last stored balance per (chain, view, address, asset), loaded once from the DB.

    Keyed by (chain, view, asset) then address so 300k entries stay compact.
    `cycle` is the last cycle the cache reflects; another writer (or a rolled
    back outer transaction) makes it differ from the store, and it reloads.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], dict[str, int]] | None = None
        self.cycle: int | None = None

    def sync(self, conn: sqlite3.Connection, last_cycle: int) -> None:
        if self.values is not None and self.cycle == last_cycle:
            return
        values: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
        for chain, view, address, asset, amount in conn.execute(
            "SELECT chain, view, address, asset, amount FROM address_latest"
        ):
            values[(chain, view, asset)][address] = int(amount)
        self.values, self.cycle = dict(values), last_cycle

    def changed(self, balances: list[Balance]) -> list[Balance]:
        """The balances that differ from the last stored value (does not update the cache)."""
        assert self.values is not None
        out = []
        get_group = self.values.get
        for row in balances:
            chain, view, address, asset, amount = row
            if type(amount) is not int:
                raise TypeError(f"balance of {chain}:{address}/{asset} must be int base units, "
                                f"got {type(amount).__name__}")
            group = get_group((chain, view, asset))
            if group is None or group.get(address) != amount:
                out.append(row)
        return out

    def apply(self, changed: list[Balance], cycle: int) -> None:
        if self.values is None:  # never loaded (only failed cycles so far): load lazily later
            return
        for chain, view, address, asset, amount in changed:
            self.values.setdefault((chain, view, asset), {})[address] = amount
        self.cycle = cycle


def _validate(rec: CycleRecord) -> None:
    if rec.status not in ("ok", "partial", "failed"):
        raise ValueError(f"cycle status must be ok, partial or failed, not {rec.status!r}")
    if rec.status == "failed" and (rec.totals or rec.address_balances or rec.exposure is not None):
        raise ValueError("a failed cycle stores no totals, balances or exposure")
    n = len(rec.transitions)
    for channel, idxs in rec.deliveries:
        if any(not 0 <= i < n for i in idxs):
            raise ValueError(f"delivery to {channel!r} names a transition index outside 0..{n - 1}")


def _amounts_by_chain(rec: CycleRecord, changed: list[Balance]) -> dict[str, dict[str, Any]]:
    """Per chain: wallet totals and nonces per view, and the balances that changed."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"totals": {}, "nonces": {}, "balances_changed": []})
    for view, wallet, asset, amount in rec.totals:
        chain = rec.wallet_chains.get(wallet, "")
        out[chain]["totals"].setdefault(view, {}).setdefault(wallet, {})[asset] = str(amount)
    for view, wallet, nonce in rec.nonces:
        chain = rec.wallet_chains.get(wallet, "")
        out[chain]["nonces"].setdefault(view, {})[wallet] = str(nonce)
    for chain in {b[0] for b in changed}:
        out[chain]  # every chain with changes gets a snapshot record
    return out


# Per-address changes go into the log in parts of this many balances, so a first
# cycle of 100k addresses × 3 assets × 2 views never builds one 600k-entry record.
BALANCES_PER_RECORD = 10_000


def _write_amounts(conn: sqlite3.Connection, cid: int, rec: CycleRecord, changed: list[Balance]) -> None:
    conn.executemany(
        "INSERT INTO wallet_totals (cycle, view, wallet, asset, amount) VALUES (?, ?, ?, ?, ?)",
        [(cid, v, w, a, str(int(x))) for v, w, a, x in rec.totals])
    conn.executemany(
        "INSERT INTO wallet_nonces (cycle, view, wallet, nonce) VALUES (?, ?, ?, ?)",
        [(cid, v, w, str(int(n))) for v, w, n in rec.nonces])
    rows = [(cid, c, v, ad, a, str(x)) for c, v, ad, a, x in changed]
    conn.executemany("INSERT INTO address_balances (cycle, chain, view, address, asset, amount) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO address_latest (cycle, chain, view, address, asset, amount) VALUES "
        "(?, ?, ?, ?, ?, ?) ON CONFLICT (chain, view, address, asset) "
        "DO UPDATE SET amount = excluded.amount, cycle = excluded.cycle", rows)
    _write_watch_latest(conn, cid, rec)


def _write_watch_latest(conn: sqlite3.Connection, cid: int, rec: CycleRecord) -> None:
    """Per wallet, its latest watch totals: a wallet of an unreadable chain keeps older ones."""
    totals: dict[str, dict[str, str]] = defaultdict(dict)
    for view, wallet, asset, amount in rec.totals:
        if view == "watch":
            totals[wallet][asset] = str(amount)
    nonces = {w: str(n) for v, w, n in rec.nonces if v == "watch"}
    conn.executemany(
        "INSERT INTO watch_latest (wallet, cycle, totals, nonce) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (wallet) DO UPDATE SET cycle = excluded.cycle, totals = excluded.totals, "
        "nonce = excluded.nonce",
        [(w, cid, dumps(t), nonces.get(w)) for w, t in totals.items()])


def _append_snapshots(chain: AuditChain, cid: int, rec: CycleRecord,
                      changed: list[Balance]) -> dict[str, Any]:
    """One snapshot per chain; returns the totals of wallets `wallet_chains` does not map."""
    by_chain = _amounts_by_chain(rec, changed)
    unmapped = by_chain.pop("", {})
    ordered = sorted(changed)
    start = 0
    for name in sorted(set(rec.chains) | set(by_chain)):
        end = start
        while end < len(ordered) and ordered[end][0] == name:
            end += 1
        parts = range(start, end, BALANCES_PER_RECORD)
        payload = {**rec.chains.get(name, {}), "cycle": cid, "chain": name, **by_chain[name],
                   "balances_changed": _balances(ordered, start, min(end, start + BALANCES_PER_RECORD)),
                   "balances_parts": max(1, len(parts))}
        chain.append("snapshot", payload, rec.taken_at)
        for part, lo in enumerate(parts[1:], start=2):
            chain.append("snapshot_balances", {
                "cycle": cid, "chain": name, "part": part,
                "balances_changed": _balances(ordered, lo, min(end, lo + BALANCES_PER_RECORD)),
            }, rec.taken_at)
        start = end
    return {k: v for k, v in unmapped.items() if k != "balances_changed" and v}


def _balances(ordered: list[Balance], lo: int, hi: int) -> list[list[str]]:
    return [[view, address, asset, str(amount)] for _c, view, address, asset, amount in ordered[lo:hi]]


def _append_transitions(conn: sqlite3.Connection, chain: AuditChain, cid: int,
                        rec: CycleRecord) -> tuple[list[int], list[dict[str, Any]]]:
    seqs, payloads = [], []
    for t in rec.transitions:
        payload = transition_to_json(t, seq=chain.next_seq)
        payload["cycle"] = cid
        record = chain.append("alert", payload, t.at)
        conn.execute("INSERT INTO alert_events (seq, fingerprint, cycle, kind, at, payload) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (record.seq, t.fingerprint, cid, t.kind, db_time(t.at), dumps(payload)))
        seqs.append(record.seq)
        payloads.append(payload)
    return seqs, payloads


def _write_decisions(conn: sqlite3.Connection, cid: int, rec: CycleRecord,
                     payloads: list[dict[str, Any]]) -> None:
    upsert_alerts(conn, rec.alerts)
    at = db_time(rec.taken_at)
    conn.executemany(
        "INSERT INTO outbox (created_at, channel, cycle, payload, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(at, ch, cid, dumps([payloads[i] for i in idxs], "outbox"), at)
         for ch, idxs in rec.deliveries])
    conn.executemany("INSERT OR IGNORE INTO approvals_used (id, cycle, at) VALUES (?, ?, ?)",
                     [(a, cid, at) for a in rec.consumed_approvals])
    # Only ever raised: an index once used stays scanned (a reorg may take its coins away,
    # scanning a few more unused addresses costs little; missing a used one hides funds).
    conn.executemany(
        "INSERT INTO discovery (chain, branch, last_used, cycle) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (chain, branch) DO UPDATE SET last_used = max(last_used, excluded.last_used), "
        "cycle = excluded.cycle", [(c, b, i, cid) for c, b, i in rec.discovery])
    conn.executemany(
        "INSERT INTO findings (cycle, idx, rule, subject, payload) VALUES (?, ?, ?, ?, ?)",
        [(cid, i, f.get("rule"), f.get("subject"), dumps(f, "finding"))
         for i, f in enumerate(rec.findings)])


def _append_config(conn: sqlite3.Connection, chain: AuditChain, cid: int, rec: CycleRecord) -> None:
    if rec.config_digest is None:
        return
    row = conn.execute("SELECT digest FROM configs ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None and row[0] == rec.config_digest:
        return
    material = rec.config or {}
    r = chain.append("config", {"cycle": cid, "digest": rec.config_digest, "material": material},
                     rec.taken_at)
    conn.execute("INSERT INTO configs (seq, digest, material, cycle, at) VALUES (?, ?, ?, ?, ?)",
                 (r.seq, rec.config_digest, dumps(material), cid, db_time(rec.taken_at)))


def _update_heads(conn: sqlite3.Connection, cid: int, rec: CycleRecord) -> None:
    """Per chain, the watch head and when this cycle first saw it (head-not-advancing check)."""
    for name, c in rec.chains.items():
        watch = c.get("watch") if c.get("ok") else None
        if not watch or watch.get("block") is None:
            continue
        conn.execute(
            "INSERT INTO chain_heads (chain, block, hash, first_seen_at, cycle) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain) DO UPDATE SET block = excluded.block, "
            "hash = excluded.hash, first_seen_at = excluded.first_seen_at, cycle = excluded.cycle "
            "WHERE chain_heads.hash IS NOT excluded.hash",
            (name, int(watch["block"]), str(watch.get("block_hash", "")),
             db_time(rec.taken_at), cid))


def write_cycle_tx(conn: sqlite3.Connection, rec: CycleRecord,
                   cache: BalanceCache) -> tuple[CycleWriteResult, list[Balance]]:
    """Write `rec` inside the caller's open write transaction.

    Returns the result and the changed balances, which the caller applies to
    `cache` only after COMMIT (a rollback must leave the cache as it was).
    """
    _validate(rec)
    last = conn.execute("SELECT coalesce(max(id), 0) FROM cycles").fetchone()[0]
    cid = last + 1
    chain = AuditChain(conn)
    changed: list[Balance] = []
    unmapped: dict[str, Any] = {}
    if rec.status != "failed":
        cache.sync(conn, last)
        changed = cache.changed(rec.address_balances)
        _write_amounts(conn, cid, rec, changed)
        unmapped = _append_snapshots(chain, cid, rec, changed)
    if rec.exposure is not None:
        chain.append("exposure", {"cycle": cid, "exposure": rec.exposure}, rec.taken_at)
        conn.execute("INSERT INTO exposures (cycle, payload) VALUES (?, ?)",
                     (cid, dumps(rec.exposure, "exposure")))
    seqs, payloads = _append_transitions(conn, chain, cid, rec)
    _write_decisions(conn, cid, rec, payloads)
    conn.executemany("INSERT OR REPLACE INTO safe_states (address, wallet, state, cycle) VALUES (?, ?, ?, ?)",
                     [(a, w, s, cid) for a, w, s in rec.safe_states])
    moved = write_transfers_tx(conn, cid, rec.transfers, db_time(rec.taken_at))
    if moved is not None:
        chain.append("transfers", moved, rec.taken_at)
    _append_config(conn, chain, cid, rec)
    _update_heads(conn, cid, rec)
    _append_cycle(conn, chain, cid, rec, unmapped)
    return CycleWriteResult(cid, seqs, chain.head, len(changed)), changed


def _append_cycle(conn: sqlite3.Connection, chain: AuditChain, cid: int, rec: CycleRecord,
                  unmapped: dict[str, Any]) -> None:
    record = chain.append("cycle", {
        "cycle": cid, "status": rec.status, "reason": rec.reason,
        "taken_at": format_time(rec.taken_at), "findings": rec.findings,
        "approvals_consumed": list(rec.consumed_approvals), "config_digest": rec.config_digest,
        **unmapped,  # totals/nonces of wallets without a chain in wallet_chains
    }, rec.taken_at)
    has_watch = any(v == "watch" for v, *_ in rec.totals)
    conn.execute(
        "INSERT INTO cycles (id, taken_at, started_at, status, reason, chains, poll, has_watch, "
        "config_digest, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (cid, db_time(rec.taken_at), db_time(rec.started_at or rec.taken_at), rec.status,
         rec.reason, dumps(rec.chains, "chains"), dumps({**rec.poll, "cycle": cid}, "poll"),
         int(has_watch), rec.config_digest, record.seq))
