"""Logging for the daemon: JSON lines off a terminal, text on one; secrets kept out.

`setup_logging()` installs one stderr handler on the root logger. Fields go
in `extra={"fields": {...}}`; a JSON line is `{"ts", "level", "logger",
"msg", "fields"}`. `scrub()` masks known secrets and reduces every URL to
`scheme://host:port` before an exception's text reaches a log.
"""

from __future__ import annotations

import dataclasses
import json as jsonlib
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO

from .settings import Secret, redact_url

__all__ = ["setup_logging", "quiet_noisy_loggers", "scrub", "secrets_of"]

# httpx logs every request URL at INFO: the heartbeat URL carries a token.
_QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "urllib3", "web3")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        obj = {
            "ts": _log_ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "fields": fields,
        }
        return jsonlib.dumps(obj, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k != "traceback")
        line = f"{_log_ts(record.created)} {record.levelname:<7} {record.getMessage()}"
        line = f"{line}  {extra}" if extra else line
        if "traceback" in fields:
            line = f"{line}\n{fields['traceback']}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _log_ts(created: float) -> str:
    at = datetime.fromtimestamp(created, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def setup_logging(
    json: bool | None = None, *, level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Log to stderr: JSON lines when `json` (default: when stderr is not a TTY), else text.

    Idempotent: replaces the handler a previous call installed. Returns the handler.
    """
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(_JsonFormatter() if json else _TextFormatter())
    handler._auditor = True  # type: ignore[attr-defined]  # marks ours for replacement
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_auditor", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_noisy_loggers()
    return handler


def quiet_noisy_loggers() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def secrets_of(obj: object, out: set[str] | None = None) -> set[str]:
    """Every `Secret` value anywhere in a settings tree."""
    out = set() if out is None else out
    if isinstance(obj, Secret):
        if obj.reveal():
            out.add(obj.reveal())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            secrets_of(getattr(obj, f.name), out)
    elif isinstance(obj, dict):
        for v in obj.values():
            secrets_of(v, out)
    elif isinstance(obj, (tuple, list, frozenset, set)):
        for v in obj:
            secrets_of(v, out)
    return out


def scrub(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """Text safe for logs: known secrets masked, every URL reduced to scheme://host:port."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_RE.sub(_redact_match, text)


def _redact_match(m: re.Match[str]) -> str:
    try:
        return redact_url(m.group(0))
    except ValueError:  # e.g. a non-numeric port
        return "<url>"
