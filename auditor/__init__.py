"""custody-auditor: a watch-only custody risk monitor for crypto exchanges."""

__version__ = "0.1.0"
