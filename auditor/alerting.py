"""Pure alert lifecycle: evaluations + open alerts → new states and transitions.

DESIGN.md "Alerts". A new finding fires; a higher severity escalates; a lower
severity of a state rule is stored without a transition (it keeps firing at
the lower severity); an alert still firing repeats every `repeat_every`
unless acknowledged; a state-rule alert whose subject was evaluated (covered)
without a finding resolves. Event-rule alerts never resolve here: a person
resolves them (`manual_resolve`). No I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from . import units
from .errors import AuditorError
from .model import SEVERITY_RANK, Alert, Evaluation, Finding, Transition
from .rules import EVENT_RULES, RATIO_RULES
from .settings import RouteSettings
from .times import rfc3339

__all__ = [
    "format_value",
    "AlertUpdate",
    "fingerprint",
    "advance",
    "manual_resolve",
    "route",
    "matching_routes",
    "repeat_interval",
    "alert_json",
    "transition_json",
    "rfc3339",
]


@dataclass
class AlertUpdate:
    alerts: list[Alert] = field(default_factory=list)  # new or changed states to persist
    transitions: list[Transition] = field(default_factory=list)


def fingerprint(exchange_id: str, rule: str, subject: str) -> str:
    """Lowercase hex sha256 of UTF-8 `exchange_id \\n rule \\n subject`."""
    return hashlib.sha256(f"{exchange_id}\n{rule}\n{subject}".encode()).hexdigest()


def advance(
    evaluations: Sequence[Evaluation],
    open_alerts: Mapping[str, Alert],
    now: datetime,
    exchange_id: str,
    repeat_every: int,
    partial: bool,
    event_rules: frozenset[str] = EVENT_RULES,
    repeat_for: Callable[[Alert], int] | None = None,
) -> AlertUpdate:
    """One cycle's lifecycle step.

    `open_alerts`: fingerprint → alert currently firing. Resolution needs the
    subject in the rule's `covered` set this cycle; `covers_all` counts only
    on a complete cycle: when `partial`, only subjects a rule says it actually
    evaluated resolve, so missing inputs never resolve anything. A rule with
    no evaluation this cycle changes nothing but repeats. `repeat_every` ≤ 0
    turns repeats off. `repeat_for(alert)`, when given, is the repeat interval
    of that alert (its routes' `repeat_every`, see `repeat_interval`) and
    replaces `repeat_every`.
    """
    every = repeat_for or (lambda _a: repeat_every)
    findings = _worst_per_fingerprint(evaluations, exchange_id)
    evaluated = _coverage(evaluations, partial)
    out = AlertUpdate()
    for fp, f in findings.items():
        cur = open_alerts.get(fp)
        if cur is None or cur.state != "firing":
            alert = _new_alert(fp, f, now)
            out.alerts.append(alert)
            out.transitions.append(_transition("firing", alert, now))
            continue
        alert, t = _update(cur, f, now, f.rule in event_rules)
        alert, t = _maybe_repeat(alert, t, now, every(alert))
        _collect(out, cur, alert, t)
    for fp, cur in open_alerts.items():
        if fp in findings or cur.state != "firing":
            continue
        if cur.rule not in event_rules and cur.subject in evaluated.get(cur.rule, ()):
            alert = replace(cur, state="resolved", last_change=now)
            out.alerts.append(alert)
            out.transitions.append(_transition("resolved", alert, now))
            continue
        alert, t = _maybe_repeat(cur, None, now, every(cur))
        _collect(out, cur, alert, t)
    return out


class _All(frozenset[str]):
    """Every subject (a rule that covered all of them on a complete cycle)."""

    def __contains__(self, item: object) -> bool:
        return True


def _coverage(evaluations: Sequence[Evaluation], partial: bool) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for ev in evaluations:
        if ev.covers_all and not partial:
            out[ev.rule] = _All()
        elif not isinstance(out.get(ev.rule), _All):
            out[ev.rule] = out.get(ev.rule, frozenset()) | ev.covered
    return out


def _worst_per_fingerprint(evaluations: Sequence[Evaluation],
                           exchange_id: str) -> dict[str, Finding]:
    """One finding per fingerprint: the most severe (the first among equals)."""
    out: dict[str, Finding] = {}
    for ev in evaluations:
        for f in ev.findings:
            fp = fingerprint(exchange_id, f.rule, f.subject)
            if fp not in out or SEVERITY_RANK[f.severity] > SEVERITY_RANK[out[fp].severity]:
                out[fp] = f
    return out


def _new_alert(fp: str, f: Finding, now: datetime) -> Alert:
    return Alert(fingerprint=fp, rule=f.rule, subject=f.subject, severity=f.severity,
                 state="firing", since=now, last_change=now, last_notified=now, value=f.value,
                 threshold=f.threshold, summary=f.summary, details=dict(f.details))


def _update(cur: Alert, f: Finding, now: datetime, event: bool) -> tuple[Alert, Transition | None]:
    """Apply this cycle's finding to a firing alert."""
    rise = SEVERITY_RANK[f.severity] - SEVERITY_RANK[cur.severity]
    facts = dict(severity=f.severity, value=f.value, threshold=f.threshold, summary=f.summary,
                 details=dict(f.details))
    if rise > 0:
        # an acknowledgement covers the severity it was given at: escalation pages again
        alert = replace(cur, **facts, last_change=now, last_notified=now,  # type: ignore[arg-type]
                        acked_by=None, acked_at=None)
        return alert, _transition("escalated", alert, now)
    if rise < 0:
        if event:
            return cur, None  # the worse event still stands
        return replace(cur, **facts, last_change=now), None  # type: ignore[arg-type]
    return replace(cur, **facts), None  # type: ignore[arg-type]


def _maybe_repeat(alert: Alert, t: Transition | None, now: datetime,
                  repeat_every: int) -> tuple[Alert, Transition | None]:
    if t is not None or repeat_every <= 0 or alert.acked_at is not None or alert.acked_by:
        return alert, t
    last = alert.last_notified or alert.since
    if (now - last).total_seconds() < repeat_every:
        return alert, None
    alert = replace(alert, last_notified=now)
    return alert, _transition("repeat", alert, now)


def _collect(out: AlertUpdate, before: Alert, after: Alert, t: Transition | None) -> None:
    if after != before:
        out.alerts.append(after)
    if t is not None:
        out.transitions.append(t)


def _transition(kind: str, a: Alert, now: datetime, **details: object) -> Transition:
    return Transition(kind=kind, fingerprint=a.fingerprint, rule=a.rule,  # type: ignore[arg-type]
                      subject=a.subject, severity=a.severity, at=now, summary=a.summary,
                      value=a.value, threshold=a.threshold, since=a.since,
                      details=dict(a.details) | details)


def manual_resolve(alert: Alert, now: datetime, by: str, reason: str) -> tuple[Alert, Transition]:
    """`auditor alerts resolve FP --reason …`: any firing alert, event rules included."""
    if alert.state != "firing":
        raise AuditorError(f"alert {alert.fingerprint} is already resolved; nothing to do")
    if not reason.strip():
        raise AuditorError("a reason is required to resolve an alert: give --reason '…'")
    resolved = replace(alert, state="resolved", last_change=now)
    return resolved, _transition("resolved", resolved, now, resolved_by=by, reason=reason)


# --- routing -----------------------------------------------------------------------

_WALLET_ASSET_RULES = frozenset({"hot_drain", "cold_outflow"})
_ASSET_RULES = frozenset({"asset_hot_ratio", "guarantee_coverage", "reserve_coverage",
                          "commingling", "hot_floor"})
_TX_RULES = frozenset({"unknown_destination", "sanctioned_counterparty", "large_outflow",
                       "unmatched_outflow"})


def _facets(t: Transition | Alert, wallet_chain: Mapping[str, str]) -> tuple[
        str | None, str | None, str | None]:
    """(wallet, asset, chain) of a transition or alert, from its details or its subject."""
    wallet = asset = chain = None
    s = t.subject
    if t.rule in _WALLET_ASSET_RULES and "/" in s:
        wallet, asset = s.split("/", 1)
    elif t.rule in _ASSET_RULES:
        asset = s
    elif t.rule == "safe_changed":
        wallet = s
    elif t.rule in _TX_RULES:
        chain = s.split(":", 1)[0]
    elif t.rule == "stale_data":
        if s.startswith("prices:"):
            asset = s.split(":", 1)[1]
        elif ":" in s and not s.startswith("sanctions:"):
            chain, rest = s.split(":", 1)
            wallet, _, asset = rest.partition("/")
        elif s not in ("liabilities", "cycles") and ":" not in s:
            chain = s
    d = t.details
    wallet = _str(d.get("wallet")) or wallet
    asset = _str(d.get("asset")) or asset
    chain = _str(d.get("chain")) or chain or (wallet_chain.get(wallet) if wallet else None)
    return wallet, asset or None, chain


def _str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def matching_routes(item: Transition | Alert, routes: Sequence[RouteSettings],
                    wallet_chain: Mapping[str, str]) -> list[RouteSettings]:
    """The routes an alert (or transition) goes to, like Alertmanager's: in order, the
    first match takes it and the search stops there unless that route has `continue_`.

    A route matches when the severity is listed and each non-empty filter (rule,
    chain, wallet, asset) contains the item's.
    """
    wallet, asset, chain = _facets(item, wallet_chain)
    out: list[RouteSettings] = []
    for r in routes:
        if item.severity not in r.severity:
            continue
        if not all(not allowed or value in allowed for allowed, value in (
                (r.rule, item.rule), (r.chain, chain), (r.wallet, wallet), (r.asset, asset))):
            continue
        out.append(r)
        if not r.continue_:
            break
    return out


def route(transition: Transition, routes: Sequence[RouteSettings],
          wallet_chain: Mapping[str, str],
          notified_channels: Sequence[str] | None = None) -> list[str]:
    """Channel names for a transition, in route order, without duplicates (see
    `matching_routes`). A `resolved` goes to the channels that got the firing when
    `notified_channels` is given (non-empty)."""
    if transition.kind == "resolved" and notified_channels:
        return list(dict.fromkeys(notified_channels))
    names = [c for r in matching_routes(transition, routes, wallet_chain) for c in r.channels]
    return list(dict.fromkeys(names))


def repeat_interval(alert: Alert | Transition, routes: Sequence[RouteSettings],
                    wallet_chain: Mapping[str, str], default: int) -> int:
    """Seconds between repeats of a firing alert: the shortest `repeat_every` of the
    routes it goes to (a route without one uses `default`, alerts.repeat_every);
    `default` when no route takes it."""
    found = [r.repeat_every if r.repeat_every is not None else default
             for r in matching_routes(alert, routes, wallet_chain)]
    return min(found, default=default)


# --- JSON ----------------------------------------------------------------------------


def format_value(rule: str, v: object) -> str | None:
    """A finding's value or threshold as JSON text: ratios rounded to 12 places, else exact."""
    if v is None:
        return None
    d = v if isinstance(v, Decimal) else units.parse_decimal(v)  # type: ignore[arg-type]
    return units.format_ratio(d) if rule in RATIO_RULES else units.format_decimal(d)


def alert_json(a: Alert | Transition) -> dict[str, object]:
    """DESIGN.md's alert object."""
    if isinstance(a, Transition):
        state = "resolved" if a.kind == "resolved" else "firing"
        since = a.since or a.at
    else:
        state, since = a.state, a.since
    out: dict[str, object] = {
        "rule": a.rule,
        "subject": a.subject,
        "severity": a.severity,
        "state": state,
        "value": format_value(a.rule, a.value),
        "threshold": format_value(a.rule, a.threshold),
        "fingerprint": a.fingerprint,
        "summary": a.summary,
        "since": rfc3339(since),
    }
    if a.details:  # e.g. the transfer behind a flow alert: tx, block, destination, amount
        out["details"] = a.details
    return out


def transition_json(t: Transition) -> dict[str, object]:
    """The alert object plus `transition` (kind) and `seq`."""
    return alert_json(t) | {"transition": t.kind, "seq": t.seq}
