"""Event rules on movements: hot_drain, cold_outflow, config_changed.

Event rules cover nothing: their alerts never resolve by evaluation, only a
person resolves them (DESIGN.md "Alerts").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from . import units
from .model import SEVERITY_RANK, Evaluation, Finding
from .rules_base import RuleInput, WalletAsset, pct, whole
from .rules_cold import cold_transfers
from .rules_drain import drain_by_transfers, fires, gross_outflows
from .settings import ApprovalItem, DrainWindow, WalletSettings

__all__ = ["hot_drain", "cold_outflow", "config_changed", "native_asset", "GAS_ALLOWANCE"]

# An approved cold movement of the chain's native coin may take up to this
# much more than its amount (whole native units): the transaction's fee.
GAS_ALLOWANCE = Decimal("0.01")

Point = tuple[datetime, Mapping[WalletAsset, int]]


# --- hot_drain -----------------------------------------------------------------


def hot_drain(inp: RuleInput) -> Evaluation:
    """Per hot/warm wallet and asset, the worst window whose fall exceeds its drop.

    On chains whose transfers are tracked (`inp.tracks`), the fall is the gross
    outflows that are not internal within the window (`rules_drain`): a sweep
    to cold never counts, and deposits arriving meanwhile never hide a theft.
    Elsewhere, fall = the window's high − current − internal outflows since
    that high, and an outflow is internal when, in the same step
    between two readings, other own wallets of the asset rose: each falling
    wallet's fall is matched by the rises, shared in proportion to the falls
    when several wallets fell, so a sweep to cold (the cold wallet rises by
    the amount, the hot wallet falls by the amount plus the fee) leaves only
    the fee as fall ("within fees"). Deposit wallets' rises never match: they
    receive customer deposits all the time, which would mask a theft.
    """
    rule = inp.rules.hot_drain
    if not rule.windows:
        return Evaluation("hot_drain")
    points: list[Point] = [p for p in inp.watch_history if p[0] < inp.now]
    points.append((inp.now, inp.watch_now))
    steps = _StepPool(inp.wallets, points)
    outflows = gross_outflows(inp)
    findings: list[Finding] = []
    for w in inp.wallets:
        if w.tier not in ("hot", "warm"):
            continue
        for sym in w.assets:
            if (w.name, sym) not in inp.watch_now or sym not in inp.assets:
                continue
            if inp.tracks(w.chain):
                f = drain_by_transfers(inp, w.name, sym, points, outflows.get((w.name, sym), []))
            else:
                f = _drain_finding(inp, w.name, sym, points, steps)
            if f is not None:
                findings.append(f)
    return Evaluation("hot_drain", tuple(findings))


class _StepPool:
    """Per step (i → j between readings) and asset: total falls and matchable rises."""

    def __init__(self, wallets: Sequence[WalletSettings], points: list[Point]):
        self._points = points
        self._by_asset: dict[str, list[WalletSettings]] = {}
        for w in wallets:
            for a in w.assets:
                self._by_asset.setdefault(a, []).append(w)
        self._cache: dict[tuple[int, int, str], tuple[int, int]] = {}

    def internal(self, i: int, j: int, asset: str, fall: int) -> int:
        """How much of a wallet's `fall` from point i to j other own wallets absorbed."""
        key = (i, j, asset)
        if key not in self._cache:
            self._cache[key] = self._totals(i, j, asset)
        falls, rises = self._cache[key]
        if falls <= 0 or fall <= 0:
            return 0
        return fall * min(falls, rises) // falls

    def _totals(self, i: int, j: int, asset: str) -> tuple[int, int]:
        a, b = self._points[i][1], self._points[j][1]
        falls = rises = 0
        for w in self._by_asset.get(asset, ()):
            k = (w.name, asset)
            if k not in a or k not in b:
                continue
            delta = b[k] - a[k]
            if delta < 0:
                falls -= delta
            elif w.tier != "deposit":
                rises += delta
        return falls, rises


def _drain_finding(inp: RuleInput, wallet: str, sym: str, points: list[Point],
                   steps: _StepPool) -> Finding | None:
    key = (wallet, sym)
    present = [i for i, (_, m) in enumerate(points) if key in m]
    current = points[-1][1][key]
    best: tuple[int, Decimal, DrainWindow, int, int] | None = None
    for win in inp.rules.hot_drain.windows:
        start = inp.now - timedelta(seconds=win.window)
        idx = [i for i in present if points[i][0] >= start]
        high = max(points[i][1][key] for i in idx)
        at = max(i for i in idx if points[i][1][key] == high)  # the latest time it stood there
        since = [i for i in present if i >= at]
        internal = sum(steps.internal(i, j, sym, points[i][1][key] - points[j][1][key])
                       for i, j in zip(since, since[1:]))
        fall = high - current - internal
        if fall <= 0 or not fires(inp, sym, fall, high, win):
            continue
        share = units.ratio(fall, high) or Decimal(0)
        rank = (SEVERITY_RANK[win.severity], share)
        if best is None or rank > (SEVERITY_RANK[best[2].severity], best[1]):
            best = (fall, share, win, high, internal)
    if best is None:
        return None
    fall, share, win, high, internal = best
    d = inp.assets[sym].decimals
    span = units.format_duration(win.window)
    return Finding(
        "hot_drain", f"{wallet}/{sym}", win.severity,
        f"{wallet} lost {pct(share, win.drop)} of its {sym} within {span} ({whole(fall, d)} {sym}, "
        f"from {whole(high, d)} to {whole(current, d)}; limit {pct(win.drop)}): if nobody "
        f"moved it, stop withdrawals and rotate the keys now",
        value=share, threshold=win.drop,
        details={"wallet": wallet, "asset": sym, "window": span, "high": whole(high, d),
                 "current": whole(current, d), "fall": whole(fall, d),
                 "internal": whole(internal, d)},
    )


# --- cold_outflow ----------------------------------------------------------------


def native_asset(inp: RuleInput, chain: str) -> str | None:
    """The asset whose deployment on `chain` is the chain's own coin (no token)."""
    for sym, a in inp.assets.items():
        d = a.on_chain(chain)
        if d is not None and d.token is None:
            return sym
    return None


def cold_outflow(inp: RuleInput) -> Evaluation:
    """Any movement of a cold wallet that no unused approval item covers.

    On chains whose transfers are ingested (`inp.ingests`), each outgoing
    transfer and ERC-20 approval is checked against the items
    (`rules_cold.cold_transfers`, with the transaction and destination in the
    finding); then, only where the ingestion covered exactly the blocks
    between the two readings (`reconcile_chains`), the balance/nonce check
    below runs on what those transfers do not explain (a movement no log
    showed), so one movement never fires twice nor uses two items. Where
    transfers are ingested but not reconciled (ingestion failing or catching
    up), the transfer check alone decides: its transfers arrive in a later
    cycle, and a balance check now would use up their approval first.

    Balance/nonce check (chains without transfer ingestion): any fall or nonce
    increase since the last reading of the chain. An item covers a fall of
    exactly its amount (the native coin: the amount plus at most
    `GAS_ALLOWANCE` for the fee), between `not_before` and `not_after`, when
    the destination wallet rose by at least the amount in the same step (when
    both of its readings are known). Each approved movement also covers one
    nonce increase and, for a token, up to `GAS_ALLOWANCE` of native coin for
    its fee. Items used here are returned in `consumed`; each covers one movement.
    """
    if not inp.rules.cold_outflow:
        return Evaluation("cold_outflow")
    has_prev = inp.prev_watch is not None or inp.prev_nonces is not None
    used = set(inp.used_approvals)
    consumed: set[str] = set()
    found: dict[str, Finding] = {}
    for w in inp.wallets:
        if w.tier != "cold":
            continue
        fs: list[Finding] = []
        if inp.ingests(w.chain):
            seen = cold_transfers(inp, w, native_asset(inp, w.chain), used, consumed)
            fs = seen.findings
            if has_prev and w.chain in inp.reconcile_chains:
                fs += _cold_wallet(inp, w, used, consumed, seen.explained, seen.sent)
        elif has_prev:
            fs = _cold_wallet(inp, w, used, consumed)
        for f in fs:
            found[f.subject] = _merge(found[f.subject], f) if f.subject in found else f
    return Evaluation("cold_outflow", tuple(found.values()), consumed=frozenset(consumed))


def _merge(a: Finding, b: Finding) -> Finding:
    """One finding per subject: the transfer-based one first, the unexplained rest after."""
    return Finding(a.rule, a.subject, a.severity, f"{a.summary}; also: {b.summary}",
                   value=a.value, details={**b.details, **a.details,
                                           "unexplained": b.details.get("amount")})


def _cold_wallet(inp: RuleInput, w: WalletSettings, used: set[str], consumed: set[str],
                 explained: Mapping[str, int] | None = None, sent: int = 0) -> list[Finding]:
    """The balance/nonce check; `explained`/`sent`: what transfers already showed."""
    native = native_asset(inp, w.chain)
    prev = inp.prev_watch or {}
    shown = explained or {}
    falls = {a: prev[(w.name, a)] - inp.watch_now[(w.name, a)] - shown.get(a, 0) for a in w.assets
             if (w.name, a) in prev and (w.name, a) in inp.watch_now and a in inp.assets}
    # tokens first, so that the native coin's fall can be the fee of approved token moves
    order = sorted((a for a, f in falls.items() if f > 0), key=lambda a: a == native)
    matched = 0
    out: dict[str, Finding] = {}
    for sym in order:
        item, misses = _match(inp, w, sym, falls[sym], sym == native, used)
        if item is not None:
            used.add(item.id)
            consumed.add(item.id)
            matched += 1
            continue
        if sym == native and matched and falls[sym] <= matched * _gas(inp, sym):
            continue  # the fees of approved token movements
        out[sym] = _outflow_finding(inp, w, sym, falls[sym], misses)
    nonce_rise = _nonce_rise(inp, w.name) - sent
    if nonce_rise > matched:
        sym = native or "native"
        f = out.get(sym)
        details: dict[str, object] = dict(f.details) if f else {"wallet": w.name, "asset": sym}
        assert inp.prev_nonces is not None  # a nonce rise needs the previous nonces
        details |= {"nonce_before": str(inp.prev_nonces[w.name]),
                    "nonce_after": str(inp.nonces_now[w.name])}
        out[sym] = Finding(
            "cold_outflow", f"{w.name}/{sym}", "critical",
            (f.summary if f else f"Cold wallet {w.name} sent {nonce_rise - matched} transaction(s) "
             f"nobody approved (nonce {details['nonce_before']} → {details['nonce_after']}): "
             "treat it as a compromise until its signers confirm"),
            value=f.value if f else None, details=details)
    return list(out.values())


def _nonce_rise(inp: RuleInput, wallet: str) -> int:
    if inp.prev_nonces is None or wallet not in inp.prev_nonces or wallet not in inp.nonces_now:
        return 0
    return max(inp.nonces_now[wallet] - inp.prev_nonces[wallet], 0)


def _gas(inp: RuleInput, sym: str) -> int:
    return units.parse_amount(GAS_ALLOWANCE, inp.assets[sym].decimals)


def _match(inp: RuleInput, w: WalletSettings, sym: str, fall: int, native: bool,
           used: set[str]) -> tuple[ApprovalItem | None, list[str]]:
    """The first unused item covering this fall, or the reasons each candidate failed."""
    misses: list[str] = []
    for item in inp.approvals.items:
        if item.wallet != w.name or item.asset != sym:
            continue
        why = _mismatch(inp, item, sym, fall, native, used)
        if why is None:
            return item, []
        misses.append(f"approval {item.id}: {why}")
    return None, misses


def _mismatch(inp: RuleInput, item: ApprovalItem, sym: str, fall: int, native: bool,
              used: set[str]) -> str | None:
    d = inp.assets[sym].decimals
    try:
        amount = units.parse_amount(item.amount, d)
    except ValueError:
        return f"amount {item.amount} has more than {d} decimals"
    extra = fall - amount
    if extra < 0 or extra > (_gas(inp, sym) if native else 0):
        return f"amount {whole(amount, d)} ≠ moved {whole(fall, d)}"
    if item.id in used:
        return "already used"
    if inp.now > item.not_after:
        return f"expired at {item.not_after.isoformat()}"
    if item.not_before is not None and inp.now < item.not_before:
        return f"not valid before {item.not_before.isoformat()}"
    rise = _destination_rise(inp, item.to, sym)
    if rise is not None and rise < amount:
        return f"destination {item.to} rose by only {whole(max(rise, 0), d)}"
    return None


def _destination_rise(inp: RuleInput, to: str, sym: str) -> int | None:
    """How much the destination own wallet rose this step; None when unknown."""
    target = next((w for w in inp.wallets if w.name == to
                   or to.lower() in (a.lower() for a in w.addresses)), None)
    if target is None or inp.prev_watch is None:
        return None
    k = (target.name, sym)
    if k not in inp.prev_watch or k not in inp.watch_now:
        return None
    return inp.watch_now[k] - inp.prev_watch[k]


def _outflow_finding(inp: RuleInput, w: WalletSettings, sym: str, fall: int,
                     misses: list[str]) -> Finding:
    d = inp.assets[sym].decimals
    why = "; ".join(misses) if misses else "no approval item for it"
    return Finding(
        "cold_outflow", f"{w.name}/{sym}", "critical",
        f"Cold wallet {w.name} sent {whole(fall, d)} {sym} without a matching approval "
        f"({why}): treat it as a compromise until its signers confirm",
        value=units.to_decimal(fall, d),
        details={"wallet": w.name, "asset": sym, "amount": whole(fall, d), "approvals": misses},
    )


# --- config_changed ----------------------------------------------------------------


def config_changed(inp: RuleInput) -> Evaluation:
    """The config's watched parts differ from the last cycle's (diff computed by the caller)."""
    diff = inp.config_digest_changed
    if not inp.rules.config_changed or not diff:
        return Evaluation("config_changed")
    shown = "; ".join(diff[:3]) + (f" (+{len(diff) - 3} more)" if len(diff) > 3 else "")
    return Evaluation("config_changed", (Finding(
        "config_changed", "config", "critical",
        f"The configuration changed: {shown}. Confirm the change was intended",
        details={"diff": list(diff)},
    ),))
