"""A Safe-like multisig on the dev chain (auditor/contracts/TestSafe.sol), for tests and the demo.

Never used by the poll path. `deploy_safe` puts a TestSafeProxy in front of a
TestSafe singleton and sets it up; `safe_exec` runs a transaction the way the
owners of a Safe do (each signer approves the hash on chain, the first one
executes); the helpers below change what `safe_changed` watches, including
the Bybit-style singleton swap through a DELEGATECALL that emits no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from .devchain import DEV_ACCOUNTS, Anvil, compile_contracts

__all__ = [
    "SENTINEL",
    "CALL",
    "DELEGATECALL",
    "safe_calldata",
    "deploy_singleton",
    "deploy_safe",
    "safe_exec",
    "safe_self_call",
    "add_owner",
    "swap_owner",
    "change_threshold",
    "enable_module",
    "set_guard",
    "set_fallback_handler",
    "swap_singleton",
    "deploy_drainer",
]

SENTINEL = "0x0000000000000000000000000000000000000001"
CALL, DELEGATECALL = 0, 1


def safe_calldata(signature: str, *args: Any) -> bytes:
    """Calldata for `signature` (e.g. "setup(address[],uint256,address)") with ABI-encoded args."""
    types = signature[signature.index("(") + 1:-1]
    arg_types = [t for t in types.split(",") if t] if types else []
    return keccak(text=signature)[:4] + encode(arg_types, list(args))


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def deploy_singleton(anvil: Anvil, contract: str = "TestSafe") -> str:
    """A singleton (implementation) contract; TestSafe unless another is named."""
    return anvil.deploy(compile_contracts()[contract]["bytecode"])


def deploy_safe(anvil: Anvil, owners: Sequence[str], threshold: int, *,
                fallback_handler: str | None = None, singleton: str | None = None) -> str:
    """A set-up TestSafeProxy (the Safe's address) over `singleton` (deployed if None)."""
    singleton = singleton or deploy_singleton(anvil)
    proxy = anvil.deploy(compile_contracts()["TestSafeProxy"]["bytecode"],
                         constructor_args=encode(["address"], [singleton]).hex())
    setup = safe_calldata("setup(address[],uint256,address)", list(owners), threshold,
                          fallback_handler or "0x" + "00" * 20)
    anvil.send_tx(DEV_ACCOUNTS[0], proxy, data=_hex(setup))
    return proxy


def safe_exec(anvil: Anvil, safe: str, signers: Sequence[str], to: str, data: bytes = b"", *,
              value: int = 0, operation: int = CALL) -> dict[str, Any]:
    """Execute through the Safe: signers[1:] approve the hash, signers[0] sends it. Receipt."""
    nonce = int(anvil.rpc("eth_call", {"to": safe, "data": _hex(safe_calldata("nonce()"))},
                          "latest"), 16)
    hash_call = safe_calldata("getTransactionHash(address,uint256,bytes,uint8,uint256)",
                              to, value, data, operation, nonce)
    tx_hash = anvil.rpc("eth_call", {"to": safe, "data": _hex(hash_call)}, "latest")
    for signer in signers[1:]:
        anvil.send_tx(signer, safe, data=_hex(
            safe_calldata("approveHash(bytes32)", bytes.fromhex(tx_hash[2:]))))
    run = safe_calldata("execTransaction(address,uint256,bytes,uint8)", to, value, data, operation)
    return anvil.send_tx(signers[0], safe, data=_hex(run))


def safe_self_call(anvil: Anvil, safe: str, signers: Sequence[str], signature: str,
                   *args: Any) -> dict[str, Any]:
    """One of the Safe's `authorized` setters, run by the owners through execTransaction."""
    return safe_exec(anvil, safe, signers, safe, safe_calldata(signature, *args))


def add_owner(anvil: Anvil, safe: str, signers: Sequence[str], owner: str,
              threshold: int) -> dict[str, Any]:
    return safe_self_call(anvil, safe, signers, "addOwnerWithThreshold(address,uint256)",
                          owner, threshold)


def swap_owner(anvil: Anvil, safe: str, signers: Sequence[str], prev_owner: str, old: str,
               new: str) -> dict[str, Any]:
    """prev_owner: the owner before `old` in getOwners() order, SENTINEL for the first."""
    return safe_self_call(anvil, safe, signers, "swapOwner(address,address,address)",
                          prev_owner, old, new)


def change_threshold(anvil: Anvil, safe: str, signers: Sequence[str],
                     threshold: int) -> dict[str, Any]:
    return safe_self_call(anvil, safe, signers, "changeThreshold(uint256)", threshold)


def enable_module(anvil: Anvil, safe: str, signers: Sequence[str], module: str) -> dict[str, Any]:
    return safe_self_call(anvil, safe, signers, "enableModule(address)", module)


def set_guard(anvil: Anvil, safe: str, signers: Sequence[str], guard: str) -> dict[str, Any]:
    return safe_self_call(anvil, safe, signers, "setGuard(address)", guard)


def set_fallback_handler(anvil: Anvil, safe: str, signers: Sequence[str],
                         handler: str) -> dict[str, Any]:
    return safe_self_call(anvil, safe, signers, "setFallbackHandler(address)", handler)


def swap_singleton(anvil: Anvil, safe: str, signers: Sequence[str],
                   new_singleton: str) -> dict[str, Any]:
    """The Bybit attack: the owners sign what looks like a token transfer, run as a
    DELEGATECALL into TestSafeTakeover, which writes slot 0. No event names the swap."""
    takeover = anvil.deploy(compile_contracts()["TestSafeTakeover"]["bytecode"])
    data = safe_calldata("transfer(address,uint256)", new_singleton, 0)
    return safe_exec(anvil, safe, signers, takeover, data, operation=DELEGATECALL)


def deploy_drainer(anvil: Anvil) -> str:
    """The malicious singleton (sweepETH/sweepERC20, no getOwners)."""
    return deploy_singleton(anvil, "TestSafeDrainer")
