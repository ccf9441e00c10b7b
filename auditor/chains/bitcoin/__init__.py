"""Bitcoin: descriptor discovery (descriptors.py), one interface for the backends
users run (types.py; esplora.py, electrum.py, bitcoind.py) and the ChainClient
that turns their answers into the settled and watch views (client.py)."""
