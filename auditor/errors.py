"""The library's exceptions. Only cli.py turns them into text and exit codes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditorError",
    "ConfigError",
    "ConfigProblem",
    "ChainReadError",
    "InputError",
    "StoreError",
    "StoreLockedError",
    "CycleFailed",
    "DeliveryError",
]


class AuditorError(Exception):
    """Base of every error the auditor raises on purpose. `exit_code` is for the CLI."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: where, what is wrong, how to fix it."""

    file: str
    path: str  # key path, e.g. "wallets[2].descriptors[0]"
    message: str  # what is wrong and how to fix it
    line: int | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}:{key} {self.message}"


class ConfigError(AuditorError):
    """The config (or a file it points to) is invalid. Carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = [p for p in problems if p.severity == "error"]
        self.warnings = [p for p in problems if p.severity != "error"]
        n = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the config:\n{lines}")


class ChainReadError(AuditorError):
    """A chain could not be read (failure, timeout, malformed answer). Never a zero balance."""

    exit_code = 3


class InputError(AuditorError):
    """A non-chain input (ledger, prices) could not be read or is malformed."""

    exit_code = 3


class StoreError(AuditorError):
    exit_code = 3


class StoreLockedError(StoreError):
    """Another process (a running daemon) holds the store's cycle lock."""

    exit_code = 4


class CycleFailed(AuditorError):
    """The cycle could not run (status `failed`)."""

    exit_code = 3


class DeliveryError(AuditorError):
    """A notifier could not deliver. The outbox decides about retries."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable
