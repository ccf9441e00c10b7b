"""The `slack` channel: one Block Kit message per delivery to an incoming webhook.

Body::

    {"text": "[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+1 more)",
     "blocks": [
       {"type": "header", "text": {"type": "plain_text", "text": "example-ex: 2 alerts"}},
       {"type": "section", "text": {"type": "mrkdwn", "text":
          ":rotating_light: *CRITICAL* · firing · `hot_drain` · *eth-hot-1/ETH*\\n
           value *0.42* vs threshold *0.2*\\nwallet `eth-hot-1` · tx `0x…`\\n
           hot wallet fell 42% in 10m\\nfp `3f2a9c0d1b2e` · seq 17"}},
       ...,
       {"type": "context", "elements": [{"type": "mrkdwn",
          "text": "audit-log head `…` · sent 2026-11-24T10:00:00Z"}]}]}

`text` is the fallback notifications and screen readers show. A test
message says TEST in the header, the fallback and a section of its own.
Slack answers 200 `ok`; 429 (with Retry-After) and 5xx are retried; other
refusals name Slack's error code (`no_service`: the webhook was removed).
The webhook URL is a secret (the path is the credential): errors name only
`https://hooks.slack.com:443`.
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
from .text import (
    TEST_NOTE,
    clip,
    is_resolved,
    one_line,
    severity_label,
    short_fp,
    title,
    tx_of,
    wallet_of,
)

__all__ = ["MAX_ALERT_SECTIONS", "SlackNotifier", "build_payload"]

# Slack allows 50 blocks per message: header, test note, "and N more", footer
# and one section per alert.
MAX_ALERT_SECTIONS = 45
_EMOJI = {"CRITICAL": ":rotating_light:", "WARNING": ":warning:",
          "RESOLVED": ":white_check_mark:"}
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
_GONE = {"no_service", "no_team", "team_disabled", "channel_is_archived",
         "channel_not_found", "action_prohibited", "invalid_token", "no_active_hooks"}


def _esc(text: object) -> str:
    """Slack mrkdwn escaping: only &, < and > are control characters."""
    return (one_line(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def _code(text: object) -> str:
    # Inside `…` a backtick would end the code span early.
    return "`" + _esc(text).replace("`", "'") + "`"


def _section(alert: dict[str, Any]) -> dict[str, Any]:
    label = severity_label(alert)
    headline = (f"{_EMOJI.get(label, ':grey_question:')} *{label}* · "
                f"{_esc(alert.get('transition') or alert.get('state') or '?')} · "
                f"{_code(alert.get('rule', '?'))} · *{_esc(alert.get('subject', '?'))}*")
    lines = [headline]
    value, threshold = alert.get("value"), alert.get("threshold")
    if value is not None or threshold is not None:
        lines.append(f"value *{_esc(value if value is not None else 'unknown')}* vs threshold "
                     f"*{_esc(threshold if threshold is not None else 'none')}*")
    where = [f"wallet {_code(w)}" for w in [wallet_of(alert)] if w]
    where += [f"tx {_code(t)}" for t in [tx_of(alert)] if t]
    if where:
        lines.append(" · ".join(where))
    if alert.get("summary"):
        lines.append(clip(_esc(alert["summary"]), 2000))
    lines.append(f"fp {_code(short_fp(alert))} · seq {_esc(alert.get('seq', '?'))}")
    return {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _header(message: Message) -> str:
    count = len(message.alerts)
    open_ = sum(1 for a in message.alerts if not is_resolved(a))
    what = f"{count} alert{'s' if count != 1 else ''}"
    if open_ != count:
        what += f" ({count - open_} resolved)"
    return clip(("TEST · " if message.test else "") + f"{message.exchange}: {what}", 150)


def build_payload(message: Message) -> dict[str, Any]:
    """The JSON object posted for `message`."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header(message),
                                    "emoji": True}}]
    if message.test:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f":test_tube: *{_esc(TEST_NOTE)}*"}})
    shown = message.alerts[:MAX_ALERT_SECTIONS]
    blocks.extend(_section(a) for a in shown)
    hidden = len(message.alerts) - len(shown)
    if hidden:
        blocks.append(_context(f"…and {hidden} more; see `auditor alerts list`"))
    blocks.append(_context(f"audit-log head {_code(message.head)} · sent "
                           f"{rfc3339(message.sent_at)}"))
    return {"text": _esc(title(message.exchange, message.alerts, test=message.test)),
            "blocks": blocks}


def _check(response: httpx.Response, label: str) -> None:
    """Name Slack's error code (a fixed word such as `no_service`) in refusals."""
    status = response.status_code
    if status < 400 or status == 429 or status >= 500:
        return
    code = response.text.strip()
    if not _ERROR_CODE.match(code):
        return  # not Slack's answer: the generic classification speaks
    hint = ("the webhook was removed or its channel archived: create a new incoming webhook "
            "and update the channel's url" if code in _GONE else
            "check the channel's url is a Slack incoming webhook")
    raise DeliveryError(f"{label} refused the message with HTTP {status} ({code}); {hint}",
                        retryable=False)


class SlackNotifier:
    """Posts each message as one Block Kit message to an incoming webhook."""

    def __init__(self, name: str, url: Secret | str, *, timeout: float = 10.0,
                 client: httpx.Client | None = None):
        self.name = name
        self._url = url
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never the url: its path is the credential
        return f"SlackNotifier(name={self.name!r})"

    def send(self, message: Message) -> None:
        body = json.dumps(build_payload(message), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        post_json(self._url, body, timeout=self._timeout, client=self._client, check=_check)
