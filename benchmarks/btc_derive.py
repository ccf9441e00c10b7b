"""Benchmark: derive 10,000 addresses (and their scripts) per descriptor type with
`auditor.chains.bitcoin.descriptors.derive` (bdkpython) against bitcoinlib's HD
derivation (child public keys, then the address), and check both agree on a
sample. Target (issue 4): 10,000 addresses in under 2 s.

    .venv/bin/python benchmarks/btc_derive.py [--count 10000] [--baseline 10000]

`--baseline N` times bitcoinlib on the first N indexes only and scales the time
to `--count` (bitcoinlib takes ~2 ms per key; the full run of every type takes
minutes). Wall times of one run on a shared machine: run it twice.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("BCL_DATA_DIR", tempfile.mkdtemp(prefix="bcl-"))  # before bitcoinlib
from bitcoinlib import encoding as bcl_enc  # noqa: E402
from bitcoinlib.keys import HDKey  # noqa: E402

from auditor.chains.bitcoin.descriptors import branches, check_descriptor, derive  # noqa: E402

# Account keys of the BIP 39 test mnemonic "abandon … about" (SLIP-132 vectors),
# as xpubs, and two more cosigners for the 2-of-3 multisig.
KEYS = [
    "xpub6BosfCnifzxcFwrSzQiqu2DBVTshkCXacvNsWGYJVVhhawA7d4R5WSWGFNbi8Aw6ZRc1brxMyWMzG3DSSSSoekkudh"
    "Ud9yLb6qx39T9nMdj",
    "xpub6C6nQwHaWbSrzs5tZ1q7m5R9cPK9eYpNMFesiXsYrgc1P8bvLLAet9JfHjYXKjToD8cBRswJXXbbFpXgwsswVPAZzK"
    "Ma1jUp2kVkGVUaJa7",
    "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXY"
    "VUhLv1VMrjPC7PW6V",
]
K = KEYS[2]
TYPES = {
    "pkh": f"pkh({K}/0/*)",
    "sh(wpkh)": f"sh(wpkh({K}/0/*))",
    "wpkh": f"wpkh({K}/0/*)",
    "tr": f"tr({K}/0/*)",
    "wsh(sortedmulti 2-of-3)": "wsh(sortedmulti(2," + ",".join(k + "/0/*" for k in KEYS) + "))",
}


def _bitcoinlib(kind: str, count: int) -> list[str]:
    """Addresses of indexes 0..count-1 the bitcoinlib way (taproot: the untweaked
    key, which is what bitcoinlib 0.7.10 encodes; it costs the same derivation)."""
    nodes = [HDKey(k, network="bitcoin").child_public(0) for k in (KEYS if "multi" in kind else [K])]
    out = []
    for i in range(count):
        pubs = [n.child_public(i).public_byte for n in nodes]
        h = bcl_enc.hash160(pubs[0])
        if kind == "pkh":
            out.append(bcl_enc.pubkeyhash_to_addr_base58(h, prefix=b"\x00"))
        elif kind == "sh(wpkh)":
            out.append(bcl_enc.pubkeyhash_to_addr_base58(bcl_enc.hash160(b"\x00\x14" + h),
                                                         prefix=b"\x05"))
        elif kind == "wpkh":
            out.append(bcl_enc.pubkeyhash_to_addr_bech32(h, prefix="bc"))
        elif kind == "tr":
            out.append(bcl_enc.pubkeyhash_to_addr_bech32(pubs[0][1:], prefix="bc", witver=1,
                                                         checksum_xor=0x2BC830A3))
        else:
            script = b"\x52" + b"".join(b"\x21" + p for p in sorted(pubs)) + b"\x53\xae"
            out.append(bcl_enc.pubkeyhash_to_addr_bech32(hashlib.sha256(script).digest(),
                                                         prefix="bc"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--baseline", type=int, default=None,
                    help="bitcoinlib on this many indexes, scaled to --count (default: all)")
    args = ap.parse_args()
    baseline = min(args.baseline or args.count, args.count)
    logging.getLogger().setLevel(logging.ERROR)  # bitcoinlib logs a warning per call
    print(f"{'descriptor':<26}{'ours (s)':>10}{'bitcoinlib (s)':>16}{'ratio':>8}")
    worst = 0.0
    for kind, text in TYPES.items():
        (branch,) = branches(check_descriptor(text, "bitcoin"))
        t0 = time.perf_counter()
        ours = derive(branch.descriptor, "bitcoin", 0, args.count)
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = _bitcoinlib(kind, baseline)
        base_s = (time.perf_counter() - t0) * args.count / baseline
        if kind != "tr" and [a for a, _ in ours[:baseline]] != theirs:
            print(f"{kind}: the two derivations disagree", file=sys.stderr)
            return 1
        worst = max(worst, ours_s)
        scaled = "" if baseline == args.count else "*"
        print(f"{kind:<26}{ours_s:>10.2f}{base_s:>15.1f}{scaled:1}{base_s / ours_s:>7.1f}x")
    if baseline != args.count:
        print(f"* bitcoinlib timed on {baseline} indexes, scaled to {args.count}")
    print(f"slowest type: {worst:.2f} s for {args.count} addresses (target < 2 s); "
          f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
