"""The `teams` channel: an Adaptive Card posted to a Microsoft Teams webhook.

Works with both kinds of Teams webhook URL: a Workflows ("Post to a channel
when a webhook request is received") URL, which answers 202, and a legacy
Incoming Webhook connector, which answers 200 `1`. Body::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"type": "AdaptiveCard", "version": "1.4",
                                  "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                  "msteams": {"width": "Full"},
                                  "body": [<title>, <test note>?, <one Container per alert>,
                                           <footer>]}}]}

Each alert's Container holds a headline (severity, transition, rule,
subject), a FactSet (value, threshold, wallet, tx, since, fingerprint, seq)
and the summary. Legacy connectors report throttling inside a 200 answer
("Microsoft Teams endpoint returned HTTP error 429 …"): that is retried like
a 429. The URL is a secret; errors show only its host.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ..errors import DeliveryError
from ..settings import Secret
from .base import Message, rfc3339
from .http import post_json
from .text import TEST_NOTE, clip, facts, one_line, severity_label, title

__all__ = ["MAX_ALERTS", "TeamsNotifier", "build_payload"]

MAX_ALERTS = 20  # Teams refuses cards over ~28 KB
_COLOURS = {"CRITICAL": "Attention", "WARNING": "Warning", "RESOLVED": "Good"}
_EMBEDDED_ERROR = re.compile(r"returned HTTP error (\d{3})")


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _container(alert: dict[str, Any]) -> dict[str, Any]:
    label = severity_label(alert)
    headline = one_line(f"{label} · {alert.get('transition') or alert.get('state') or '?'} · "
                        f"{alert.get('rule', '?')} · {alert.get('subject', '?')}")
    items: list[dict[str, Any]] = [
        _text(headline, weight="Bolder", color=_COLOURS.get(label, "Default")),
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(alert)]}]
    if alert.get("summary"):
        items.append(_text(clip(one_line(alert["summary"]), 2000)))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def build_payload(message: Message) -> dict[str, Any]:
    """The JSON object posted for `message`."""
    body: list[dict[str, Any]] = [
        _text(title(message.exchange, message.alerts, test=message.test),
              size="Medium", weight="Bolder")]
    if message.test:
        body.append(_text(TEST_NOTE, color="Accent", weight="Bolder"))
    shown = message.alerts[:MAX_ALERTS]
    body.extend(_container(a) for a in shown)
    if len(message.alerts) > len(shown):
        body.append(_text(f"…and {len(message.alerts) - len(shown)} more; see "
                          "`auditor alerts list`", isSubtle=True))
    body.append(_text(f"audit-log head {message.head} · sent {rfc3339(message.sent_at)}",
                      isSubtle=True, size="Small"))
    card = {"type": "AdaptiveCard", "version": "1.4",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "msteams": {"width": "Full"}, "body": body}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                             "contentUrl": None, "content": card}]}


def _check(response: httpx.Response, label: str) -> None:
    """Legacy connectors answer 200 with an error text instead of an error status."""
    if response.status_code != 200:
        return
    found = _EMBEDDED_ERROR.search(response.text[:500])
    if found is None:
        return
    status = int(found[1])
    if status == 429 or status >= 500:
        raise DeliveryError(f"{label} reported HTTP {status} inside a 200 answer; will retry",
                            retryable=True)
    raise DeliveryError(f"{label} reported HTTP {status} inside a 200 answer; check the "
                        "channel's url (a Teams Workflows or Incoming Webhook URL)",
                        retryable=False)


class TeamsNotifier:
    """Posts each message as one Adaptive Card."""

    def __init__(self, name: str, url: Secret | str, *, timeout: float = 10.0,
                 client: httpx.Client | None = None):
        self.name = name
        self._url = url
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"TeamsNotifier(name={self.name!r})"

    def send(self, message: Message) -> None:
        body = json.dumps(build_payload(message), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        post_json(self._url, body, timeout=self._timeout, client=self._client, check=_check)
