"""What a person does to alerts from the CLI: acknowledge, resolve, silence, unsilence.

Each is written to the audit log and announced on the critical route in the
same transaction (DESIGN.md "Alerts"). Event rules (`hot_drain`,
`cold_outflow`, `config_changed`, …) never resolve by evaluation: a person
resolves them, and the resolution also goes to the channels that got the
firing. Acknowledging stops repeats only. Silences: see `silences`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from . import alerting
from .errors import AuditorError
from .model import SEVERITY_RANK, Alert, Transition
from .rules import EVENT_RULES, STATE_RULES
from .settings import Settings
from .silences import Silence, SilenceRefused, check_silence

__all__ = ["AlertOpsStore", "ack_by_hand", "critical_channels", "notice", "resolve_by_hand",
           "silence_by_hand", "unsilence_by_hand"]


class AlertOpsStore(Protocol):
    """The part of `Store` these operations use (tests pass doubles)."""

    def get_alert(self, fingerprint: str) -> Alert | None: ...

    def list_alerts(self, include_resolved: bool = False) -> list[Alert]: ...

    def ack_alert(self, fingerprint: str, by: str, note: str, at: datetime,
                  notice: dict[str, Any] | None = None, channels: Sequence[str] = ()) -> int: ...

    def resolve_alert(self, fingerprint: str, by: str, reason: str, at: datetime,
                      transition: Transition, alert: Alert | None = None,
                      channels: list[str] | tuple[str, ...] = ()) -> int: ...

    def add_silence(self, silence: Silence, notice: dict[str, Any],
                    channels: Sequence[str]) -> Silence: ...

    def end_silence(self, silence_id: int, by: str, reason: str, at: datetime,
                    notice: dict[str, Any], channels: Sequence[str]) -> Silence: ...

    def get_silence(self, silence_id: int) -> Silence | None: ...


def critical_channels(settings: Settings) -> list[str]:
    """Channels of every route that takes critical alerts (the `log` channels if none)."""
    out: list[str] = []
    for r in settings.alerts.routes:
        if "critical" in r.severity:
            out += [c for c in r.channels if c not in out]
    if not out:
        out = [c.name for c in settings.alerts.channels if c.type == "log"]
    return out


def notice(kind: str, fingerprint: str, rule: str, subject: str, severity: str, at: datetime,
           summary: str, **extra: object) -> dict[str, Any]:
    """A transition-like object for the outbox (store_codec form; the store sets `seq`)."""
    return {"seq": None, "kind": kind, "fingerprint": fingerprint, "rule": rule,
            "subject": subject, "severity": severity, "at": alerting.rfc3339(at), "since": None,
            "summary": summary, "value": None, "threshold": None, "details": {}, **extra}


def resolve_by_hand(settings: Settings, store: AlertOpsStore, fp: str, by: str, reason: str,
                    now: datetime) -> int:
    alert = _firing(store, fp)
    if not reason.strip():
        raise AuditorError("give a --reason: it is written to the audit log")
    new_alert, transition = alerting.manual_resolve(alert, now, by, reason)
    channels = list(dict.fromkeys([*alert.notified_channels, *critical_channels(settings)]))
    return store.resolve_alert(fp, by, reason, now, transition, new_alert, channels)


def ack_by_hand(settings: Settings, store: AlertOpsStore, fp: str, by: str, note: str,
                now: datetime) -> int:
    """Acknowledge (repeats stop; escalation and new events still page) and announce it."""
    alert = _firing(store, fp, "acknowledge")
    text = (f"{alert.rule} {alert.subject} acknowledged by {by}"
            + (f": {note}" if note else "") + ". Its repeats stop; an escalation still pages.")
    n = notice("acknowledged", fp, alert.rule, alert.subject, alert.severity, now, text,
               by=by, note=note)
    return store.ack_alert(fp, by, note, now, n, critical_channels(settings))


def silence_by_hand(settings: Settings, store: AlertOpsStore, target: str, seconds: int, by: str,
                    reason: str, now: datetime) -> Silence:
    """Silence a rule (every subject) or one alert (`target` is then its fingerprint)."""
    alert: Alert | None = None
    if target in EVENT_RULES | STATE_RULES:
        rule = target
    else:
        alert = store.get_alert(target)
        if alert is None:
            raise SilenceRefused(f"{target} is neither a rule id nor an alert fingerprint")
        rule = alert.rule
    check_silence(rule, seconds, reason)
    severity = alert.severity if alert is not None else _worst_firing(store, rule)
    s = Silence(id=0, rule=rule, fingerprint=alert.fingerprint if alert else None,
                subject=alert.subject if alert else None, severity=severity, created_at=now,
                ends_at=now + timedelta(seconds=seconds), by=by, reason=reason, seq=0)
    what = f"{rule} {alert.subject}" if alert else f"{rule} (every subject)"
    text = (f"{what} silenced by {by} until {alerting.rfc3339(s.ends_at)}: {reason}. Its "
            f"{severity} firings and repeats are stored but not sent; an escalation is sent.")
    n = notice("silenced", s.fingerprint or _rule_fp(settings, rule), rule,
               s.subject or "*", severity, now, text, by=by, reason=reason,
               until=alerting.rfc3339(s.ends_at))
    return store.add_silence(s, n, critical_channels(settings))


def unsilence_by_hand(settings: Settings, store: AlertOpsStore, silence_id: int, by: str, reason: str,
                      now: datetime) -> Silence:
    s = store.get_silence(silence_id)
    if s is None:
        raise AuditorError(f"no silence with id {silence_id}; see `auditor alerts silences --all`")
    if not reason.strip():
        raise SilenceRefused("give a --reason: it is written to the audit log")
    text = (f"silence {s.id} of {s.rule} {s.subject or '(every subject)'} ended early by {by}: "
            f"{reason}. Its alerts are sent again.")
    n = notice("unsilenced", s.fingerprint or _rule_fp(settings, s.rule), s.rule,
               s.subject or "*", s.severity, now, text, by=by, reason=reason)
    return store.end_silence(silence_id, by, reason, now, n, critical_channels(settings))


def _firing(store: AlertOpsStore, fp: str, verb: str = "resolve") -> Alert:
    alert: Alert | None = store.get_alert(fp)
    if alert is None:
        raise AuditorError(f"no alert with fingerprint {fp}")
    if alert.state != "firing":
        raise AuditorError(f"alert {fp[:12]} ({alert.rule} {alert.subject}) is already "
                           f"resolved; there is nothing to {verb}")
    return alert


def _worst_firing(store: AlertOpsStore, rule: str) -> str:
    """A rule silence mutes up to the worst severity of the rule's firing alerts (warning if
    none), so a later rise to critical is still sent."""
    found = [a.severity for a in store.list_alerts() if a.rule == rule]
    return max(found, key=lambda s: SEVERITY_RANK[s], default="warning")


def _rule_fp(settings: Settings, rule: str) -> str:
    return alerting.fingerprint(settings.exchange.id, rule, "*")
