"""Silences: which alerts a person may mute, for how long, and what a silence mutes.

DESIGN.md "Alerts": silences last at most 24 h, carry who and why, and only
state rules other than `stale_data` can be silenced. A silenced theft alarm
(`hot_drain`, `cold_outflow`, …) is exactly what an intruder on the host
wants, and a silenced `stale_data` would blind every other rule; those are
refused. While a silence is active, the transitions it covers are still
computed, stored and audit-logged (marked `details.silenced`), but not
delivered. It covers `firing`, `repeat` and `resolved` (a resolved goes out
anyway if an earlier firing reached channels) at or below the silence's
severity; an `escalated` is always delivered. Pure: no I/O, `now` passed in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from .errors import AuditorError
from .model import SEVERITY_RANK, Transition
from .times import rfc3339

__all__ = [
    "MAX_SILENCE_S",
    "SILENCEABLE_RULES",
    "Silence",
    "SilenceRefused",
    "apply_silences",
    "check_silence",
    "covering",
    "silence_json",
]

MAX_SILENCE_S = 24 * 3600
SILENCEABLE_RULES = frozenset({"hot_ratio", "asset_hot_ratio", "guarantee_coverage",
                               "reserve_coverage", "commingling", "hot_floor", "daily_record"})
_MUTED_KINDS = frozenset({"firing", "repeat", "resolved"})


class SilenceRefused(AuditorError):
    """A silence that may not be made (protected rule, too long, no reason): usage error."""

    exit_code = 2


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    fingerprint: str | None  # None: every subject of `rule`
    subject: str | None
    severity: str  # the highest severity it mutes
    created_at: datetime
    ends_at: datetime
    by: str
    reason: str
    seq: int  # audit seq of the `silence` record
    ended_at: datetime | None = None  # ended early by `alerts unsilence`
    ended_by: str | None = None
    end_reason: str | None = None
    end_seq: int | None = None

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and self.created_at <= now < self.ends_at

    def matches(self, fingerprint: str, rule: str) -> bool:
        return self.fingerprint == fingerprint if self.fingerprint else self.rule == rule


def check_silence(rule: str, seconds: int, reason: str) -> None:
    """Raise SilenceRefused unless `rule` may be silenced for `seconds` with `reason`."""
    if rule not in SILENCEABLE_RULES:
        why = ("stale_data means the auditor cannot see: muting it would blind every other rule"
               if rule == "stale_data" else
               "it is an event rule (a theft, an unapproved movement, a changed config or a "
               "lost notification): muting it is what an intruder would want")
        raise SilenceRefused(
            f"{rule} cannot be silenced: {why}. Only state rules can be silenced "
            f"({', '.join(sorted(SILENCEABLE_RULES))}); acknowledge the alert instead "
            "(`auditor alerts ack FP`), which stops its repeats only")
    if seconds <= 0:
        raise SilenceRefused("--for must be a positive duration such as 30m or 2h")
    if seconds > MAX_SILENCE_S:
        raise SilenceRefused(f"a silence lasts at most 24h (asked for {seconds // 3600}h"
                             f"{seconds % 3600 // 60:02d}m); give --for 24h or less and "
                             "silence again when it ends if you still need to")
    if not reason.strip():
        raise SilenceRefused("give a --reason: who reads the audit log must know why")


def covering(silences: Sequence[Silence], fingerprint: str, rule: str,
             now: datetime) -> Silence | None:
    """The active silence covering an alert (the one ending last), if any."""
    found = [s for s in silences if s.active(now) and s.matches(fingerprint, rule)]
    return max(found, key=lambda s: s.ends_at, default=None)


def apply_silences(transitions: Sequence[Transition], silences: Sequence[Silence],
                   now: datetime, notified: Collection[str] = ()
                   ) -> tuple[list[Transition], set[int]]:
    """Mark the transitions active silences cover; return them and the indexes not to
    deliver. `notified`: fingerprints whose firing reached channels (their resolved
    is delivered anyway, so receivers can close what they opened)."""
    out: list[Transition] = []
    muted: set[int] = set()
    for i, t in enumerate(transitions):
        s = _silencing(t, silences, now, notified)
        if s is None:
            out.append(t)
            continue
        muted.add(i)
        out.append(replace(t, details={**t.details, "silenced": {
            "id": s.id, "until": _rfc3339(s.ends_at), "by": s.by, "reason": s.reason}}))
    return out, muted


def _silencing(t: Transition, silences: Sequence[Silence], now: datetime,
               notified: Collection[str]) -> Silence | None:
    if t.kind not in _MUTED_KINDS or t.rule not in SILENCEABLE_RULES:
        return None
    if t.kind == "resolved" and t.fingerprint in notified:
        return None
    for s in silences:
        if (s.active(now) and s.matches(t.fingerprint, t.rule)
                and SEVERITY_RANK[t.severity] <= SEVERITY_RANK[s.severity]):
            return s
    return None


def silence_json(s: Silence, now: datetime) -> dict[str, object]:
    """One row of `auditor alerts silences` (also its --json objects)."""
    state = "active" if s.active(now) else ("ended" if s.ended_at else
                                             "pending" if now < s.created_at else "expired")
    return {"id": s.id, "state": state, "rule": s.rule, "fingerprint": s.fingerprint,
            "subject": s.subject, "severity": s.severity, "created_at": _rfc3339(s.created_at),
            "ends_at": _rfc3339(s.ends_at), "by": s.by, "reason": s.reason,
            "ended_at": _rfc3339(s.ended_at) if s.ended_at else None, "ended_by": s.ended_by,
            "end_reason": s.end_reason}


_rfc3339 = rfc3339
