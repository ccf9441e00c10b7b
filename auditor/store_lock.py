"""The cycle lock: one cycle writer per store (a daemon, or `poll --once`).

An OS file lock (flock on `<db path>.lock`), so the kernel releases it when
the holding process dies; no stale lock files to clean up. CLI writes (ack,
resolve, silence) take no cycle lock: the database serialises them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreLockedError

__all__ = ["cycle_lock", "lock_path"]


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    p = Path(db_path)
    return p.with_name(p.name + ".lock")


@contextmanager
def cycle_lock(db_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the store's cycle lock for the block; raise StoreLockedError if another holds it."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLockedError(
                f"another auditor process (a running daemon?) holds the cycle lock on {db_path}; "
                "stop it or wait for it to finish, or point store.path at another file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for humans: who holds it
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
