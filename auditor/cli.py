"""Command line. Placeholder until the CLI lands; see README."""

from __future__ import annotations

import sys


def main() -> None:
    print("auditor: not implemented yet", file=sys.stderr)
    sys.exit(2)
