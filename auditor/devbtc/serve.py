"""Run a simulated server in its own process (benchmarks: the server's CPU is not the client's).

    python -m auditor.devbtc.serve esplora|electrum|bitcoind --chain chain.pickle [--port 0]

`--chain` is a file written by `SimChain.save()`; the process serves that
state (mine and reorg in the parent are not seen), prints `READY <url>` on
stdout, and stops when stdin closes or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from .chain import SimChain
from .esplora_server import EsploraServer

__all__ = ["main"]


def _server(kind: str, chain: SimChain, port: int) -> Any:
    if kind == "esplora":
        return EsploraServer(chain, port=port).start()
    if kind == "electrum":
        from .electrum_server import ElectrumServer

        return ElectrumServer(chain, port=port).start()
    if kind == "bitcoind":
        from .bitcoind_server import BitcoindServer

        return BitcoindServer(chain, port=port).start()
    raise SystemExit(f"unknown server kind {kind!r} (known: esplora, electrum, bitcoind)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m auditor.devbtc.serve")
    ap.add_argument("kind")
    ap.add_argument("--chain", required=True, help="a file written by SimChain.save()")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = _server(args.kind, SimChain.load(args.chain), args.port)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    print(f"READY {server.url}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
