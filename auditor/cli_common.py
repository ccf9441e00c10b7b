"""What every CLI module shares: `-c/--config`, loading, error handling, JSON output.

Only the CLI turns `AuditorError` into text and exit codes (`_handle`); the
command modules (`cli`, `cli_alerts`) import these helpers from here.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import AuditorError, ConfigError

__all__ = ["DEFAULT_CONFIG", "config_option", "_config_path", "_load", "_emit_json", "_handle",
           "_who"]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "config/auditor.yaml"


def _config_path(ctx: click.Context) -> Path:
    """`-c` given after the subcommand, else before it, else $AUDITOR_CONFIG, else the default."""
    given = None
    c: click.Context | None = ctx
    while c is not None and given is None:  # the innermost -c wins
        given = (c.params or {}).get("config")
        c = c.parent
    return Path(given or os.environ.get("AUDITOR_CONFIG") or DEFAULT_CONFIG)


def config_option(f: F) -> F:
    """`-c/--config` accepted before or after the subcommand."""
    return click.option("-c", "--config", "config", metavar="FILE", default=None,
                        help=f"Config file (default: $AUDITOR_CONFIG or {DEFAULT_CONFIG}).")(f)


def _load(ctx: click.Context) -> Any:
    from .config import load_config

    path = _config_path(ctx)
    settings = load_config(path)
    for w in settings.warnings:
        click.echo(w, err=True)
    return settings


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _handle(f: F) -> F:
    """Run a command; AuditorError → message on stderr and its exit code."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ConfigError as e:
            for p in e.problems:
                click.echo(f"error: {p}", err=True)
            for p in e.warnings:
                click.echo(str(p), err=True)
            click.echo(f"{len(e.problems)} problem(s); fix them and run `auditor check-config`.", err=True)
            sys.exit(2)
        except AuditorError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


def _who(by: str | None) -> str:
    """Who acts: `--by`, else the OS user (written to the audit log)."""
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user database in some containers
        return f"uid:{os.getuid()}"
