"""Times as text: the one RFC 3339 form every JSON object, message and record uses."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339", "parse_time"]


def rfc3339(at: datetime) -> str:
    """`at` as RFC 3339 UTC to the second with a `Z`: 2026-11-24T10:00:00Z."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: the auditor passes timezone-aware UTC times only")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """RFC 3339 with a timezone ("2026-11-24T10:00:00Z") to an aware UTC datetime."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; write it like 2026-11-24T10:00:00Z")
    return t.astimezone(UTC)
