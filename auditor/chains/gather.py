"""Run one task per provider concurrently, bounded by a deadline (shared by the chain clients)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["gather"]

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
log = logging.getLogger(__name__)


def gather(tasks: Mapping[str, Callable[[], T]], deadline: float | None, failure: type[E],
           make_failure: Callable[[str, str], E], thread_prefix: str) -> dict[str, T | E]:
    """label → the task's result, or a `failure` instance: the one it raised, or
    `make_failure(label, reason)` when it was not done by `deadline` (a monotonic time)
    or raised anything else (logged: a bug must not become a silent zero)."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(tasks)), thread_name_prefix=thread_prefix)
    try:
        futures = {label: pool.submit(task) for label, task in tasks.items()}
        wait(futures.values(), timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        out: dict[str, T | E] = {}
        for label, future in futures.items():
            if not future.done():
                out[label] = make_failure(label, "no answer before the read's deadline")
                continue
            exc = future.exception()
            if isinstance(exc, failure):
                out[label] = exc
            elif exc is not None:
                log.error("provider %s: unexpected %r", label, exc, exc_info=exc)
                out[label] = make_failure(label, f"unexpected {type(exc).__name__} while reading")
            else:
                out[label] = future.result()
        return out
    finally:
        # Never wait for a stuck provider: its own timeouts end its thread.
        pool.shutdown(wait=False, cancel_futures=True)
