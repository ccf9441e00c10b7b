"""Benchmark: screen 100,000 transfer counterparties (Ethereum and Bitcoin, 1% listed)
against the sanctions lists with `auditor.sanctions.Screen.match`, against the naive
way (for each counterparty, scan the list and compare each entry case-insensitively).
Target (issue 5): 100,000 counterparties screened in under 0.5 s.

    .venv/bin/python benchmarks/flows_screen.py [--count 100000] [--extra 20000] [--baseline 2000]

The lists: the shipped builtin snapshot plus `--extra` synthetic addresses in a plain
file (a larger list, as a current SDN export or a vendor list would be). `--baseline N`
times the naive way on the first N counterparties and scales it to `--count` (it takes
milliseconds per counterparty). Wall times of one run on a shared machine: run it twice.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from auditor.sanctions import load_screen
from auditor.sanctions_lists import address_kind, builtin_files
from auditor.settings import SanctionsList, SanctionsSettings

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _eth(rng: random.Random) -> str:
    hexa = f"{rng.getrandbits(160):040x}"
    # mixed case, as EIP-55 addresses come from nodes and withdrawal feeds
    return "0x" + "".join(c.upper() if rng.random() < 0.5 else c for c in hexa)


def _btc(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return "bc1q" + "".join(rng.choice(_B32) for _ in range(38))
    return rng.choice("13") + "".join(rng.choice(_B58) for _ in range(33))


def counterparties(count: int, listed: list[tuple[str, str]], rng: random.Random
                   ) -> tuple[list[tuple[str, str]], int]:
    """(chain type, address) pairs, 60% Ethereum; 1% drawn from the lists, in another case
    where the chain compares without case. Returns the pairs and how many are listed."""
    out: list[tuple[str, str]] = []
    hits = 0
    for i in range(count):
        if i % 100 == 7:
            kind, address = rng.choice(listed)
            if kind == "ethereum":
                address = "0x" + address[2:].upper()
            elif address.startswith("bc1"):
                address = address.upper()
            out.append((kind, address))
            hits += 1
        elif rng.random() < 0.6:
            out.append(("ethereum", _eth(rng)))
        else:
            out.append(("bitcoin", _btc(rng)))
    return out, hits


def naive_match(entries: dict[str, list[str]], kind: str, address: str) -> bool:
    """What a first attempt does: compare against every entry, normalising both each time."""
    wanted = address.lower() if kind == "ethereum" or address.lower().startswith("bc1") else address
    for entry in entries[kind]:
        e = entry.lower() if kind == "ethereum" or entry.lower().startswith("bc1") else entry
        if e == wanted:
            return True
    return False


def list_entries(extra: list[str]) -> dict[str, list[str]]:
    """Every entry of the builtin and extra lists as written, by chain type."""
    raw: dict[str, list[str]] = {"ethereum": [], "bitcoin": []}
    for line in [*(w for text in builtin_files().values() for w in text.split()), *extra]:
        kind, _ = address_kind(line)
        if kind is not None:
            raw[kind].append(line)
    return raw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--extra", type=int, default=20_000)
    ap.add_argument("--baseline", type=int, default=2_000)
    args = ap.parse_args()
    rng = random.Random(5)
    extra = [_eth(rng) if i % 2 else _btc(rng) for i in range(args.extra)]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "extra.txt"
        path.write_text("".join(a + "\n" for a in extra))
        lists = [SanctionsList(source="builtin", label="builtin")]
        if extra:
            lists.append(SanctionsList(source=str(path), label="extra", path=path))
        settings = SanctionsSettings(lists=tuple(lists))
        t0 = time.perf_counter()
        screen, problems = load_screen(settings, None)
        load_s = time.perf_counter() - t0
    assert problems == [], problems

    raw = list_entries(extra)
    builtin_only = list_entries([])
    pairs, expected = counterparties(
        args.count, [(k, a) for k, entries in builtin_only.items() for a in entries], rng)

    t0 = time.perf_counter()
    found = sum(1 for kind, address in pairs if screen.match(kind, address))
    screen_s = time.perf_counter() - t0
    assert found == expected, (found, expected)

    n = min(args.baseline, len(pairs))
    t0 = time.perf_counter()
    naive_found = sum(naive_match(raw, k, a) for k, a in pairs[:n])
    naive_s = (time.perf_counter() - t0) * len(pairs) / n
    assert naive_found == sum(1 for k, a in pairs[:n] if screen.match(k, a))

    print(f"lists: builtin + {args.extra:,} extra = {len(screen):,} distinct addresses, "
          f"loaded in {load_s:.3f} s")
    print(f"screened {len(pairs):,} counterparties ({found:,} listed) in {screen_s:.3f} s "
          f"({len(pairs) / screen_s:,.0f}/s); target < 0.5 s: {'ok' if screen_s < 0.5 else 'MISSED'}")
    print(f"naive scan (each entry normalised per lookup; timed on {n:,}, scaled): "
          f"{naive_s:.1f} s; Screen.match is {naive_s / screen_s:,.0f}x faster")
    return 0 if screen_s < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
