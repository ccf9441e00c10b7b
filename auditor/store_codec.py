"""Encoding of what the store writes: canonical JSON, times, alerts and transitions.

Everything stored is JSON without floats (amounts are int base units or
decimal strings), and every time is RFC 3339 UTC text. Columns used for
ordering hold fixed-width times (`db_time`), so text order is time order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from . import units
from .model import Alert, Transition

__all__ = [
    "ALERT_COLUMNS",
    "alert_from_row",
    "alert_to_row",
    "canonical_json",
    "check_json",
    "db_time",
    "dec_text",
    "dumps",
    "dumps_parsed",
    "format_time",
    "parse_dec",
    "parse_time",
    "transition_from_json",
    "transition_to_json",
]

_SCALARS = (str, int, type(None))  # bool is an int


def _bad_leaf(value: object, where: str) -> TypeError:
    kind = type(value).__name__
    if isinstance(value, float):
        hint = "write amounts as int base units and decimals as strings (units.format_decimal)"
    elif isinstance(value, Decimal):
        hint = "write it as a string with units.format_decimal"
    elif isinstance(value, datetime):
        hint = "write it as text with store_codec.format_time"
    else:
        hint = "only str, int, bool, None, lists and dicts with str keys can be stored"
    return TypeError(f"{where}: a {kind} ({value!r:.40}) cannot be stored: {hint}")


def check_json(obj: object, where: str = "payload") -> None:
    """Raise TypeError unless `obj` is plain JSON without floats (paths built only on error)."""
    stack: list[tuple[object, str]] = [(obj, where)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"{path}: key {k!r} is not a string; JSON keys must be text")
                if isinstance(v, (dict, list, tuple)):
                    stack.append((v, f"{path}.{k}"))
                elif not isinstance(v, _SCALARS) or isinstance(v, float):
                    raise _bad_leaf(v, f"{path}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                if isinstance(v, (dict, list, tuple)):
                    stack.append((v, f"{path}[{i}]"))
                elif not isinstance(v, _SCALARS):
                    raise _bad_leaf(v, f"{path}[{i}]")
        elif not isinstance(value, _SCALARS):
            raise _bad_leaf(value, path)


# One encoder instance: json.dumps with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps(obj: object, where: str = "payload") -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 as is, no floats."""
    check_json(obj, where)
    return _CANONICAL.encode(obj)


def dumps_parsed(obj: object) -> str:
    """Canonical text of a value parsed by `json.loads` with floats refused (no re-check)."""
    return _CANONICAL.encode(obj)


def canonical_json(obj: object) -> bytes:
    """The bytes the audit-log hash covers (DESIGN.md, Store)."""
    return dumps(obj).encode("utf-8")


def _utc(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: times must be timezone-aware UTC")
    return dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """RFC 3339 UTC for payloads: "2026-11-24T10:00:00Z" (fraction only when non-zero)."""
    u = _utc(dt)
    base = u.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{u.microsecond:06d}Z" if u.microsecond else f"{base}Z"


def db_time(dt: datetime) -> str:
    """Fixed-width RFC 3339 UTC for columns compared in SQL (text order is time order)."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _opt_time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def dec_text(d: Decimal | None) -> str | None:
    return None if d is None else units.format_decimal(d)


def parse_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def transition_to_json(t: Transition, seq: int | None = None) -> dict[str, Any]:
    """A transition as stored in the audit log and the outbox (and sent to notifiers)."""
    return {
        "seq": seq if seq is not None else t.seq,
        "kind": t.kind,
        "fingerprint": t.fingerprint,
        "rule": t.rule,
        "subject": t.subject,
        "severity": t.severity,
        "at": format_time(t.at),
        "since": format_time(t.since) if t.since else None,
        "summary": t.summary,
        "value": dec_text(t.value),
        "threshold": dec_text(t.threshold),
        "details": dict(t.details),
    }


def transition_from_json(d: dict[str, Any]) -> Transition:
    return Transition(
        kind=d["kind"],
        fingerprint=d["fingerprint"],
        rule=d["rule"],
        subject=d["subject"],
        severity=d["severity"],
        at=parse_time(d["at"]),
        summary=d.get("summary", ""),
        value=parse_dec(d.get("value")),
        threshold=parse_dec(d.get("threshold")),
        since=_opt_time(d.get("since")),
        details=dict(d.get("details") or {}),
        seq=d.get("seq"),
    )


ALERT_COLUMNS = (
    "fingerprint, rule, subject, severity, state, since, last_change, last_notified, "
    "value, threshold, summary, details, acked_by, acked_at, notified_channels"
)


def alert_to_row(a: Alert) -> tuple[object, ...]:
    return (
        a.fingerprint, a.rule, a.subject, a.severity, a.state,
        db_time(a.since), db_time(a.last_change),
        db_time(a.last_notified) if a.last_notified else None,
        dec_text(a.value), dec_text(a.threshold), a.summary,
        dumps(dict(a.details), "alert.details"), a.acked_by,
        db_time(a.acked_at) if a.acked_at else None,
        dumps(list(a.notified_channels), "alert.notified_channels"),
    )


def alert_from_row(r: tuple[Any, ...]) -> Alert:
    return Alert(
        fingerprint=r[0], rule=r[1], subject=r[2], severity=r[3], state=r[4],
        since=parse_time(r[5]), last_change=parse_time(r[6]),
        last_notified=_opt_time(r[7]),
        value=parse_dec(r[8]), threshold=parse_dec(r[9]), summary=r[10],
        details=cast(dict[str, object], json.loads(r[11])), acked_by=r[12],
        acked_at=_opt_time(r[13]), notified_channels=tuple(json.loads(r[14])),
    )
