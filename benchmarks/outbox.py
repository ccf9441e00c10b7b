"""Outbox drain throughput and memory. Run by hand, not by CI.

A store holding N pending webhook notifications (signed, one transition
each) is drained by `outbox.deliver_pending` to a minimal HTTP/1.1
keep-alive receiver on 127.0.0.1 (an asyncio server in its own process, so
it does not share the GIL with the sender). Each scenario runs in a fresh
child process, so its peak RSS is its own. Reported per scenario:
messages/second, the tracemalloc peak of a drain, and the child's peak RSS.

Compared with two naive drains, both loading every pending row at once and
writing one transaction per delivered mark: `naive` also opens a new HTTP
connection per message (`httpx.post` style), `naive-ka` keeps one
connection alive (so its gap to `outbox` is the store side alone).

    .venv/bin/python benchmarks/outbox.py [--sizes 10000 40000] [--naive-sizes 1000]
                                          [--naive-ka-sizes 10000 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SECRET = "whsec-benchmark-0123456789"


# -- the receiver (child process) -----------------------------------------------

def serve(port_file: Path) -> None:
    """Answer every POST with 200 on kept-alive connections; GET returns the count."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET"):
                    body = str(count).encode()
                else:
                    count += 1
                    body = b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as r:
        return int(r.read())


# -- one scenario (child process) -------------------------------------------------

def fill(store: Any, n: int) -> None:
    """n pending rows for channel soc, one realistic transition each, one transaction."""
    from auditor.model import Transition
    from auditor.store import transition_to_json
    from auditor.store_outbox import enqueue_tx

    at = datetime.now(UTC)
    with store.transaction() as conn:
        for i in range(n):
            t = Transition(kind="firing", fingerprint=f"{i:064x}", rule="hot_drain",
                           subject=f"eth-hot-{i % 7}/ETH", severity="critical", at=at, since=at,
                           summary="hot wallet eth-hot-1 fell 42% in 10m (ETH 12.5 → 7.25)",
                           value=Decimal("0.42"), threshold=Decimal("0.2"),
                           details={"wallet": "eth-hot-1", "tx": f"0x{i:064x}"})
            enqueue_tx(conn, "soc", [transition_to_json(t, i + 1)], at)


def drain(store: Any, port: int, naive: str) -> int:
    from auditor.notify.webhook import WebhookNotifier
    from auditor.outbox import deliver_pending
    from auditor.settings import AlertSettings, ChannelSettings, RetrySettings, Secret

    url = Secret(f"http://127.0.0.1:{port}/hooks/soc")
    channel = ChannelSettings(name="soc", type="webhook", url=url, secret=Secret(SECRET))
    if naive:
        return naive_drain(store, channel, fresh_connections=naive == "naive")
    alerts = AlertSettings(retry=RetrySettings(), channels=(channel,))
    notifier = WebhookNotifier("soc", url, secret=channel.secret)
    report = deliver_pending(store, {"soc": notifier}, alerts, "bench-ex")
    assert not report.errors, report.errors[:3]
    return report.delivered


def naive_drain(store: Any, channel: Any, fresh_connections: bool) -> int:
    """Everything loaded, a transaction per mark; maybe a new connection per message."""
    import httpx

    from auditor.notify.base import Message, wire_alert
    from auditor.notify.webhook import WebhookNotifier

    now = datetime.now(UTC)
    kept = WebhookNotifier("soc", channel.url, secret=channel.secret)
    done = 0
    for item in store.pending_outbox(now, limit=10**9):
        message = Message("bench-ex", now, store.head(), [wire_alert(t) for t in item.transitions])
        if fresh_connections:
            with httpx.Client() as fresh:
                WebhookNotifier("soc", channel.url, secret=channel.secret,
                                client=fresh).send(message)
        else:
            kept.send(message)
        store.mark_delivered(item.id, now)
        done += 1
    return done


def scenario(n: int, port: int, naive: str) -> dict[str, Any]:
    from auditor.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "bench.db") as store:
        fill(store, n)
        before = received(port)
        t0 = time.perf_counter()
        delivered = drain(store, port, naive)
        seconds = time.perf_counter() - t0
        assert delivered == n and received(port) - before == n, (delivered, n)
        assert store.outbox_counts()["pending"] == 0
        fill(store, n)  # again, measured for memory this time (tracemalloc slows it down)
        tracemalloc.start()
        drain(store, port, naive)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"n": n, "naive": naive, "seconds": round(seconds, 3), "per_s": round(n / seconds),
            "tracemalloc_peak_mib": round(peak / 2**20, 2), "peak_rss_mib": round(rss_kib / 1024, 1)}


# -- the orchestration --------------------------------------------------------------

def run_child(n: int, port: int, naive: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", str(n), "--port", str(port), "--naive", naive]
    out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"scenario n={n} naive={naive} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--naive-sizes", type=int, nargs="*", default=[1_000])
    parser.add_argument("--naive-ka-sizes", type=int, nargs="*", default=[10_000, 40_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--naive", default="", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.child:
        print(json.dumps(scenario(args.child, args.port, args.naive)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            port = int(port_file.read_text())
            results = [run_child(n, port, "") for n in args.sizes]
            results += [run_child(n, port, "naive") for n in args.naive_sizes]
            results += [run_child(n, port, "naive-ka") for n in args.naive_ka_sizes]
        finally:
            server.terminate()
            server.wait(10)
    print(f"{'drain':<10}{'rows':>8}{'msg/s':>9}{'seconds':>9}{'tracemalloc MiB':>17}"
          f"{'peak RSS MiB':>14}")
    for r in results:
        print(f"{r['naive'] or 'outbox':<10}{r['n']:>8}{r['per_s']:>9}"
              f"{r['seconds']:>9}{r['tracemalloc_peak_mib']:>17}{r['peak_rss_mib']:>14}")
    ours = [r for r in results if not r["naive"]]
    for r in (r for r in results if r["naive"] and ours):
        mine = min(ours, key=lambda o: abs(o["n"] - r["n"]))
        print(f"outbox ({mine['n']} rows) vs {r['naive']} ({r['n']} rows): "
              f"{mine['per_s'] / r['per_s']:.1f}x the messages/s, tracemalloc peak "
              f"{mine['tracemalloc_peak_mib']} vs {r['tracemalloc_peak_mib']} MiB")


if __name__ == "__main__":
    main()
