"""The daemon refreshes URL sanctions lists by itself, once a day, off the cycle's thread.

A cycle never fetches (DESIGN.md): it screens against the cache that `auditor
sanctions update` fills. A daemon left alone for a week would therefore screen
against a week-old list and fire `stale_data sanctions:LIST`; so `auditor run`
also refreshes every URL list at start and then every `EVERY` seconds, in a
thread of its own (a slow download never delays a cycle), one refresh at a time.
A failed fetch keeps the previous copy and is logged; the list's age keeps
counting, so `stale_data` still says when it gets too old.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .settings import Settings

__all__ = ["EVERY", "SanctionsRefresher"]

EVERY = 24 * 3600
log = logging.getLogger("auditor.daemon")


class SanctionsRefresher:
    """`due(now)` after each cycle starts a refresh when one is due (never two at once)."""

    def __init__(self, settings: Settings, refresh: Callable[..., Any] | None = None) -> None:
        from .sanctions_fetch import refresh_lists

        self._settings = settings
        self._refresh = refresh or refresh_lists
        self._next: datetime | None = None  # None: at the first cycle
        self._thread: threading.Thread | None = None
        self.enabled = any(lst.url is not None for lst in settings.sanctions.lists)

    def due(self, now: datetime) -> bool:
        """Start a refresh if one is due; True when one was started."""
        if not self.enabled or (self._next is not None and now < self._next):
            return False
        if self._thread is not None and self._thread.is_alive():
            return False
        self._next = now + timedelta(seconds=EVERY)
        self._thread = threading.Thread(target=self._run, args=(now,), name="sanctions-refresh", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, now: datetime) -> None:
        s = self._settings.sanctions
        cache = s.cache_dir or Path(self._settings.store.path).parent / "sanctions"
        try:
            results = self._refresh(s, cache, now)
        except Exception as e:  # noqa: BLE001 - a refresh problem must not stop monitoring
            log.error("refreshing the sanctions lists failed; `auditor sanctions update` can retry",
                      extra={"fields": {"error": type(e).__name__}})
            return
        for r in results:
            (log.info if r.ok else log.warning)(
                "sanctions list %s: %s", r.label, r.message)
