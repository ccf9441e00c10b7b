"""One fault switch that every simulated server checks on every request.

Modes every server knows: "error" (HTTP 500 / a JSON-RPC error), "hang" (no
answer for `hang_seconds`), "garbage" (a malformed body of the right content
type), "close" (drop the connection without answering). Server-specific modes
are named by the server ("page_gap" for Esplora: a chain page that skips
transactions; "bad_value" for a value that is not an integer satoshi amount).
"""

from __future__ import annotations

import threading
from collections.abc import Collection

__all__ = ["Faults", "COMMON_MODES"]

COMMON_MODES = ("error", "hang", "garbage", "close")


class Faults:
    """`set(mode, match, times)`: requests whose endpoint (URL path or RPC method)
    contains `match` get `mode`, all of them or only the next `times`."""

    def __init__(self, hang_seconds: float = 30.0):
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._mode: str | None = None
        self._match = ""
        self._times: int | None = None
        self.applied = 0  # requests that got a fault since the last set()

    def set(self, mode: str, match: str = "", times: int | None = None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every matching request)")
        with self._lock:
            self._mode, self._match, self._times, self.applied = mode, match, times, 0

    def clear(self) -> None:
        with self._lock:
            self._mode, self._match, self._times = None, "", None

    @property
    def mode(self) -> str | None:
        return self._mode

    def pick(self, endpoint: str, specific: Collection[str] = ()) -> str | None:
        """The mode to apply to this request, or None (counts down `times`).
        Server-specific modes apply only where the server lists them in
        `specific` (a "page_gap" is not consumed by a tip request)."""
        if self._mode is None:  # fast path: no lock while no fault is set
            return None
        with self._lock:
            mode = self._mode
            if mode is None or self._match not in endpoint:
                return None
            if mode not in COMMON_MODES and mode not in specific:
                return None
            self.applied += 1
            if self._times is not None:
                self._times -= 1
                if self._times == 0:
                    self._mode, self._match, self._times = None, "", None
            return mode
