"""A simulated Bitcoin regtest chain of real transactions (bitcoinlib-signed) and
local servers speaking the Esplora, Electrum and Bitcoin Core APIs over it.

bitcoinlib writes `~/.bitcoinlib` (config, databases, logs) at import: point it
at a temporary folder before anything here imports it. A child process started
with this environment inherits the same folder.

Used by the tests, `benchmarks/btc_poll.py` and `auditor demo` (which is why it
ships in the package, like `devchain` for anvil); nothing else imports it, so
the auditor itself never loads bitcoinlib. Child processes: `python -m
auditor.devbtc.serve KIND`.

Modules: chain (SimChain), keys (test wallets and signers), faults (the fault
switch), codec (raw tx/address formats), verify (independent input check),
esplora_server.
"""

from __future__ import annotations

import logging
import os
import tempfile

if not os.environ.get("BCL_DATA_DIR"):
    os.environ["BCL_DATA_DIR"] = tempfile.mkdtemp(prefix="btcsim-bitcoinlib-")

# bitcoinlib logs every key it derives at INFO; the tests do not need that.
logging.getLogger("bitcoinlib").setLevel(logging.WARNING)

__all__: list[str] = []
