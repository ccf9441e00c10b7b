"""Pure transfer rules: large_outflow, unmatched_outflow, unknown_destination,
sanctioned_counterparty, and the reconciliation of balances with transfers.

Each reads `RuleInput.transfers` (this cycle's new transfers, classified by
`flows.classify`) and is silent when it is None (transfers not tracked). The
four counterparty rules are event rules: they cover nothing and never resolve
by evaluation. Their subject is `chain:txid:counterparty` (Ethereum hashes and
addresses lowercase); several transfers of one transaction to one
counterparty (ETH and a token, two outputs) make one finding.

`reconcile` is a `stale_data` check (a state rule): per wallet and asset, the
watch-view change between the previous and this reading must equal inflows −
outflows − fees of the transfers ingested in between; a mismatch is how a
provider that drops logs shows. Only chains in `RuleInput.reconcile_chains`
(ingestion covered exactly the blocks between the two readings) are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from . import units
from .flows import MOVEMENT_KINDS, Classified, norm_address
from .model import Evaluation, Finding, Severity
from .rules_base import RuleInput, WalletAsset, whole

__all__ = [
    "ONLINE_TIERS",
    "large_outflow",
    "reconcile",
    "sanctioned_counterparty",
    "tx_subject",
    "unknown_destination",
    "unmatched_outflow",
]

ONLINE_TIERS = frozenset({"hot", "warm", "deposit"})
_NOT_OUT = frozenset({"internal", "fee"})
SANCTIONS_ACTION = ("freeze what was received, block further transfers to and from it, and "
                    "report to the FSA and the Ministry of Finance")


def tx_subject(c: Classified, counterparty: str | None = None) -> str:
    """`chain:txid:counterparty` (hashes lowercase; Ethereum addresses lowercase)."""
    t = c.transfer
    who = counterparty or c.counterparty or t.recipient or "unknown"
    return f"{t.chain}:{t.tx.lower()}:{norm_address('', who)}"


@dataclass
class _Group:
    """Transfers sharing one subject, with amounts summed per asset."""

    items: list[Classified] = field(default_factory=list)
    amounts: dict[str, int] = field(default_factory=dict)

    def add(self, c: Classified) -> None:
        self.items.append(c)
        t = c.transfer
        self.amounts[t.asset] = self.amounts.get(t.asset, 0) + t.amount


def _group(items: Iterable[Classified], key: Callable[[Classified], str]) -> dict[str, _Group]:
    out: dict[str, _Group] = {}
    for c in items:
        out.setdefault(key(c), _Group()).add(c)
    return out


def _outgoing(inp: RuleInput, classes: frozenset[str] | None = None) -> list[Classified]:
    """This cycle's outgoing value movements (not fees, not allowances), optionally by class."""
    return [c for c in inp.transfers or () if c.transfer.direction == "out"
            and c.transfer.kind in MOVEMENT_KINDS and (classes is None or c.cls in classes)]


def _amounts(inp: RuleInput, amounts: dict[str, int]) -> dict[str, str]:
    return {a: whole(v, inp.assets[a].decimals) if a in inp.assets else str(v)
            for a, v in sorted(amounts.items())}


def _shown(inp: RuleInput, amounts: dict[str, int]) -> str:
    return " and ".join(f"{v} {a}" for a, v in _amounts(inp, amounts).items())


def _details(inp: RuleInput, g: _Group, counterparty: str) -> dict[str, object]:
    t = g.items[0].transfer
    wallets = sorted({w for c in g.items for w in (c.transfer.wallet_from, c.transfer.wallet_to)
                      if w is not None})
    amounts = _amounts(inp, g.amounts)
    details: dict[str, object] = {
        "chain": t.chain, "tx": t.tx, "block": t.block, "direction": t.direction,
        "counterparty": counterparty, "wallet": ", ".join(wallets), "amounts": amounts,
    }
    if len(amounts) == 1:
        (asset, amount), = amounts.items()
        details |= {"asset": asset, "amount": amount}
    return details


def _whole_value(inp: RuleInput, g: _Group) -> Decimal | None:
    """The group's amount in whole units when it holds a single asset."""
    if len(g.amounts) != 1:
        return None
    (asset, amount), = g.amounts.items()
    return units.to_decimal(amount, inp.assets[asset].decimals) if asset in inp.assets else None


# --- large_outflow ------------------------------------------------------------------


def large_outflow(inp: RuleInput) -> Evaluation:
    """One transaction's non-internal outputs from own wallets, summed per asset,
    worth more than `max_single` at this cycle's price (no price: counts as more)."""
    rule = inp.rules.large_outflow
    if rule is None or inp.transfers is None:
        return Evaluation("large_outflow")
    findings = []
    by_tx = _group(_outgoing(inp), lambda c: f"{c.transfer.chain}:{c.transfer.tx.lower()}")
    for g in by_tx.values():
        breaches: dict[str, Decimal | None] = {}
        for asset, amount in g.amounts.items():
            value = _value(inp, asset, amount)
            if (value is None and amount > 0) or (value is not None and value > rule.max_single):
                breaches[asset] = value
        if breaches:
            findings.append(_large_finding(inp, g, breaches))
    return Evaluation("large_outflow", tuple(findings))


def _value(inp: RuleInput, asset: str, amount: int) -> Decimal | None:
    price = inp.prices.get(asset)
    if price is None or asset not in inp.assets:
        return None
    return units.value_of(amount, inp.assets[asset].decimals, price.value)


def _large_finding(inp: RuleInput, g: _Group, breaches: dict[str, Decimal | None]) -> Finding:
    rule = inp.rules.large_outflow
    assert rule is not None
    # the subject names the biggest recipient of the worst asset (unpriced first)
    worst = max(breaches, key=lambda a: (breaches[a] is None, breaches[a] or 0, a))
    top = max((c for c in g.items if c.transfer.asset == worst),
              key=lambda c: (c.transfer.amount, c.transfer.recipient))
    to = norm_address("", top.counterparty or top.transfer.recipient)
    known = [v for v in breaches.values() if v is not None]
    total = None if len(known) != len(breaches) else sum(known, Decimal(0))
    fiat = inp.exposure.fiat if inp.exposure is not None else ""
    worth = (f"worth {units.format_decimal(total)} {fiat}".rstrip() if total is not None
             else "of unknown value (no price)")
    recipients = sorted({norm_address("", c.counterparty or c.transfer.recipient) for c in g.items})
    others = f" and {len(recipients) - 1} other address(es)" if len(recipients) > 1 else ""
    t = g.items[0].transfer
    limit = f"{units.format_decimal(rule.max_single)} {fiat}".rstrip()
    details = _details(inp, g, to) | {
        "recipients": recipients, "limit": units.format_decimal(rule.max_single),
        "value": units.format_decimal(total) if total is not None else None}
    return Finding(
        "large_outflow", tx_subject(top, to), rule.severity,
        f"{details['wallet']} sent {_shown(inp, g.amounts)} ({worth}) in one transaction "
        f"{t.tx} on {t.chain} to {to}{others}, above the single-transaction limit of {limit}: "
        "confirm it was intended; if not, stop withdrawals and rotate the keys",
        value=total, threshold=rule.max_single, details=details)


# --- unmatched_outflow / unknown_destination ------------------------------------------


def unmatched_outflow(inp: RuleInput) -> Evaluation:
    """With `withdrawals` configured: every outflow of a hot, warm or deposit wallet
    to a foreign address that is not allowed and matched no approved request."""
    if not inp.rules.unmatched_outflow or not inp.withdrawals_configured or inp.transfers is None:
        return Evaluation("unmatched_outflow")
    tiers = {w.name: w.tier for w in inp.wallets}
    items = [c for c in _outgoing(inp, frozenset({"unknown"}))
             if tiers.get(c.transfer.wallet_from or "") in ONLINE_TIERS]
    findings = []
    for subject, g in _group(items, tx_subject).items():
        t, to = g.items[0].transfer, subject.rsplit(":", 1)[1]
        findings.append(Finding(
            "unmatched_outflow", subject, "critical",
            f"{t.wallet_from} sent {_shown(inp, g.amounts)} to {to} in {t.chain} transaction "
            f"{t.tx}, and no approved withdrawal request matches it: if nobody sent it, stop "
            "withdrawals and rotate the hot wallet's keys now",
            value=_whole_value(inp, g), details=_details(inp, g, to)))
    return Evaluation("unmatched_outflow", tuple(findings))


def unknown_destination(inp: RuleInput) -> Evaluation:
    """Without `withdrawals`: an outflow to an address neither own nor allowed,
    above the asset's amount (an asset not listed: any amount above 0)."""
    rule = inp.rules.unknown_destination
    if rule is None or inp.withdrawals_configured or inp.transfers is None:
        return Evaluation("unknown_destination")
    findings = []
    for subject, g in _group(_outgoing(inp, frozenset({"unknown"})), tx_subject).items():
        above = {a: v for a, v in g.amounts.items()
                 if a in inp.assets and units.to_decimal(v, inp.assets[a].decimals)
                 > rule.assets.get(a, Decimal(0))}
        if not above:
            continue
        t, to = g.items[0].transfer, subject.rsplit(":", 1)[1]
        limit = rule.assets.get(next(iter(above)), Decimal(0)) if len(above) == 1 else None
        findings.append(Finding(
            "unknown_destination", subject, rule.severity,
            f"{t.wallet_from} sent {_shown(inp, g.amounts)} to {to}, an address that is neither "
            f"an own wallet nor an allowed counterparty ({t.chain} transaction {t.tx}): check "
            "that a customer asked for it; add known counterparties to counterparties.allow",
            value=_whole_value(inp, g), threshold=limit, details=_details(inp, g, to)))
    return Evaluation("unknown_destination", tuple(findings))


# --- sanctioned_counterparty --------------------------------------------------------------


def sanctioned_counterparty(inp: RuleInput) -> Evaluation:
    """A transfer to or from an address on a sanctions list (approvals to a listed
    spender included): critical, with what to do."""
    if not inp.rules.sanctioned_counterparty or inp.transfers is None:
        return Evaluation("sanctioned_counterparty")
    groups: dict[str, tuple[_Group, str, tuple[str, ...]]] = {}
    for c in inp.transfers:
        if c.cls != "sanctioned":
            continue
        for address, lists in c.hits:
            subject = tx_subject(c, address)
            g, _, old = groups.get(subject, (_Group(), address, ()))
            g.add(c)
            groups[subject] = (g, address, tuple(dict.fromkeys(old + lists)))
    findings = [_sanctioned_finding(inp, s, g, a, lists) for s, (g, a, lists) in groups.items()]
    return Evaluation("sanctioned_counterparty", tuple(findings))


def _sanctioned_finding(inp: RuleInput, subject: str, g: _Group, address: str,
                        lists: tuple[str, ...]) -> Finding:
    t = g.items[0].transfer
    shown = norm_address("", address)
    what = _shown(inp, g.amounts)
    if t.kind == "approval":
        act = f"{t.wallet_from} approved sanctioned address {shown} to spend {what}"
    elif t.direction == "in":
        act = f"{t.wallet_to} received {what} from sanctioned address {shown}"
    else:
        act = f"{t.wallet_from} sent {what} to sanctioned address {shown}"
    details = _details(inp, g, shown) | {"lists": list(lists), "kind": t.kind}
    return Finding(
        "sanctioned_counterparty", subject, "critical",
        f"{act} (on {', '.join(lists)}; {t.chain} transaction {t.tx}): {SANCTIONS_ACTION}",
        value=_whole_value(inp, g), details=details)


# --- reconciliation (stale_data) --------------------------------------------------------


def reconcile(inp: RuleInput) -> Evaluation:
    """Per wallet and asset of `reconcile_chains`: watch-view change = inflows −
    outflows − fees of this cycle's transfers. An unexplained fall is critical (an
    outflow the provider did not show), an unexplained rise a warning."""
    if inp.transfers is None or not inp.reconcile_chains or inp.prev_watch is None:
        return Evaluation("stale_data")
    net = _net_flows(inp.transfers, inp.reconcile_chains)
    findings, covered = [], set()
    for w in inp.wallets:
        if w.chain not in inp.reconcile_chains:
            continue
        for sym in w.assets:
            key = (w.name, sym)
            if key not in inp.prev_watch or key not in inp.watch_now or sym not in inp.assets:
                continue
            subject = f"{w.chain}:{w.name}/{sym}"
            covered.add(subject)
            change, explained = inp.watch_now[key] - inp.prev_watch[key], net.get(key, 0)
            if change != explained:
                findings.append(_mismatch(inp, subject, key, change, explained))
    return Evaluation("stale_data", tuple(findings), frozenset(covered))


def _net_flows(transfers: Iterable[Classified], chains: frozenset[str]) -> dict[WalletAsset, int]:
    net: dict[WalletAsset, int] = {}
    for c in transfers:
        t = c.transfer
        if t.chain not in chains or t.kind == "approval":
            continue
        if t.wallet_from is not None:
            net[(t.wallet_from, t.asset)] = net.get((t.wallet_from, t.asset), 0) - t.amount
        if t.wallet_to is not None:
            net[(t.wallet_to, t.asset)] = net.get((t.wallet_to, t.asset), 0) + t.amount
    return net


def _mismatch(inp: RuleInput, subject: str, key: WalletAsset, change: int,
              explained: int) -> Finding:
    wallet, sym = key
    d = inp.assets[sym].decimals
    gap = change - explained
    severity: Severity = "critical" if gap < 0 else "warning"
    side = ("fell by more than its transfers explain: an outflow the provider did not report"
            if gap < 0 else "rose by more than its transfers explain")
    return Finding(
        "stale_data", subject, severity,
        f"{wallet}'s {sym} balance changed by {whole(change, d)} since the last reading but "
        f"its transfers explain {whole(explained, d)}: it {side} ({whole(abs(gap), d)} {sym}). "
        "A provider may be dropping logs: compare with another provider or a block explorer",
        value=units.to_decimal(abs(gap), d),
        details={"wallet": wallet, "asset": sym, "change": whole(change, d),
                 "transfers": whole(explained, d), "unexplained": whole(gap, d)})
