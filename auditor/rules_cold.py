"""cold_outflow from transfers: each movement out of a cold wallet against the approvals.

Used by `rules_flow.cold_outflow` for cold wallets on chains whose transfers
are tracked. Every outgoing native or token transfer and every ERC-20
approval of a cold wallet must match an unused approval item: same wallet and
asset, destination the item's own wallet (by name, or by one of its
addresses), exactly the item's amount (an approval: the allowance, to the
spender), at a time (the block's) between `not_before` and `not_after`. An
approved movement also covers its transaction's fee. A transaction that
moved nothing an item can cover (only its fee shows: a contract call, a
consolidation) fires on the chain's native asset. Findings carry the
transaction and the destination.

The balance/nonce detection runs afterwards only on what these transfers do
not explain (see `rules_flow.cold_outflow`), so one movement fires once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import units
from .flows import Classified, transfer_time
from .model import Finding, Transfer
from .rules_base import RuleInput, whole
from .settings import ApprovalItem, WalletSettings

__all__ = ["ColdTransfers", "cold_transfers", "own_wallet_of"]


@dataclass
class ColdTransfers:
    """What the transfers of one cold wallet showed this cycle."""

    findings: list[Finding] = field(default_factory=list)
    explained: dict[str, int] = field(default_factory=dict)  # asset → net fall the transfers show
    sent: int = 0  # transactions the wallet sent (each raised its nonce once)


def own_wallet_of(inp: RuleInput, to: str) -> str | None:
    """The own wallet an approval's `to` names (a wallet name or one of its addresses)."""
    low = to.lower()
    for w in inp.wallets:
        if w.name == to or low in (a.lower() for a in w.addresses):
            return w.name
    return None


def cold_transfers(inp: RuleInput, w: WalletSettings, native: str | None, used: set[str],
                   consumed: set[str]) -> ColdTransfers:
    """Check this cycle's transfers of cold wallet `w`; items matched are added to
    `used` and `consumed`."""
    out = ColdTransfers()
    by_tx: dict[str, list[Transfer]] = {}
    for c in inp.transfers or ():
        t = c.transfer
        if t.chain != w.chain or w.name not in (t.wallet_from, t.wallet_to):
            continue
        _explain(out, w.name, c)
        if t.wallet_from == w.name:
            by_tx.setdefault(t.tx, []).append(t)
    out.sent = len(by_tx)
    flagged: dict[str, list[tuple[Transfer, list[str]]]] = {}
    for tx in sorted(by_tx, key=lambda x: min(_order(t) for t in by_tx[x])):
        moves = [t for t in by_tx[tx] if t.kind != "fee"]
        if not moves:
            fee = by_tx[tx][0]
            flagged.setdefault(native or fee.asset, []).append((fee, []))
        for t in moves:
            item, misses = _match(inp, w, t, used)
            if item is None:
                flagged.setdefault(t.asset, []).append((t, misses))
            else:
                used.add(item.id)
                consumed.add(item.id)
    out.findings = [_finding(inp, w, sym, hits) for sym, hits in flagged.items()]
    return out


def _explain(out: ColdTransfers, wallet: str, c: Classified) -> None:
    t = c.transfer
    if t.kind == "approval":
        return
    sign = (1 if t.wallet_from == wallet else 0) - (1 if t.wallet_to == wallet else 0)
    out.explained[t.asset] = out.explained.get(t.asset, 0) + sign * t.amount


def _order(t: Transfer) -> tuple[int, int, int]:
    return (t.block or 2**62, t.timestamp, t.index)


def _match(inp: RuleInput, w: WalletSettings, t: Transfer,
           used: set[str]) -> tuple[ApprovalItem | None, list[str]]:
    misses: list[str] = []
    for item in inp.approvals.items:
        if item.wallet != w.name or item.asset != t.asset:
            continue
        why = _mismatch(inp, item, t, used)
        if why is None:
            return item, []
        misses.append(f"approval {item.id}: {why}")
    return None, misses


def _mismatch(inp: RuleInput, item: ApprovalItem, t: Transfer, used: set[str]) -> str | None:
    d = inp.assets[t.asset].decimals if t.asset in inp.assets else 0
    try:
        amount = units.parse_amount(item.amount, d)
    except ValueError:
        return f"amount {item.amount} has more than {d} decimals"
    if amount != t.amount:
        return f"amount {whole(amount, d)} ≠ moved {whole(t.amount, d)}"
    target = own_wallet_of(inp, item.to)
    if not (target is not None and target == t.wallet_to) and item.to.lower() != t.recipient.lower():
        return f"destination {item.to} ≠ {t.wallet_to or t.recipient}"
    if item.id in used:
        return "already used"
    at = transfer_time(t) or inp.now
    if at > item.not_after:
        return f"expired at {item.not_after.isoformat()}"
    if item.not_before is not None and at < item.not_before:
        return f"not valid before {item.not_before.isoformat()}"
    return None


def _finding(inp: RuleInput, w: WalletSettings, sym: str,
             hits: list[tuple[Transfer, list[str]]]) -> Finding:
    d = inp.assets[sym].decimals if sym in inp.assets else 0
    first = hits[0][0]
    to = first.wallet_to or first.recipient
    moved = sum(t.amount for t, _ in hits if t.kind != "fee")
    misses = [m for _, ms in hits for m in ms]
    listed = [{"tx": t.tx, "to": t.wallet_to or t.recipient, "kind": t.kind,
               "amount": whole(t.amount, d), "block": t.block} for t, _ in hits]
    why = "; ".join(misses) if misses else "no approval item for it"
    more = f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""
    if first.kind == "fee":
        what = (f"sent transaction {first.tx}{more} that moved nothing an approval covers "
                f"(fee {whole(first.amount, d)} {sym})")
    elif first.kind == "approval":
        what = (f"approved {to} to spend {whole(first.amount, d)} {sym} in transaction "
                f"{first.tx}{more}")
    else:
        what = f"sent {whole(moved, d)} {sym} to {to} in transaction {first.tx}{more}"
    return Finding(
        "cold_outflow", f"{w.name}/{sym}", "critical",
        f"Cold wallet {w.name} {what} without a matching approval ({why}): treat it as a "
        "compromise until its signers confirm",
        value=units.to_decimal(moved, d) if moved else None,
        details={"wallet": w.name, "asset": sym, "chain": w.chain, "tx": first.tx, "to": to,
                 "block": first.block, "kind": first.kind, "amount": whole(moved, d),
                 "transfers": listed, "approvals": misses})
