"""Safe watch: the Safe-like multisig on anvil, `read_safes`, `safe_changed` and the `safe` key.

Every change the owners can make (owners, threshold, modules, guard, fallback
handler) and the Bybit-style singleton swap through a DELEGATECALL that emits
no event are made on chain, read back and compared; a nonce step alone stays
silent; addresses that are not Safes are findings; answers that do not decode
strictly, or providers that disagree, are RpcFailures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import endpoint, new_address
from eth_utils.crypto import keccak
from test_config_bitcoin import btc_config, errors
from test_config_fixtures import COLD, full_config, problems_of, write
from test_ethereum_providers import RpcProxy

from auditor import devchain, devsafe
from auditor.chains.ethereum_rpc import RpcFailure
from auditor.chains.ethereum_safe import SafeState, read_safes
from auditor.config import load_config
from auditor.devchain import DEV_ACCOUNTS
from auditor.rules_safe import safe_changed
from auditor.settings import ChainSettings, WalletSettings

OWNERS = [a.lower() for a in DEV_ACCOUNTS]
SIGNERS = DEV_ACCOUNTS[:2]  # threshold 2 of the three dev accounts
ZERO = "0x" + "00" * 20
EXEC_SUCCESS = "0x" + keccak(text="ExecutionSuccess(bytes32,uint256)").hex()


def chain_of(*urls: str) -> ChainSettings:
    return ChainSettings(name="ethereum", type="ethereum", rpc=tuple(endpoint(u) for u in urls),
                         native_asset="ETH")


def wallet(address: str, name: str = "eth-cold-safe", safe: bool = True) -> WalletSettings:
    return WalletSettings(name=name, chain="ethereum", tier="cold", role="customer",
                          addresses=(address,), assets=("ETH",), safe=safe)


def read(anvil: devchain.Anvil, *addresses: str, urls: tuple[str, ...] = (),
         block: int | None = None) -> dict[str, SafeState]:
    return read_safes(chain_of(*(urls or (anvil.url,))), addresses,
                      anvil.block_number() if block is None else block, time.monotonic() + 20)


def state(anvil: devchain.Anvil, address: str, **kw: Any) -> SafeState:
    return read(anvil, address, **kw)[address.lower()]


@pytest.fixture
def safe(anvil: devchain.Anvil, contracts: dict[str, Any]) -> str:
    """A fresh 2-of-3 Safe of the dev accounts on the session anvil."""
    return devsafe.deploy_safe(anvil, DEV_ACCOUNTS, 2)


def compare(before: SafeState, after: SafeState, address: str) -> list[Any]:
    w = wallet(address)
    return list(safe_changed({address.lower(): before}, {address.lower(): after}, [w]).findings)


# --- reading a Safe -------------------------------------------------------------------


def test_read_safes_reads_the_safe_layout_at_the_given_block(anvil, safe):
    s = state(anvil, safe)
    singleton = "0x" + anvil.rpc("eth_getStorageAt", safe, "0x0", "latest")[-40:]
    proxy_code = bytes.fromhex(anvil.rpc("eth_getCode", safe, "latest")[2:])
    singleton_code = bytes.fromhex(anvil.rpc("eth_getCode", singleton, "latest")[2:])
    assert s.problem is None
    assert (s.singleton, s.owners, s.threshold, s.modules) == (singleton, tuple(OWNERS), 2, ())
    assert (s.guard, s.fallback_handler, s.nonce) == (ZERO, ZERO, 0)
    assert s.code_hash == "0x" + keccak(proxy_code).hex()
    assert s.singleton_code_hash == "0x" + keccak(singleton_code).hex()
    assert s.block == anvil.block_number()


def test_reads_are_pinned_to_the_block_asked_for(anvil, safe):
    before = anvil.block_number()
    devsafe.change_threshold(anvil, safe, SIGNERS, 3)
    assert state(anvil, safe, block=before).threshold == 2
    assert state(anvil, safe).threshold == 3


def test_safe_state_survives_json_and_refuses_malformed_json(anvil, safe):
    s = state(anvil, safe)
    assert SafeState.from_json(s.to_json()) == s
    broken = s.to_json() | {"threshold": "2"}
    with pytest.raises(ValueError, match="threshold"):
        SafeState.from_json(broken)
    with pytest.raises(ValueError, match="owners"):
        SafeState.from_json(s.to_json() | {"owners": "0xabc"})


# --- what the owners can change ----------------------------------------------------------

MODULE, GUARD, HANDLER, NEW_OWNER = (new_address() for _ in range(4))
CHANGES: dict[str, tuple[Callable[[devchain.Anvil, str], object], str, str]] = {
    "add an owner": (lambda a, s: devsafe.add_owner(a, s, SIGNERS, NEW_OWNER, 2), "owners",
                     f"owners added {NEW_OWNER.lower()} (now 4)"),
    "swap an owner": (lambda a, s: devsafe.swap_owner(a, s, SIGNERS, OWNERS[1], OWNERS[2],
                                                      NEW_OWNER), "owners",
                      f"owners added {NEW_OWNER.lower()}; removed {OWNERS[2]} (now 3)"),
    "lower the threshold": (lambda a, s: devsafe.change_threshold(a, s, SIGNERS, 1), "threshold",
                            "threshold 2 → 1"),
    "enable a module": (lambda a, s: devsafe.enable_module(a, s, SIGNERS, MODULE), "modules",
                        f"modules added {MODULE.lower()} (now 1)"),
    "set a guard": (lambda a, s: devsafe.set_guard(a, s, SIGNERS, GUARD), "guard",
                    f"guard none → {GUARD.lower()}"),
    "set a fallback handler": (lambda a, s: devsafe.set_fallback_handler(a, s, SIGNERS, HANDLER),
                               "fallback_handler", f"fallback handler none → {HANDLER.lower()}"),
}


@pytest.mark.parametrize("case", list(CHANGES))
def test_each_change_by_the_owners_is_one_critical_finding_naming_the_field(anvil, safe, case):
    change, field, said = CHANGES[case]
    before = state(anvil, safe)
    change(anvil, safe)
    after = state(anvil, safe)
    (finding,) = compare(before, after, safe)
    assert (finding.rule, finding.subject, finding.severity) == (
        "safe_changed", "eth-cold-safe", "critical")
    assert set(finding.details["changes"]) == {field}  # the nonce step is not listed
    assert said in finding.summary
    assert finding.details["changes"][field]["before"] != finding.details["changes"][field]["after"]
    assert after.nonce == before.nonce + 1


def test_a_nonce_step_alone_is_not_a_change_of_the_safe(anvil, safe):
    anvil.set_balance(safe, 10**18)
    before = state(anvil, safe)
    devsafe.safe_exec(anvil, safe, SIGNERS, new_address(), value=10**17)
    after = state(anvil, safe)
    assert after.nonce == before.nonce + 1
    assert compare(before, after, safe) == []


def test_a_safe_seen_for_the_first_time_sets_the_baseline_silently(anvil, safe):
    now = read(anvil, safe)
    assert safe_changed({}, now, [wallet(safe)]).findings == ()


def test_a_long_module_list_is_read_whole_in_safe_order(anvil, safe):
    """More modules than one page (100): read again with a larger page, order kept."""
    modules = [new_address().lower() for _ in range(150)]
    chain = [devsafe.SENTINEL, *modules, devsafe.SENTINEL]
    writes = [("anvil_setStorageAt", (safe, _mapping_slot(key, 1), "0x" + "00" * 12 + nxt[2:]))
              for key, nxt in zip(chain, chain[1:])]  # Safe's modules mapping is slot 1
    anvil.batch(writes)
    assert state(anvil, safe).modules == tuple(modules)


def _mapping_slot(key: str, slot: int) -> str:
    return "0x" + keccak(int(key, 16).to_bytes(32, "big") + slot.to_bytes(32, "big")).hex()


# --- the Bybit swap ---------------------------------------------------------------------------


def test_singleton_swap_through_a_delegatecall_emits_no_event_but_is_found(anvil, safe):
    anvil.set_balance(safe, 5 * 10**18)
    before = state(anvil, safe)
    drainer = devsafe.deploy_drainer(anvil)
    receipt = devsafe.swap_singleton(anvil, safe, SIGNERS, drainer)
    # The only log is Safe's ordinary ExecutionSuccess: nothing announces the new singleton.
    assert [log["topics"][0] for log in receipt["logs"]] == [EXEC_SUCCESS]
    after = state(anvil, safe)
    assert after.singleton == drainer.lower() and after.problem is not None
    (finding,) = compare(before, after, safe)
    assert finding.details["changes"]["singleton"] == {"before": before.singleton,
                                                       "after": drainer.lower()}
    assert "implementation was replaced" in finding.summary and "Bybit" in finding.summary
    assert "no longer answers as a Safe" in finding.summary
    assert finding.summary.index("implementation") < finding.summary.index("no longer")
    # And the swapped Safe now obeys anyone: the thief sweeps it.
    thief = new_address()
    anvil.set_balance(thief, 10**17)
    anvil.send_tx(thief, safe, data=devsafe.safe_calldata("sweepETH(address)", thief))
    assert int(anvil.rpc("eth_getBalance", safe, "latest"), 16) == 0
    assert int(anvil.rpc("eth_getBalance", thief, "latest"), 16) > 5 * 10**18


def test_swap_to_a_look_alike_singleton_that_still_answers_is_found(anvil, safe):
    before = state(anvil, safe)
    twin = devsafe.deploy_singleton(anvil)  # same code, another address: owners read the same
    devsafe.swap_singleton(anvil, safe, SIGNERS, twin)
    after = state(anvil, safe)
    assert after.problem is None and after.owners == before.owners
    (finding,) = compare(before, after, safe)
    assert set(finding.details["changes"]) == {"singleton"}


def test_new_code_at_the_proxy_address_is_a_change(anvil, safe):
    before = state(anvil, safe)
    code = anvil.rpc("eth_getCode", safe, "latest")
    anvil.set_code(safe, code + "00")  # same behaviour, other bytes: the proxy is not what it was
    (finding,) = compare(before, state(anvil, safe), safe)
    assert set(finding.details["changes"]) == {"code_hash"}
    assert "proxy's code changed" in finding.summary


# --- addresses that are not Safes --------------------------------------------------------------


def _not_a_safe(anvil: devchain.Anvil, kind: str) -> str:
    if kind == "an account without code":
        return new_address()
    if kind == "an ERC-20 (views revert)":
        return devchain.deploy_erc20(anvil, "Not A Safe", "NAS", 6)
    proxy = devchain.compile_contracts()["TestSafeProxy"]["bytecode"]
    singleton = devsafe.deploy_singleton(anvil)
    return anvil.deploy(proxy, constructor_args="00" * 12 + singleton[2:])  # never set up


@pytest.mark.parametrize("kind, reason", [
    ("an account without code", "no contract code"),
    ("an ERC-20 (views revert)", "getOwners(), getThreshold(), getModulesPaginated(), nonce() reverted"),
    ("a proxy never set up", "not set up"),
])
def test_a_wallet_marked_safe_that_is_not_a_safe_is_a_finding(anvil, contracts, safe, kind, reason):
    other = _not_a_safe(anvil, kind)
    now = read(anvil, safe, other)  # read together: the real Safe is still read right
    assert now[safe.lower()].problem is None and now[safe.lower()].owners == tuple(OWNERS)
    assert reason in now[other.lower()].problem
    w = wallet(other, name="eth-not-safe")
    for prev in ({}, now):  # first sight or not: every cycle, nothing can be watched
        (finding,) = safe_changed(prev, now, [wallet(safe), w]).findings
        assert (finding.subject, finding.severity) == ("eth-not-safe", "critical")
        assert "is not a Safe" in finding.summary and reason in finding.summary


# --- strict decoding and providers -------------------------------------------------------------

SELECTORS = {name: "0x" + keccak(text=name).hex()[:8] for name in (
    "getOwners()", "getThreshold()", "getModulesPaginated(address,uint256)", "nonce()")}


def _mangle_call(selector: str, change: Callable[[str], str]):
    def policy(proxy, calls):
        answers = proxy.forward(calls)
        for call, answer in zip(calls, answers):
            if call["method"] == "eth_call" and call["params"][0]["data"].startswith(selector):
                answer["result"] = change(answer["result"])
        return answers
    return policy


def _mangle_method(method: str, change: Callable[[str], str]):
    def policy(proxy, calls):
        answers = proxy.forward(calls)
        for call, answer in zip(calls, answers):
            if call["method"] == method:
                answer["result"] = change(answer["result"])
        return answers
    return policy


def _word(hexdata: str, i: int, new: str) -> str:
    body = hexdata[2:]
    return "0x" + body[:64 * i] + new + body[64 * (i + 1):]


OWNERS_CALL = SELECTORS["getOwners()"]
GARBAGE = {
    "owners truncated": (_mangle_call(OWNERS_CALL, lambda r: r[:-64]), "bytes"),
    "owners with a trailing word": (_mangle_call(OWNERS_CALL, lambda r: r + "00" * 32), "bytes"),
    "owners array offset moved": (_mangle_call(OWNERS_CALL, lambda r: _word(r, 0, f"{64:064x}")),
                                  "offset"),
    "owner word with upper bytes": (_mangle_call(OWNERS_CALL, lambda r: _word(r, 2, "ff" * 32)),
                                    "upper 12 bytes"),
    "owners count absurd": (_mangle_call(OWNERS_CALL, lambda r: _word(r, 1, "ff" * 32)),
                            "entries"),
    "threshold 31 bytes": (_mangle_call(SELECTORS["getThreshold()"], lambda r: r[:-2]), "not 32"),
    "modules next not an address": (
        _mangle_call(SELECTORS["getModulesPaginated(address,uint256)"],
                     lambda r: _word(r, 1, "ee" * 32)), "upper 12 bytes"),
    "nonce not hex": (_mangle_call(SELECTORS["nonce()"], lambda r: "0xzz"), "not hex"),
    "storage word short": (_mangle_method("eth_getStorageAt", lambda r: r[:-2]), "not 32"),
    "code without 0x": (_mangle_method("eth_getCode", lambda r: r[2:]), "not hex"),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_answers_that_do_not_decode_strictly_are_rpc_failures(anvil, safe, case):
    policy, says = GARBAGE[case]
    liar = RpcProxy(anvil.url, policy)
    try:
        with pytest.raises(RpcFailure, match=says) as caught:
            read(anvil, safe, urls=(liar.url,))
        assert "secret-key" not in str(caught.value)
    finally:
        liar.close()


def test_a_node_that_reports_reverts_as_minus_32000_is_understood(anvil, safe, contracts):
    def old_style(proxy, calls):
        answers = proxy.forward(calls)
        for answer in answers:
            if answer.get("error", {}).get("code") == 3:
                answer["error"] = {"code": -32000, "message": "execution reverted"}
        return answers

    token = devchain.deploy_erc20(anvil, "Not A Safe", "NAS", 6)
    node = RpcProxy(anvil.url, old_style)
    try:
        now = read(anvil, safe, token, urls=(node.url,))
    finally:
        node.close()
    assert now[safe.lower()].threshold == 2 and "reverted" in now[token.lower()].problem


def test_providers_that_disagree_on_a_safe_are_an_rpc_failure(anvil, safe):
    liar = RpcProxy(anvil.url, _mangle_call(SELECTORS["getThreshold()"],
                                            lambda r: "0x" + f"{1:064x}"))
    try:
        with pytest.raises(RpcFailure, match="disagree"):
            read(anvil, safe, urls=(anvil.url, liar.url))
    finally:
        liar.close()


def test_one_provider_down_reads_from_the_others_and_none_is_an_rpc_failure(anvil, safe):
    down = RpcProxy(anvil.url, lambda proxy, calls: (500, b"oops"))
    try:
        assert state(anvil, safe, urls=(down.url, anvil.url)).threshold == 2
        with pytest.raises(RpcFailure, match="HTTP 500"):
            read(anvil, safe, urls=(down.url,))
    finally:
        down.close()


# --- the rule alone (no chain) -----------------------------------------------------------------

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
BASE = SafeState(A, (A, B), 2, (), ZERO, ZERO, 7, "0x01", "0x02", block=100)


def test_only_wallets_marked_safe_and_read_this_cycle_are_judged():
    changed = SafeState(B, (A, B), 2, (), ZERO, ZERO, 7, "0x01", "0x02", block=101)
    prev, now = {A: BASE}, {A: changed}
    assert safe_changed(prev, now, [wallet(A, safe=False)]).findings == ()
    assert safe_changed(prev, {}, [wallet(A)]).findings == ()
    (finding,) = safe_changed(prev, now, [wallet(A.upper().replace("0X", "0x"))]).findings
    assert finding.details["block"] == 101 and finding.details["previous_block"] == 100
    assert finding.details["address"] == A and finding.details["wallet"] == "eth-cold-safe"


def test_a_state_stored_before_the_singleton_code_hash_was_read_is_not_a_change():
    old = SafeState.from_json({k: v for k, v in BASE.to_json().items()
                               if k != "singleton_code_hash"})
    assert old.singleton_code_hash == ""
    assert safe_changed({A: old}, {A: BASE}, [wallet(A)]).findings == ()


def test_several_changes_are_one_finding_listing_each_before_and_after():
    after = SafeState(B, (A,), 1, (B,), B, ZERO, 8, "0x01", "0x03")
    (finding,) = safe_changed({A: BASE}, {A: after}, [wallet(A)]).findings
    changes = finding.details["changes"]
    assert set(changes) == {"singleton", "owners", "threshold", "modules", "guard"}
    assert changes["owners"] == {"before": [A, B], "after": [A], "added": [], "removed": [B]}
    assert changes["threshold"] == {"before": 2, "after": 1}
    assert finding.summary.startswith(f"The Safe of wallet eth-cold-safe ({A}) changed: the "
                                      "Safe's implementation was replaced")


def test_new_code_at_the_same_singleton_address_is_a_change():
    redeployed = SafeState(A, (A, B), 2, (), ZERO, ZERO, 7, "0x01", "0x09")
    (finding,) = safe_changed({A: BASE}, {A: redeployed}, [wallet(A)]).findings
    assert set(finding.details["changes"]) == {"singleton_code_hash"}
    assert "code at the singleton's address changed (0x02 → 0x09)" in finding.summary


# --- the `safe` config key ---------------------------------------------------------------------


def _safe_cfg(line: str, addresses: str = f'["{COLD}"]') -> str:
    cold = f'    addresses: ["{COLD}"]\n'
    cfg = full_config()
    assert cold in cfg
    return cfg.replace(cold, f"    addresses: {addresses}\n{line}", 1)


def test_safe_true_on_an_ethereum_wallet_loads(tmp_path: Path):
    s = load_config(write(tmp_path, _safe_cfg("    safe: true\n")), env={"SOC_SECRET": "x"})
    assert [w.name for w in s.wallets if w.safe] == ["eth-cold-1"]


@pytest.mark.parametrize("line, addresses, says", [
    ("    safe: yes please\n", f'["{COLD}"]', "expected true or false"),
    ("    safe: true\n", f'["{COLD}", "{DEV_ACCOUNTS[0]}"]', "exactly one address"),
])
def test_safe_key_problems_name_the_wallet_and_key(tmp_path: Path, line, addresses, says):
    (p,) = problems_of(write(tmp_path, _safe_cfg(line, addresses)), "wallets[1].safe")
    assert says in p.message and 'wallet "eth-cold-1"' in p.message


def test_safe_is_refused_on_a_bitcoin_wallet(tmp_path: Path):
    cfg = btc_config().replace("    gap_limit: 50\n", "    gap_limit: 50\n    safe: true\n", 1)
    (p,) = [p for p in errors(tmp_path, cfg) if p.path.endswith(".safe")]
    assert "Ethereum" in p.message and 'wallet "btc-cold"' in p.message
