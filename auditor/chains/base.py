"""The interface every chain client implements, and the factory that picks one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..model import ChainReading
from ..settings import AssetSettings, ChainSettings, WalletSettings

__all__ = ["ChainClient", "make_client"]


@runtime_checkable
class ChainClient(Protocol):
    """Reads one chain's settled and watch views for the given wallets.

    `read` never raises for provider trouble and never hangs past `deadline`
    (a `time.monotonic()` value): it returns `ChainReading(ok=False, error=…)`
    instead, and never reports an unread balance as zero.
    """

    name: str

    def read(self, wallets: Sequence[WalletSettings], assets: Mapping[str, AssetSettings],
             deadline: float | None = None) -> ChainReading: ...

    def close(self) -> None: ...


def make_client(chain: ChainSettings) -> ChainClient:
    """The client for `chain.type`. Raises ValueError for a type without a client."""
    if chain.type == "ethereum":
        from .ethereum import EthereumClient

        return EthereumClient(chain)
    if chain.type == "bitcoin":
        from .bitcoin.client import BitcoinClient

        return BitcoinClient(chain)
    raise ValueError(f"chain {chain.name!r}: no client for type {chain.type!r}")
