"""The alerts of a report: every alert firing at some point in the period, with
its transitions in the period and who acknowledged, silenced or resolved it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..store import Store
from ..store_codec import parse_time
from .period import Period

__all__ = ["alerts_of_period"]

_EVENT_KEYS = ("seq", "kind", "at", "severity", "value", "threshold", "by", "reason", "note",
               "until", "silence_id")
_SEVERITY = {"warning": 1, "critical": 2}
_FIRING = ("firing", "escalated", "repeat", "outflow_reorged")


def _events(history: list[dict[str, Any]], period: Period) -> list[dict[str, Any]]:
    """Events inside the period, led by the one that had it firing when the period began."""
    inside, before = [], None
    for h in history:
        at = h.get("at")
        if at is None:
            continue
        t = parse_time(at)
        if h.get("kind") == "silence":  # a silence counts if it overlaps the period
            if t < period.end and parse_time(h.get("until") or at) > period.start:
                inside.append(h)
        elif t < period.start:
            if h.get("kind") in _FIRING:
                before = h
            elif h.get("kind") == "resolved":
                before = None
        elif t < period.end:
            inside.append(h)
    lead = [{**before, "before_period": True}] if before is not None else []
    return [{k: e[k] for k in (*_EVENT_KEYS, "before_period") if e.get(k) is not None}
            for e in lead + inside]


def _who(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [{k: e.get(k) for k in ("by", "at", "note", "reason", "until")}
            for e in events if e["kind"] == kind and e.get("by")]


def _one(store: Store, fingerprint: str, period: Period) -> dict[str, Any] | None:
    alert = store.get_alert(fingerprint)
    if alert is None:
        return None
    events = _events(store.alert_history(fingerprint), period)
    lifecycle = [e for e in events if e["kind"] not in ("ack", "silence", "unsilence")]
    worst = max((e.get("severity", "warning") for e in lifecycle),
                key=lambda s: _SEVERITY.get(s, 0), default=alert.severity)
    state_at_end = "resolved" if lifecycle and lifecycle[-1]["kind"] == "resolved" else "firing"
    resolved = [e for e in lifecycle if e["kind"] == "resolved"]
    return {
        "fingerprint": fingerprint, "rule": alert.rule, "subject": alert.subject,
        "severity": worst, "state_at_end": state_at_end, "state_now": alert.state,
        "summary": alert.summary,
        "events": events,
        "acknowledged_by": _who(events, "ack"),
        "silenced_by": _who(events, "silence"),
        "resolved_by": [{"by": e.get("by") or "auditor (condition cleared)", "at": e["at"],
                         "reason": e.get("reason")} for e in resolved],
    }


def _first_at(a: dict[str, Any]) -> datetime:
    return parse_time(a["events"][0]["at"]) if a["events"] else datetime.max.replace(tzinfo=UTC)


def alerts_of_period(store: Store, period: Period) -> list[dict[str, Any]]:
    """Most severe first, then by first event."""
    out = [a for fp in store.active_alerts(period.start, period.end)
           if (a := _one(store, fp, period)) is not None]
    out.sort(key=lambda a: (-_SEVERITY.get(a["severity"], 0),
                            _first_at(a), a["fingerprint"]))
    return out
