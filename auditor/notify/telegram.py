"""The `telegram` channel: one Bot API `sendMessage` per delivery.

POST `<url>/bot<bot_token>/sendMessage` (url default `https://api.telegram.org`)::

    {"chat_id": "-1001234567890", "parse_mode": "HTML",
     "disable_web_page_preview": true,
     "text": "<b>[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH</b>\\n\\n
              🚨 <b>CRITICAL</b> firing · <code>hot_drain</code> · <b>eth-hot-1/ETH</b>\\n…"}

The bot token is part of the URL path, so the URL is handled as a secret
and errors name only `https://api.telegram.org:443`. Telegram answers
`{"ok": true, …}`; 429 (with `retry_after`) and 5xx are retried; 400 (chat
not found), 401 (wrong token) and 403 (bot not in the chat) are permanent
and say which.
"""

from __future__ import annotations

import html
import json
from typing import Any

import httpx

from ..errors import DeliveryError
from ..settings import Secret
from .base import Message
from .http import post_json
from .text import (
    TEST_NOTE,
    clip,
    one_line,
    severity_label,
    short_fp,
    title,
    tx_of,
    value_text,
    wallet_of,
)

__all__ = ["DEFAULT_URL", "MAX_CHARS", "TelegramNotifier", "build_text"]

DEFAULT_URL = "https://api.telegram.org"
MAX_CHARS = 4096  # Telegram's limit for a message's text
_EMOJI = {"CRITICAL": "\N{POLICE CARS REVOLVING LIGHT}", "WARNING": "\N{WARNING SIGN}",
          "RESOLVED": "\N{WHITE HEAVY CHECK MARK}"}
_HINTS = {400: "check chat_id (a group id such as -1001234567890, or @channelname)",
          401: "the bot_token is wrong or revoked: copy it again from @BotFather",
          403: "the bot is not a member of the chat: add it (channels: as an admin)",
          404: "the bot_token is wrong: copy it again from @BotFather"}


def _esc(value: object) -> str:
    return html.escape(one_line(value), quote=False)


def _alert_text(alert: dict[str, Any]) -> str:
    label = severity_label(alert)
    headline = (f"{_EMOJI.get(label, '?')} <b>{label}</b> "
                f"{_esc(alert.get('transition') or alert.get('state') or '?')} · "
                f"<code>{_esc(alert.get('rule', '?'))}</code> · "
                f"<b>{_esc(alert.get('subject', '?'))}</b>")
    lines = [headline]
    vt = value_text(alert)
    if vt:
        lines.append("value " + _esc(vt))
    where = [f"wallet <code>{_esc(w)}</code>" for w in [wallet_of(alert)] if w]
    where += [f"tx <code>{_esc(t)}</code>" for t in [tx_of(alert)] if t]
    if where:
        lines.append(" · ".join(where))
    if alert.get("summary"):
        lines.append(_esc(clip(str(alert["summary"]), 1000)))
    lines.append(f"fp <code>{_esc(short_fp(alert))}</code> · seq {_esc(alert.get('seq', '?'))}")
    return "\n".join(lines)


def build_text(message: Message) -> str:
    """The HTML text, within Telegram's 4096 characters: alerts that do not
    fit are counted at the end."""
    head = [f"<b>{_esc(title(message.exchange, message.alerts, test=message.test))}</b>"]
    if message.test:
        head.append(f"<i>{_esc(TEST_NOTE)}</i>")
    foot = f"audit-log head <code>{_esc(message.head)}</code>"
    parts, used = [], len("\n\n".join(head)) + len(foot) + 80  # 80: room for "…and N more"
    for alert in message.alerts:
        chunk = _alert_text(alert)
        if used + len(chunk) + 2 > MAX_CHARS:
            break
        parts.append(chunk)
        used += len(chunk) + 2
    hidden = len(message.alerts) - len(parts)
    tail = [f"…and {hidden} more; see <code>auditor alerts list</code>"] if hidden else []
    return "\n\n".join(head + parts + tail + [foot])


class TelegramNotifier:
    """Sends each message as one HTML text message to `chat_id`."""

    def __init__(self, name: str, bot_token: Secret, chat_id: str, *,
                 url: Secret | str = DEFAULT_URL, timeout: float = 10.0,
                 client: httpx.Client | None = None):
        self.name = name
        self._token = bot_token
        self._chat_id = chat_id
        base = url.reveal() if isinstance(url, Secret) else url
        # A Secret: the token is in the path, and post_json then shows only the host.
        self._endpoint = Secret(f"{base.rstrip('/')}/bot{bot_token.reveal()}/sendMessage")
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"TelegramNotifier(name={self.name!r})"

    def send(self, message: Message) -> None:
        body = json.dumps({"chat_id": self._chat_id, "parse_mode": "HTML",
                           "disable_web_page_preview": True, "text": build_text(message)},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        post_json(self._endpoint, body, timeout=self._timeout, client=self._client,
                  check=self._check)

    def _check(self, response: httpx.Response, label: str) -> None:
        """Say which Telegram refusal it was; the generic classification decides otherwise."""
        status = response.status_code
        if status < 400:
            return
        try:
            answer = response.json()
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        what = clip(one_line(answer.get("description") or ""), 200)
        what = what.replace(self._token.reveal(), "***")
        params = answer.get("parameters")
        wait = params.get("retry_after") if isinstance(params, dict) else None
        said = f" ({what})" if what else ""
        if status == 429 or status >= 500:
            after = f" (retry after {wait}s)" if isinstance(wait, int) else ""
            raise DeliveryError(f"{label} answered HTTP {status}{after}{said}; will retry",
                                retryable=True)
        hint = _HINTS.get(status, "check the channel's bot_token and chat_id")
        raise DeliveryError(f"{label} refused the message with HTTP {status}{said}; {hint}",
                            retryable=False)
