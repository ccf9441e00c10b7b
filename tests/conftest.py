"""Shared fixtures: a real local Ethereum node (anvil) and the compiled test contracts.

The node tests need the npm dev tools (`npm ci`, done by `make test`); without
node_modules they are skipped with that reason, never silently passed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from auditor import devchain
from auditor.settings import AssetSettings, ChainSettings, Deployment, RpcEndpoint, Secret, WalletSettings, redact_url


def _require_dev_tools() -> None:
    try:
        devchain.find_node_modules()
    except devchain.DevchainError as exc:
        pytest.skip(f"{exc} (installs anvil and solc)")


@pytest.fixture(scope="session")
def contracts() -> dict[str, dict[str, Any]]:
    """{name: {abi, bytecode, runtime}} of auditor/contracts/*.sol, compiled once."""
    _require_dev_tools()
    return devchain.compile_contracts()


@pytest.fixture(scope="session")
def anvil() -> Iterator[devchain.Anvil]:
    """One anvil for the session, one block mined (cheat codes need it). Share it:
    use fresh addresses (`new_address()`) so tests do not see each other's state."""
    _require_dev_tools()
    with devchain.Anvil() as node:
        node.mine()
        yield node


@pytest.fixture
def make_anvil() -> Iterator[Callable[..., devchain.Anvil]]:
    """Start extra anvils for destructive tests (killed nodes, disagreeing nodes)."""
    _require_dev_tools()
    started: list[devchain.Anvil] = []

    def start(*args: str, mine: int = 1) -> devchain.Anvil:
        node = devchain.Anvil(args=args).start()
        started.append(node)
        if mine:
            node.mine(mine)
        return node

    yield start
    for node in started:
        node.close()


def new_address() -> str:
    """A fresh random checksummed address (an EOA nobody uses)."""
    from eth_utils import to_checksum_address

    return to_checksum_address(os.urandom(20))


def endpoint(url: str, timeout: int = 5) -> RpcEndpoint:
    return RpcEndpoint(url=Secret(url), label=redact_url(url), timeout=timeout)


@dataclass
class EthWorld:
    """A chain with Multicall3 and two ERC-20s: USDC (6 decimals), DAI (18 decimals)."""

    anvil: devchain.Anvil
    usdc: str
    dai: str

    new_address = staticmethod(new_address)

    def chain(self, urls: Sequence[str] | None = None, *, confirmations: int = 3,
              multicall3: str | None = devchain.MULTICALL3_ADDRESS, timeout: int = 5,
              name: str = "ethereum") -> ChainSettings:
        return ChainSettings(
            name=name, type="ethereum",
            rpc=tuple(endpoint(u, timeout) for u in (urls or [self.anvil.url])),
            confirmations=confirmations, multicall3=multicall3, native_asset="ETH")

    def assets(self, chain: str = "ethereum") -> dict[str, AssetSettings]:
        out = {
            "ETH": AssetSettings("ETH", "crypto", 18, (Deployment(chain, None, 18),)),
            "USDC": AssetSettings("USDC", "stablecoin", 6, (Deployment(chain, self.usdc, 6),)),
            "DAI": AssetSettings("DAI", "stablecoin", 18, (Deployment(chain, self.dai, 18),)),
        }
        return out

    def wallet(self, addresses: Sequence[str], assets: Sequence[str] = ("ETH", "USDC", "DAI"),
               name: str = "hot-1", chain: str = "ethereum") -> WalletSettings:
        return WalletSettings(name=name, chain=chain, tier="hot", role="customer",
                              addresses=tuple(addresses), assets=tuple(assets))

    def fund(self, address: str, eth: int = 0, usdc: int = 0, dai: int = 0) -> None:
        if eth:
            self.anvil.set_balance(address, eth)
        if usdc:
            devchain.mint(self.anvil, self.usdc, address, usdc)
        if dai:
            devchain.mint(self.anvil, self.dai, address, dai)


def build_world(node: devchain.Anvil) -> EthWorld:
    devchain.install_multicall3(node)
    return EthWorld(node, devchain.deploy_erc20(node, "USD Coin", "USDC", 6),
                    devchain.deploy_erc20(node, "Dai Stablecoin", "DAI", 18))


@pytest.fixture(scope="session")
def eth_world(anvil: devchain.Anvil, contracts: dict[str, Any]) -> EthWorld:
    """The session anvil with Multicall3 installed and the two tokens deployed."""
    return build_world(anvil)
