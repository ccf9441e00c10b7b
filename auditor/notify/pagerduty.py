"""The `pagerduty` channel: PagerDuty Events API v2, one event per alert transition.

An `acknowledged` announcement sends `event_action: acknowledge`; `silenced`
and `unsilenced` announcements send nothing (they are audit notices, not
pages). A `resolved` transition sends::

    {"routing_key": "<key>", "event_action": "resolve", "dedup_key": "<fingerprint>"}

any other (`firing`, `escalated`, `repeat`, `outflow_reorged`) a trigger::

    {"routing_key": "<key>", "event_action": "trigger", "dedup_key": "<fingerprint>",
     "client": "custody-auditor",
     "payload": {"summary": "[CRITICAL] hot_drain eth-hot-1/ETH: hot wallet fell …",
                 "source": "example-ex", "severity": "critical", "timestamp": "…Z",
                 "component": "eth-hot-1/ETH", "class": "hot_drain",
                 "custom_details": {"rule": …, "subject": …, "value": …, "threshold": …,
                                    "seq": 17, "transition": "firing", "head": "…",
                                    "fingerprint": …, "since": …, "wallet"?: …, "tx"?: …}}}

PagerDuty deduplicates by `dedup_key` (the alert's fingerprint), so a repeat
or an escalation updates the open incident instead of opening another, and a
message resent after a partial failure does no harm. Answers: 202 accepted;
429 and 5xx are retried; 400 (a malformed event or unknown routing key) is
permanent. A test message triggers an event whose summary starts with
`[TEST]` (resolve it in PagerDuty). The routing key is in the body only and
never in an error text.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..errors import DeliveryError
from ..settings import Secret
from .base import Message, rfc3339
from .http import post_json
from .text import clip, is_resolved, one_line, severity_label, tx_of, wallet_of

__all__ = ["DEFAULT_URL", "PagerDutyNotifier", "build_events"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
_SEVERITIES = ("critical", "warning")


def _summary(alert: dict[str, Any], test: bool) -> str:
    text = (f"{'[TEST] ' if test else ''}[{severity_label(alert)}] {alert.get('rule', '?')} "
            f"{alert.get('subject', '?')}: {alert.get('summary') or ''}")
    return clip(one_line(text).rstrip(": "), 1024)  # the Events API's limit


def _details(alert: dict[str, Any], head: str, test: bool) -> dict[str, Any]:
    out: dict[str, Any] = {key: alert.get(key) for key in
                           ("rule", "subject", "value", "threshold", "seq", "transition")}
    out.update(head=head, fingerprint=alert.get("fingerprint"), since=alert.get("since"))
    wallet, tx = wallet_of(alert), tx_of(alert)
    if wallet:
        out["wallet"] = wallet
    if tx:
        out["tx"] = tx
    if test:
        out["test"] = True
    return out


# Announcements that are not incidents of their own: an acknowledgement maps to
# PagerDuty's acknowledge; silences are audit notices, not pages.
_NOT_PAGES = frozenset({"silenced", "unsilenced"})


def _event(alert: dict[str, Any], message: Message, key: str) -> dict[str, Any] | None:
    dedup = str(alert.get("fingerprint") or f"{message.exchange}-test")
    kind = alert.get("transition")
    if kind in _NOT_PAGES:
        return None
    if kind == "acknowledged":
        return {"routing_key": key, "event_action": "acknowledge", "dedup_key": dedup}
    if is_resolved(alert):
        return {"routing_key": key, "event_action": "resolve", "dedup_key": dedup}
    severity = alert.get("severity")
    return {"routing_key": key, "event_action": "trigger", "dedup_key": dedup,
            "client": "custody-auditor",
            "payload": {"summary": _summary(alert, message.test), "source": message.exchange,
                        "severity": severity if severity in _SEVERITIES else "critical",
                        "timestamp": str(alert.get("at") or rfc3339(message.sent_at)),
                        "component": one_line(alert.get("subject", "?")),
                        "class": str(alert.get("rule", "?")),
                        "custom_details": _details(alert, message.head, message.test)}}


def build_events(message: Message, routing_key: str) -> list[dict[str, Any]]:
    """One Events API v2 body per transition (one trigger for a test message
    without alerts)."""
    alerts = message.alerts
    if not alerts and message.test:
        alerts = [{"rule": "test", "subject": "test message", "severity": "warning",
                   "transition": "firing", "summary": "the channel works; no action needed"}]
    events = (_event(a, message, routing_key) for a in alerts)
    return [e for e in events if e is not None]


class PagerDutyNotifier:
    """Posts one event per transition. A retryable failure stops the message
    (the outbox resends it whole; PagerDuty drops the duplicates by
    `dedup_key`); permanent refusals of single events are collected and
    raised after the other events were tried."""

    def __init__(self, name: str, routing_key: Secret, *, url: Secret | str = DEFAULT_URL,
                 timeout: float = 10.0, client: httpx.Client | None = None):
        self.name = name
        self._key = routing_key
        self._url = url
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(name={self.name!r})"

    def send(self, message: Message) -> None:
        events = build_events(message, self._key.reveal())
        refused: list[str] = []
        for i, event in enumerate(events):
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            try:
                post_json(self._url, body, timeout=self._timeout, client=self._client)
            except DeliveryError as exc:
                if exc.retryable:
                    raise DeliveryError(f"event {i + 1} of {len(events)}: {exc}",
                                        retryable=True) from None
                refused.append(f"event {i + 1} ({event['event_action']} "
                               f"{event['dedup_key'][:12]}): {exc}")
        if refused:
            raise DeliveryError(f"PagerDuty refused {len(refused)} of {len(events)} events: "
                                + "; ".join(refused) + " (a 400 usually means a wrong "
                                "routing_key: use the Events API v2 integration key)",
                                retryable=False)
