"""hot_drain from transfers: the gross outflows that are not internal, per window.

Used by `rules_flow.hot_drain` for wallets on chains whose transfers are
tracked. Within each window, the fall is the sum of the wallet's outgoing
transfers of the asset (native, token and, for the native coin, fees) whose
class is not `internal` — customer withdrawals included, sweeps to own
wallets excluded — compared with the window's highest watch-view balance
(or the outflows themselves, when more left than any reading showed:
money that arrived and left between two readings). A deposit arriving while
a theft leaves therefore never hides it, and a sweep to cold never counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from . import units
from .flows import Classified, transfer_time
from .model import SEVERITY_RANK, Finding
from .rules_base import RuleInput, WalletAsset, pct, whole
from .settings import DrainWindow

__all__ = ["Outflow", "drain_by_transfers", "fires", "gross_outflows"]

Outflow = tuple[datetime, Classified]
Point = tuple[datetime, Mapping[WalletAsset, int]]
_COUNTED = frozenset({"native", "token", "fee"})


def fires(inp: RuleInput, sym: str, fall: int, high: int, win: DrainWindow) -> bool:
    """fall > high × drop, and worth more than min_value (no price: counts as more)."""
    with localcontext(units.EXACT):
        if not Decimal(fall) > Decimal(high) * win.drop:
            return False
    price = inp.prices.get(sym)
    if price is None:
        return True  # an unknown price counts as worth more
    value = units.value_of(fall, inp.assets[sym].decimals, price.value)
    return value > inp.rules.hot_drain.min_value


def gross_outflows(inp: RuleInput) -> dict[WalletAsset, list[Outflow]]:
    """(wallet, asset) → its non-internal outgoing transfers of the tracked window and
    this cycle, each once, with its time (unknown: now)."""
    out: dict[WalletAsset, list[Outflow]] = {}
    seen: set[tuple[str, str, int, str]] = set()
    for c in (*inp.window_transfers, *(inp.transfers or ())):
        t = c.transfer
        key = (t.chain, t.tx, t.index, t.kind)
        if key in seen or t.wallet_from is None or c.cls == "internal" or t.kind not in _COUNTED:
            continue
        seen.add(key)
        at = transfer_time(t) or inp.now
        out.setdefault((t.wallet_from, t.asset), []).append((at, c))
    return out


def drain_by_transfers(inp: RuleInput, wallet: str, sym: str, points: Sequence[Point],
                       outflows: Sequence[Outflow]) -> Finding | None:
    """The worst window whose gross non-internal outflows exceed its drop."""
    key = (wallet, sym)
    present = [i for i, (_, m) in enumerate(points) if key in m]
    current = points[-1][1][key]
    best: tuple[tuple[int, Decimal], int, int, DrainWindow, list[Classified]] | None = None
    for win in inp.rules.hot_drain.windows:
        start = inp.now - timedelta(seconds=win.window)
        high = max(points[i][1][key] for i in present if points[i][0] >= start)
        gone = [c for at, c in outflows if start <= at <= inp.now]
        fall = sum(c.transfer.amount for c in gone)
        base = max(high, fall)
        if fall <= 0 or not fires(inp, sym, fall, base, win):
            continue
        rank = (SEVERITY_RANK[win.severity], units.ratio(fall, base) or Decimal(0))
        if best is None or rank > best[0]:
            best = (rank, fall, base, win, gone)
    if best is None:
        return None
    (_, share), fall, high, win, gone = best
    return _finding(inp, wallet, sym, share, fall, high, current, win, gone)


def _finding(inp: RuleInput, wallet: str, sym: str, share: Decimal, fall: int, high: int,
             current: int, win: DrainWindow, gone: list[Classified]) -> Finding:
    d = inp.assets[sym].decimals
    span = units.format_duration(win.window)
    top = sorted(gone, key=lambda c: -c.transfer.amount)
    biggest = top[0].transfer
    to = top[0].counterparty or biggest.recipient or "fees"
    txs = [{"tx": c.transfer.tx, "to": c.counterparty or c.transfer.recipient,
            "amount": whole(c.transfer.amount, d), "class": c.cls} for c in top[:5]]
    return Finding(
        "hot_drain", f"{wallet}/{sym}", win.severity,
        f"{wallet} sent {pct(share, win.drop)} of its {sym} out within {span} "
        f"({whole(fall, d)} {sym} to addresses that are not own wallets, the largest "
        f"{whole(biggest.amount, d)} to {to} in transaction {biggest.tx}; high "
        f"{whole(high, d)}, now {whole(current, d)}; limit {pct(win.drop)}): if nobody moved "
        "it, stop withdrawals and rotate the keys now",
        value=share, threshold=win.drop,
        details={"wallet": wallet, "asset": sym, "window": span, "high": whole(high, d),
                 "current": whole(current, d), "fall": whole(fall, d), "basis": "transfers",
                 "tx": biggest.tx, "to": to, "transfers": txs,
                 "count": len(gone)},
    )
