"""Pure classification of transfers: internal, withdrawal, allowed, unknown, sanctioned.

`classify` decides, for each transfer touching an own wallet, what kind of
flow it is. The order of precedence:

1. **internal**: both ends are own wallets (addresses discovered this cycle
   included, through `own_addresses`). Never screened: an own address is not
   a counterparty.
2. **fee**: the fee a transaction of an own wallet paid (Ethereum gas,
   Bitcoin fee). Not a flow to anyone; hot_drain and the reconciliation
   count it, the counterparty rules do not.
3. **sanctioned**: a foreign address on the other side is on a sanctions list
   (`screen_match(chain_type, address)` returns the lists holding it). Wins
   over everything below, in either direction, and for ERC-20 approvals to a
   listed spender too.
4. **withdrawal**: an outgoing native or token transfer matching an unused
   approved request (`withdrawals`): same asset, destination, amount
   `amount − fee` (less at most the asset's `fee_tolerance` when the request
   has no fee), `approved_at` at or before the transfer (with `TIME_SLACK`
   for block timestamps that run behind the clock). Each request matches at
   most one transfer: transfers are matched in chain order (earliest first)
   and take the earliest-approved request that fits. Transfers from
   `cold_wallets` never use a request (cold movements are `cold_outflow`'s).
5. **allowed**: the counterparty is in `counterparties.allow` for that chain
   (incoming: every sender is).
6. **unknown**: anything else, incoming transfers from foreign addresses
   included (they matter only for sanctions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from .model import Transfer
from .settings import Counterparty
from .withdrawals import WithdrawalRequest

__all__ = [
    "FLOW_CLASSES",
    "MOVEMENT_KINDS",
    "TIME_SLACK",
    "Classified",
    "FlowClass",
    "classify",
    "foreign_addresses",
    "norm_address",
    "transfer_time",
    "used_requests",
]

FlowClass = Literal["internal", "fee", "sanctioned", "withdrawal", "allowed", "unknown"]
FLOW_CLASSES: tuple[str, ...] = ("internal", "fee", "sanctioned", "withdrawal", "allowed",
                                 "unknown")
# Kinds that move value to the other side (not a fee, not an allowance).
MOVEMENT_KINDS = frozenset({"native", "token"})
# How far a block's timestamp may lag the request's approval clock: Ethereum slots are
# exact within a minute; a Bitcoin block's time may be up to ~2 h off real time.
TIME_SLACK: dict[str, int] = {"ethereum": 60, "bitcoin": 7200}


@dataclass(frozen=True)
class Classified:
    """A transfer and its class. `transfer` has both own ends filled in (an address
    discovered after ingestion makes it internal). `match`: the withdrawal request
    id (withdrawal) or the counterparty's name (allowed). `counterparty`: the
    foreign address this flow is about (outgoing: the recipient; incoming: the
    first sender; sanctioned: the first listed one). `lists`: every sanctions
    list that matched; `hits`: each listed address with its lists."""

    transfer: Transfer
    cls: FlowClass
    match: str | None = None
    lists: tuple[str, ...] = ()
    counterparty: str | None = None
    hits: tuple[tuple[str, tuple[str, ...]], ...] = ()


def classify(transfers: Iterable[Transfer], *, own_addresses: Mapping[tuple[str, str], str],
             allow: Sequence[Counterparty],
             screen_match: Callable[[str, str], tuple[str, ...]],
             chain_types: Mapping[str, str],
             withdrawals: Sequence[WithdrawalRequest] | None,
             used_withdrawals: Collection[str] = frozenset(),
             fee_tolerance: Mapping[str, int] | None = None,
             cold_wallets: Collection[str] = frozenset()) -> list[Classified]:
    """Each transfer classified, in the order given. See the module doc.

    `own_addresses`: (chain, address) → wallet, addresses as the chain writes
    them (Ethereum: any case). `withdrawals` None: no feed (nothing is a
    withdrawal). `used_withdrawals`: request ids already matched in earlier
    cycles. `fee_tolerance`: asset → base units. Use `used_requests` on the
    result for the ids matched now.
    """
    own = _Own(own_addresses, chain_types)
    allowed = {(c.chain, norm_address(chain_types.get(c.chain, ""), c.address)): c.name
               for c in allow}
    out: list[Classified] = []
    pending: list[int] = []  # indexes of outflows that may be withdrawals
    for t in transfers:
        t = own.fill(t)
        kind = chain_types.get(t.chain, "")
        c = _first_pass(t, kind, own, allowed, screen_match)
        if (withdrawals is not None and c.cls in ("allowed", "unknown")
                and t.direction == "out" and t.kind in MOVEMENT_KINDS
                and t.wallet_from not in cold_wallets):
            pending.append(len(out))
        out.append(c)
    if withdrawals is not None and pending:
        _match_requests(out, pending, withdrawals, used_withdrawals, fee_tolerance or {},
                        chain_types)
    return out


def used_requests(classified: Iterable[Classified]) -> frozenset[str]:
    """The request ids that transfers matched (to store as used)."""
    return frozenset(c.match for c in classified if c.cls == "withdrawal" and c.match)


def norm_address(chain_type: str, address: str) -> str:
    """An address as comparisons use it: Ethereum lowercase; Bitcoin bech32
    lowercase, base58 as written."""
    if chain_type == "ethereum" or address[:2] in ("0x", "0X"):
        return address.lower()
    if address.lower().startswith(("bc1", "tb1", "bcrt1")):
        return address.lower()
    return address


def foreign_addresses(t: Transfer) -> tuple[str, ...]:
    """The addresses on the other side: `counterparties`, else the recipient
    (outgoing) or the sender (incoming)."""
    if t.counterparties:
        return t.counterparties
    other = t.recipient if t.direction == "out" else t.sender
    return (other,) if other else ()


def transfer_time(t: Transfer) -> datetime | None:
    """When the transfer happened (its block's time; mempool: first seen). None: unknown."""
    return datetime.fromtimestamp(t.timestamp, UTC) if t.timestamp > 0 else None


class _Own:
    def __init__(self, own_addresses: Mapping[tuple[str, str], str],
                 chain_types: Mapping[str, str]):
        self._types = chain_types
        self._map = {(c, norm_address(chain_types.get(c, ""), a)): w
                     for (c, a), w in own_addresses.items()}

    def wallet(self, chain: str, address: str) -> str | None:
        if not address:
            return None
        return self._map.get((chain, norm_address(self._types.get(chain, ""), address)))

    def fill(self, t: Transfer) -> Transfer:
        if t.kind == "fee":
            return t
        wf = t.wallet_from or self.wallet(t.chain, t.sender)
        wt = t.wallet_to or self.wallet(t.chain, t.recipient)
        if (wf, wt) == (t.wallet_from, t.wallet_to):
            return t
        return dataclasses.replace(t, wallet_from=wf, wallet_to=wt)


def _first_pass(t: Transfer, kind: str, own: _Own, allowed: Mapping[tuple[str, str], str],
                screen_match: Callable[[str, str], tuple[str, ...]]) -> Classified:
    if t.kind == "fee":
        return Classified(t, "fee")
    if t.direction == "internal":
        return Classified(t, "internal")
    foreign = [a for a in foreign_addresses(t) if own.wallet(t.chain, a) is None]
    first = foreign[0] if foreign else None
    hits = tuple((a, lists) for a in foreign if (lists := tuple(screen_match(kind, a))))
    if hits:
        lists = tuple(dict.fromkeys(x for _, ls in hits for x in ls))
        return Classified(t, "sanctioned", lists=lists, counterparty=hits[0][0], hits=hits)
    names = [allowed.get((t.chain, norm_address(kind, a))) for a in foreign]
    if foreign and all(names):
        return Classified(t, "allowed", match=names[0], counterparty=first)
    return Classified(t, "unknown", counterparty=first)


def _match_requests(out: list[Classified], pending: list[int],
                    withdrawals: Sequence[WithdrawalRequest], used: Collection[str],
                    tolerance: Mapping[str, int], chain_types: Mapping[str, str]) -> None:
    """Earliest transfers first, each taking the earliest-approved request that fits."""
    open_requests: dict[tuple[str, str], list[WithdrawalRequest]] = {}
    for r in sorted(withdrawals, key=lambda r: (r.approved_at, r.id)):
        if r.id not in used:
            open_requests.setdefault((r.asset, norm_address("", r.to)), []).append(r)
    pending.sort(key=lambda i: _chain_order(out[i].transfer))
    for i in pending:
        t = out[i].transfer
        kind = chain_types.get(t.chain, "")
        candidates = open_requests.get((t.asset, norm_address(kind, t.recipient)), [])
        req = next((r for r in candidates if _fits(r, t, tolerance.get(t.asset, 0), kind)), None)
        if req is not None:
            candidates.remove(req)
            out[i] = Classified(t, "withdrawal", match=req.id, counterparty=out[i].counterparty)


def _chain_order(t: Transfer) -> tuple[int, int, int, str, int]:
    # mempool transactions (block 0) come after every mined one
    return (t.timestamp, 0 if t.block else 1, t.block, t.tx, t.index)


def _fits(r: WithdrawalRequest, t: Transfer, tolerance: int, kind: str) -> bool:
    expected = r.amount - r.fee
    if r.fee:
        tolerance = 0  # the request says exactly what was kept
    if not expected - tolerance <= t.amount <= expected:
        return False
    at = transfer_time(t)
    slack = timedelta(seconds=TIME_SLACK.get(kind, 0))
    return at is None or r.approved_at <= at + slack
