"""`safe_changed`: a watched Safe is not what it was (pure; no I/O).

Compares each `safe: true` wallet's Safe as read this cycle with the state
kept from the last one. Any change of the singleton (storage slot 0), owners,
threshold, modules, guard, fallback handler or code is one critical finding
per wallet (subject: the wallet's name) listing every changed field before →
after. A nonce change alone is not a change of the Safe: it is a
transaction, which `cold_outflow` judges. A Safe seen for the first time
sets the baseline silently; an address that is not a Safe (no code, views
that revert, never set up) is a finding every cycle, since nothing about it
can be watched. An event rule: a person resolves it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from .chains.ethereum_safe import SafeState
from .chains.ethereum_safe_abi import ZERO_ADDRESS
from .model import Evaluation, Finding
from .settings import WalletSettings

__all__ = ["safe_changed", "safe_changes"]

RULE = "safe_changed"
_ADDRESS_FIELDS = ("singleton", "guard", "fallback_handler")
_LIST_FIELDS = ("owners", "modules")
_HASH_FIELDS = ("code_hash", "singleton_code_hash")
_ACTION = ("Stop signing with this Safe, and confirm with every signer whether they "
           "approved this change before anything moves")


def safe_changed(prev: Mapping[str, SafeState], now: Mapping[str, SafeState],
                 wallets: Sequence[WalletSettings]) -> Evaluation:
    """One finding per `safe: true` wallet whose Safe changed or is not a Safe.

    `prev`/`now` are keyed by the lowercase address (as `read_safes` returns
    them); a wallet missing from `now` was not read this cycle and is skipped.
    """
    findings = []
    for w in wallets:
        if not w.safe or not w.addresses:
            continue
        address = w.addresses[0].lower()
        current = now.get(address)
        if current is None:
            continue
        finding = _finding(w, address, prev.get(address), current)
        if finding is not None:
            findings.append(finding)
    return Evaluation(RULE, tuple(findings))


def safe_changes(before: SafeState, after: SafeState) -> dict[str, dict[str, object]]:
    """{field: {"before", "after"[, "added", "removed"]}} of what differs, nonce and block aside.

    The views (owners, threshold, modules) are compared only while both
    states answered as a Safe; a Safe that stops answering is its own change.
    """
    out: dict[str, dict[str, object]] = {}
    for name in _ADDRESS_FIELDS + _HASH_FIELDS:
        a, b = getattr(before, name), getattr(after, name)
        if a != b and (a and b):  # a state stored before singleton_code_hash existed has ""
            out[name] = {"before": a, "after": b}
    if "singleton" in out:  # another singleton has other code: that says nothing more
        out.pop("singleton_code_hash", None)
    if before.problem is None and after.problem is None:
        for name in _LIST_FIELDS:
            a, b = getattr(before, name), getattr(after, name)
            if a != b:
                out[name] = {"before": list(a), "after": list(b),
                             "added": [x for x in b if x not in a],
                             "removed": [x for x in a if x not in b]}
        if before.threshold != after.threshold:
            out["threshold"] = {"before": before.threshold, "after": after.threshold}
    if before.problem != after.problem:
        out["problem"] = {"before": before.problem, "after": after.problem}
    return out


def _finding(w: WalletSettings, address: str, before: SafeState | None,
             after: SafeState) -> Finding | None:
    changes = safe_changes(before, after) if before is not None else {}
    if after.problem is None and not changes:
        return None  # unchanged, a nonce step only, or the first sight (the baseline)
    details: dict[str, object] = {"wallet": w.name, "chain": w.chain, "address": address,
                                  "changes": changes}
    if after.block is not None:
        details["block"] = after.block
    if before is not None and before.block is not None:
        details["previous_block"] = before.block
    if before is None or not changes:  # so after.problem is set: not a Safe, as before
        summary = (f"Wallet {w.name} is marked `safe: true` but {address} is not a Safe: "
                   f"{after.problem}. Nothing of it can be watched; fix the address or remove "
                   "`safe: true`")
    else:
        where = f" at block {after.block}" if after.block is not None else ""
        summary = (f"The Safe of wallet {w.name} ({address}) changed{where}: "
                   f"{'; '.join(_describe(before, after, changes))}. {_ACTION}")
    details["problem"] = after.problem
    return Finding(RULE, w.name, "critical", summary, details=details)


def _describe(before: SafeState, after: SafeState, changed: Collection[str]) -> list[str]:
    """Plain sentences, the singleton first: it is the one that empties a Safe."""
    return [_SENTENCES[name](before, after) for name in _SENTENCES if name in changed]


def _addr(value: str) -> str:
    return "none" if value == ZERO_ADDRESS else value


def _listed(what: str, a: tuple[str, ...], b: tuple[str, ...]) -> str:
    added = [x for x in b if x not in a]
    removed = [x for x in a if x not in b]
    parts = ([f"added {', '.join(added)}"] if added else []) + (
        [f"removed {', '.join(removed)}"] if removed else [])
    return f"{what} {'; '.join(parts) or 'reordered'} (now {len(b)})"


def _singleton(a: SafeState, b: SafeState) -> str:
    return (f"the Safe's implementation was replaced (singleton, storage slot 0: "
            f"{_addr(a.singleton)} → {_addr(b.singleton)}), as in the Bybit hack of Feb 2025, "
            "where a DELEGATECALL swapped it without any event")


def _problem(a: SafeState, b: SafeState) -> str:
    if b.problem is None:
        return (f"it answers as a Safe again, with owners {', '.join(b.owners)} and threshold "
                f"{b.threshold} (who set it up?)")
    return f"it no longer answers as a Safe ({b.problem})"


_Sentence = Callable[[SafeState, SafeState], str]
_SENTENCES: dict[str, _Sentence] = {
    "singleton": _singleton,
    "problem": _problem,
    "code_hash": lambda a, b: f"the proxy's code changed ({a.code_hash} → {b.code_hash})",
    "singleton_code_hash": lambda a, b: (
        f"the code at the singleton's address changed ({a.singleton_code_hash} → "
        f"{b.singleton_code_hash})"),
    "owners": lambda a, b: _listed("owners", a.owners, b.owners),
    "threshold": lambda a, b: f"threshold {a.threshold} → {b.threshold}",
    "modules": lambda a, b: _listed("modules", a.modules, b.modules),
    "guard": lambda a, b: f"guard {_addr(a.guard)} → {_addr(b.guard)}",
    "fallback_handler": lambda a, b: (
        f"fallback handler {_addr(a.fallback_handler)} → {_addr(b.fallback_handler)}"),
}
