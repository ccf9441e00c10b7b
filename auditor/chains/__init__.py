"""Chain clients: read wallets' balances and nonces at the settled and watch blocks."""

from .base import ChainClient, make_client
from .ethereum import EthereumClient

__all__ = ["ChainClient", "make_client", "EthereumClient"]
