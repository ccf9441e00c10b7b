"""The README documents every command and option (`--help` is the source)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from auditor.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}".strip()
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)


COMMANDS = list(_commands(cli))


def test_every_command_is_in_the_readme() -> None:
    missing = [p for p, _ in COMMANDS if f"auditor {p}" not in README]
    assert missing == []


def test_every_option_is_in_the_readme() -> None:
    missing = []
    for path, cmd in COMMANDS:
        for param in cmd.params:
            if isinstance(param, click.Option):
                longs = [o for o in param.opts if o.startswith("--")]
                if longs and not any(o in README for o in longs):
                    missing.append(f"{path} {longs[0]}")
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS])
def test_every_command_has_help(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    cmd = dict(COMMANDS)[path]
    assert (cmd.help or "").strip(), f"{path} has no help text"
