"""Safe multisig state for `safe_changed`: what a Safe is, read straight from the chain.

A Safe is a proxy whose storage slot 0 names its singleton (implementation);
every call runs the singleton's code in the proxy's storage. Replacing slot 0
replaces the Safe, and a DELEGATECALL can do it without any event (Bybit, Feb
2025): so the slot itself is read, never the logs. Per Safe, one JSON-RPC
batch at the given block reads slot 0, the guard and fallback-handler slots,
the proxy's code, and `getOwners()`, `getThreshold()`,
`getModulesPaginated(SENTINEL, 100)` and `nonce()` (hand-encoded calldata,
strictly decoded); a second batch hashes the singletons' code.

Every endpoint of the chain is read; answers that differ, or none at all, are
an `RpcFailure`. An address that does not answer as a Safe (no code, a view
that reverts or returns nothing, never set up) is not a failure: its
`SafeState.problem` says why, and `safe_changed` reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from eth_utils.crypto import keccak

from ..settings import ChainSettings
from .ethereum_rpc import RpcConnection, RpcFailure, hex_bytes
from .ethereum_safe_abi import (
    ZERO_ADDRESS,
    call_data,
    decode_address_list,
    decode_modules_page,
    decode_uint,
    slot_address,
    storage_word,
)

__all__ = ["SafeState", "read_safes", "SENTINEL", "GUARD_SLOT", "FALLBACK_HANDLER_SLOT",
           "MODULE_PAGE", "MAX_MODULES", "PER_POST"]

SENTINEL = "0x0000000000000000000000000000000000000001"
GUARD_SLOT = (  # keccak256("guard_manager.guard.address")
    "0x4a204f620c8c5ccdca3fd54d003badd85ba500436a431f0cbda4f558c93c34c8")
FALLBACK_HANDLER_SLOT = (  # keccak256("fallback_manager.handler.address")
    "0x6c9a6c4a39284e37ed1cf53d337577d14212a4870fb976a4366c693b939918d5")
MODULE_PAGE = 100  # modules listed per call; a longer list is read again with MAX_MODULES
MAX_MODULES = 1000
PER_POST = 100  # Safes per JSON-RPC batch (8 calls each)
_SLOTS = ("0x0", GUARD_SLOT, FALLBACK_HANDLER_SLOT)
_BASE = len(_SLOTS) + 1  # the slots, then eth_getCode
_VIEWS = ("getOwners()", "getThreshold()", "getModulesPaginated(address,uint256)", "nonce()")
_NOT_SET_UP = "the Safe is not set up (no owners, threshold 0): anyone can call setup() and take it"
_EMPTY_CODE_HASH = "0x" + keccak(b"").hex()


@dataclass(frozen=True)
class SafeState:
    """One Safe at one block. Addresses are lowercase 0x hex; a zero address means unset.

    `owners` in Safe's order, `modules` likewise. A slot holding more than an
    address (upper bytes set) is kept as its full 32-byte word, so any change
    shows. `code_hash`/`singleton_code_hash`: keccak of the proxy's and the
    singleton's runtime code. `problem`: why the address is not a usable Safe
    (then owners/modules are empty and threshold/nonce 0); None for a Safe.
    """

    singleton: str
    owners: tuple[str, ...]
    threshold: int
    modules: tuple[str, ...]
    guard: str
    fallback_handler: str
    nonce: int
    code_hash: str
    singleton_code_hash: str = ""
    problem: str | None = None
    block: int | None = None  # where it was read (not part of the Safe's identity)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["owners"], out["modules"] = list(self.owners), list(self.modules)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> SafeState:
        """The inverse of `to_json`; ValueError naming the field if `raw` is not one."""
        if not isinstance(raw, dict):
            raise ValueError("a stored Safe state must be a JSON object")
        texts = {k: _json_text(raw, k) for k in ("singleton", "guard", "fallback_handler",
                                                  "code_hash", "singleton_code_hash")}
        problem = raw.get("problem")
        if problem is not None and not isinstance(problem, str):
            raise ValueError("stored Safe state: `problem` must be text or null")
        block = raw.get("block")
        if block is not None:
            block = _json_int(raw, "block")
        return cls(owners=_json_list(raw, "owners"), modules=_json_list(raw, "modules"),
                   threshold=_json_int(raw, "threshold"), nonce=_json_int(raw, "nonce"),
                   problem=problem, block=block, **texts)


def _json_text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "" if key == "singleton_code_hash" else None)
    if not isinstance(value, str):
        raise ValueError(f"stored Safe state: `{key}` must be text")
    return value


def _json_int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"stored Safe state: `{key}` must be a whole number ≥ 0")
    return value


def _json_list(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"stored Safe state: `{key}` must be a list of addresses")
    return tuple(value)


# --- reading ---------------------------------------------------------------------


def read_safes(chain: ChainSettings, addresses: Sequence[str], block: int,
               deadline: float) -> dict[str, SafeState]:
    """{lowercase address: SafeState} at `block`, the same from every endpoint, or RpcFailure."""
    wanted = list(dict.fromkeys(a.lower() for a in addresses))
    if not wanted:
        return {}
    if not chain.rpc:
        raise RpcFailure(f"chain {chain.name} has no rpc endpoint to read Safes from")
    conns = [RpcConnection(e) for e in chain.rpc]
    try:
        with ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="safe-read") as pool:
            futures = [pool.submit(_read_one, c, wanted, block, deadline) for c in conns]
            outcomes = [_outcome(f) for f in futures]
    finally:
        for c in conns:
            c.close()
    return _agreed(chain.name, [c.label for c in conns], outcomes)


def _outcome(future: Future[dict[str, SafeState]]) -> dict[str, SafeState] | RpcFailure:
    try:
        return future.result()
    except RpcFailure as exc:
        return exc


def _agreed(chain: str, labels: list[str],
            outcomes: list[dict[str, SafeState] | RpcFailure]) -> dict[str, SafeState]:
    """One answer when the providers that answered agree; a failure otherwise."""
    good = [(label, o) for label, o in zip(labels, outcomes) if not isinstance(o, RpcFailure)]
    if not good:
        reasons = "; ".join(f"{label}: {o}" for label, o in zip(labels, outcomes))
        raise RpcFailure(f"no provider of {chain} answered the Safe reads ({reasons})")
    first_label, first = good[0]
    for label, other in good[1:]:
        for address, state in first.items():
            if other.get(address) != state:
                raise RpcFailure(f"providers disagree on the Safe {address} ({first_label} vs "
                                 f"{label}); it is not read until they agree")
    return first


def _read_one(conn: RpcConnection, addresses: list[str], block: int,
              deadline: float) -> dict[str, SafeState]:
    pin = hex(block)
    states: dict[str, SafeState] = {}
    for start in range(0, len(addresses), PER_POST):
        states.update(_read_part(conn, addresses[start:start + PER_POST], pin, deadline))
    codes = _singleton_code_hashes(conn, states.values(), pin, deadline)
    return {a: replace(s, block=block, singleton_code_hash=codes.get(s.singleton, _EMPTY_CODE_HASH))
            for a, s in states.items()}


def _requests(address: str, pin: str) -> list[tuple[str, Sequence[Any]]]:
    calls: list[tuple[str, Sequence[Any]]] = [
        ("eth_getStorageAt", [address, slot, pin]) for slot in _SLOTS]
    calls.append(("eth_getCode", [address, pin]))
    calls += [("eth_call", [{"to": address, "data": data}, pin]) for data in _view_data()]
    return calls


def _view_data(page: int = MODULE_PAGE) -> list[str]:
    return [call_data("getOwners()"), call_data("getThreshold()"),
            call_data("getModulesPaginated(address,uint256)", int(SENTINEL, 16), page),
            call_data("nonce()")]


def _read_part(conn: RpcConnection, addresses: list[str], pin: str,
               deadline: float) -> dict[str, SafeState]:
    calls = [c for a in addresses for c in _requests(a, pin)]
    try:
        results = conn.batch(calls, deadline)
    except RpcFailure as exc:
        if not _is_revert(exc):
            raise
        # A view reverted somewhere and the batch is lost: read Safe by Safe to find it.
        return {a: _read_alone(conn, a, pin, deadline) for a in addresses}
    n = _BASE + len(_VIEWS)
    return {a: _parse(conn, a, results[i * n:(i + 1) * n], pin, deadline)
            for i, a in enumerate(addresses)}


def _is_revert(exc: RpcFailure) -> bool:
    # geth and anvil answer code 3 for a revert; some nodes -32000 "execution reverted".
    return exc.rpc_code == 3 or "revert" in exc.reason.lower()


def _read_alone(conn: RpcConnection, address: str, pin: str, deadline: float) -> SafeState:
    calls = _requests(address, pin)
    try:
        return _parse(conn, address, conn.batch(calls, deadline), pin, deadline)
    except RpcFailure as exc:
        if not _is_revert(exc):
            raise
    base = conn.batch(calls[:_BASE], deadline)  # slots and code cannot revert
    answers: dict[str, Any] = {}
    for sig, (_, params) in zip(_VIEWS, calls[_BASE:]):
        try:
            answers[sig] = conn.call("eth_call", params, deadline)
        except RpcFailure as exc:
            if not _is_revert(exc):
                raise
    if answers.get("getThreshold()") == "0x" + "00" * 32:  # Safe's getOwners() reverts until setup
        return _not_a_safe(address, base, _NOT_SET_UP)
    names = ", ".join(sig.split("(")[0] + "()" for sig in _VIEWS if sig not in answers)
    return _not_a_safe(address, base, f"{names} reverted: the contract does not answer as a Safe")


def _parse(conn: RpcConnection, address: str, results: list[Any], pin: str,
           deadline: float) -> SafeState:
    base, views = results[:_BASE], results[_BASE:]
    if not hex_bytes(base[-1], f"eth_getCode {address}"):
        return _not_a_safe(address, base, "no contract code at this address (an externally "
                                          "owned account, or nothing deployed): not a Safe")
    raw = [hex_bytes(v, f"{sig} of {address}") for sig, v in zip(_VIEWS, views)]
    for sig, data in zip(_VIEWS, raw):
        if not data:  # what a contract without the function (and a quiet fallback) answers
            return _not_a_safe(address, base, f"{sig} returned no data: not a Safe")
    owners = decode_address_list(raw[0], f"getOwners() of {address}")
    threshold = decode_uint(raw[1], f"getThreshold() of {address}")
    modules, whole = decode_modules_page(raw[2], MODULE_PAGE, f"getModulesPaginated() of {address}")
    nonce = decode_uint(raw[3], f"nonce() of {address}")
    if not owners or threshold == 0:
        return _not_a_safe(address, base, _NOT_SET_UP)
    if not whole:
        modules = _all_modules(conn, address, pin, deadline)
    return replace(_not_a_safe(address, base, None), owners=owners, threshold=threshold,
                   modules=modules, nonce=nonce)


def _not_a_safe(address: str, base: list[Any], problem: str | None) -> SafeState:
    """The state from the slots and the code alone (views empty), with `problem`."""
    singleton, guard, handler = (slot_address(storage_word(v, f"slot {s} of {address}"))
                                 for v, s in zip(base, _SLOTS))
    code = hex_bytes(base[len(_SLOTS)], f"eth_getCode {address}")
    return SafeState(singleton, (), 0, (), guard, handler, 0, "0x" + keccak(code).hex(),
                     problem=problem)


def _all_modules(conn: RpcConnection, address: str, pin: str, deadline: float) -> tuple[str, ...]:
    what = f"getModulesPaginated() of {address}"
    answer = conn.call("eth_call", [{"to": address, "data": _view_data(MAX_MODULES)[2]}, pin],
                       deadline)
    modules, whole = decode_modules_page(hex_bytes(answer, what), MAX_MODULES, what)
    if not whole:
        raise RpcFailure(f"the Safe {address} has more than {MAX_MODULES} modules; the "
                         "auditor cannot list them all")
    return modules


def _singleton_code_hashes(conn: RpcConnection, states: Iterable[SafeState], pin: str,
                           deadline: float) -> dict[str, str]:
    """{singleton: keccak of its code}: one address can get new code (CREATE2 redeploy)."""
    singletons = sorted({s.singleton for s in states
                         if len(s.singleton) == 42 and s.singleton != ZERO_ADDRESS})
    hashes: dict[str, str] = {}
    per_post = PER_POST * 4
    for start in range(0, len(singletons), per_post):
        part = singletons[start:start + per_post]
        codes = conn.batch([("eth_getCode", [s, pin]) for s in part], deadline)
        for s, raw in zip(part, codes):
            hashes[s] = "0x" + keccak(hex_bytes(raw, f"eth_getCode {s}")).hex()
    return hashes
