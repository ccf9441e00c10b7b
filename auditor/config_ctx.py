"""The problem collector and typed readers every config section uses.

Validation never stops at the first problem: each reader records what is
wrong (with the key path, its YAML line and how to fix it) and returns None,
and the caller carries on with the next key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import units
from .config_yaml import YamlFloat, index, join
from .errors import ConfigProblem

__all__ = ["SEVERITIES", "Ctx", "not_supported"]

SEVERITIES = ("warning", "critical")
_LAST_SEGMENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")


def not_supported(key: str, hint: str = "") -> str:
    extra = f" {hint}" if hint else ""
    return f"`{key}` is not supported yet (it is planned); remove it to continue.{extra}"


def _who(who: str, message: str) -> str:
    return f"{who}: {message}" if who else message


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, int):
        return "a number"
    return "text"


class Ctx:
    """Collects every problem of one config file."""

    def __init__(self, file: str, lines: Mapping[str, int], base_dir: Path,
                 env: Mapping[str, str]):
        self.file = file
        self.lines = lines
        self.base_dir = base_dir
        self.env = env
        self.problems: list[ConfigProblem] = []
        # Paths already reported by a pre-pass (missing ${VAR}, private key): later
        # checks of the same value would only repeat the problem (or echo the key).
        self.muted: set[str] = set()

    # -- recording ---------------------------------------------------------
    def line(self, path: str) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _LAST_SEGMENT.sub("", path) if _LAST_SEGMENT.search(path) else ""

    def error(self, path: str, message: str, who: str = "") -> None:
        if path in self.muted:
            return
        self.problems.append(ConfigProblem(self.file, path, _who(who, message), self.line(path)))

    def warn(self, path: str, message: str, who: str = "") -> None:
        if path in self.muted:
            return
        self.problems.append(
            ConfigProblem(self.file, path, _who(who, message), self.line(path), "warning"))

    def error_once(self, path: str, message: str) -> None:
        """Report a problem of a value and mute later checks of it."""
        self.error(path, message)
        self.muted.add(path)

    def error_count(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    def resolve_path(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    # -- structure ---------------------------------------------------------
    def mapping(self, path: str, value: Any, *, keys: Collection[str],
                required: Collection[str] = (), unsupported: Mapping[str, str] | None = None,
                secrets: Collection[str] = (), who: str = "") -> dict[str, Any] | None:
        """Check a mapping's keys; read `<secret>_file` twins. None if not a mapping."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping (key: value), got {_kind(value)}", who)
            return None
        unsupported = unsupported or {}
        allowed = set(keys) | {f"{s}_file" for s in secrets}
        out: dict[str, Any] = {}
        for key, v in value.items():
            p = join(path, key)
            if key in unsupported:
                self.error(p, not_supported(key, unsupported[key]), who)
            elif key not in allowed:
                self.error(p, self._unknown(key, allowed), who)
            else:
                out[key] = v
        for s in secrets:
            self._secret_file(path, out, s, who)
        for key in required:
            if out.get(key) is None and key not in value:
                self.error(path, f"`{key}` is required here; add `{key}: …`", who)
        return out

    def _unknown(self, key: str, allowed: Iterable[str]) -> str:
        options = sorted(allowed)
        close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
        if close:
            return f"unknown key `{key}`; did you mean `{close[0]}`?"
        listed = ", ".join(f"`{o}`" for o in options) or "none"
        return f"unknown key `{key}`; the keys allowed here are {listed}"

    def _secret_file(self, path: str, out: dict[str, Any], name: str, who: str) -> None:
        twin = f"{name}_file"
        if twin not in out:
            return
        p = join(path, twin)
        if name in out:
            self.error(p, f"`{name}` and `{twin}` are both set; keep only one", who)
            del out[twin]
            return
        ref = out.pop(twin)
        if not isinstance(ref, str) or not ref:
            self.error(p, "expected the path of a file holding the secret", who)
            return
        file = self.resolve_path(ref)
        try:
            content = file.read_text(encoding="utf-8").strip()
        except OSError as e:
            self.error(p, f"cannot read {file}: {e.strerror or e}; create the file or fix "
                          "the path (relative paths start at the config file's directory)", who)
            return
        if not content:
            self.error(p, f"{file} is empty; write the {name} into it", who)
            return
        out[name] = content

    # -- scalars -----------------------------------------------------------
    def text(self, path: str, value: Any, who: str = "", *, pattern: re.Pattern[str] | None = None,
             hint: str = "") -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"expected text, got {_kind(value)}", who)
            return None
        if pattern is not None and not pattern.match(value):
            self.error(path, f"{value!r} is not valid here; {hint}", who)
            return None
        return value

    def integer(self, path: str, value: Any, who: str = "", *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        if isinstance(value, str) and value.strip().isdigit():  # e.g. from ${VAR}
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(path, f"expected a whole number, got {_kind(value)}", who)
            return None
        if minimum is not None and value < minimum:
            self.error(path, f"{value} is too small; use at least {minimum}", who)
            return None
        if maximum is not None and value > maximum:
            self.error(path, f"{value} is too large; use at most {maximum}", who)
            return None
        return value

    def duration(self, path: str, value: Any, who: str = "", *,
                 minimum: int = 0) -> int | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = value.text if isinstance(value, YamlFloat) else str(value)
            self.error(path, f"{text} has no unit; write {text}s (units: s, m, h, d, w)", who)
            return None
        try:
            seconds = units.parse_duration(value)
        except ValueError:
            self.error(path, f"{value!r} is not a duration; write a number and a unit: "
                             "30s, 10m, 2h, 7d", who)
            return None
        if seconds < minimum:
            self.error(path, f"{value} is too short; use at least "
                             f"{units.format_duration(minimum)}", who)
            return None
        return seconds

    def decimal(self, path: str, value: Any, who: str = "", *, positive: bool = False,
                percent: bool = False) -> Decimal | None:
        if isinstance(value, float):
            text = value.text if isinstance(value, YamlFloat) else repr(value)
            self.error(path, f'write "{text}" in quotes: floats lose precision', who)
            return None
        try:
            d = units.parse_percent(value) if percent else units.parse_decimal(value)
        except ValueError:
            shape = '"5%" or "0.05"' if percent else 'a decimal number such as "400.5"'
            self.error(path, f"{value!r} is not a number; write {shape}", who)
            return None
        if d < 0 or (positive and d == 0):
            bound = "greater than 0" if positive else "0 or more"
            self.error(path, f"{value} must be {bound}", who)
            return None
        return d

    def percent(self, path: str, value: Any, who: str = "", *,
                at_most_one: bool = False) -> Decimal | None:
        d = self.decimal(path, value, who, percent=True)
        if d is not None and at_most_one and d > 1:
            self.error(path, f"{value} is more than 100%; a percentage is written \"5%\" "
                             "or as a fraction \"0.05\"", who)
            return None
        return d

    def choice(self, path: str, value: Any, options: Collection[str], who: str = "") -> str | None:
        if isinstance(value, str) and value in options:
            return value
        listed = " | ".join(options)
        close = difflib.get_close_matches(str(value), list(options), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        self.error(path, f"{value!r} is not one of {listed}{hint}", who)
        return None

    def text_list(self, path: str, value: Any, who: str = "", *,
                  allow_single: bool = True) -> list[str] | None:
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {_kind(value)}; write [a, b]", who)
            return None
        out = []
        for i, item in enumerate(value):
            t = self.text(index(path, i), item, who)
            if t is not None:
                out.append(t)
        return out if len(out) == len(value) else None

    def severity_list(self, path: str, value: Any, who: str = "") -> list[str] | None:
        items = self.text_list(path, value, who)
        if items is None:
            return None
        ok = [self.choice(index(path, i), s, SEVERITIES, who) for i, s in enumerate(items)]
        return [s for s in ok if s is not None] if None not in ok else None
