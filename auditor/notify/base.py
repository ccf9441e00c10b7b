"""The one Notifier protocol every channel implements, and the message it sends.

A notifier delivers one `Message` (the transitions of one outbox item) or
raises `errors.DeliveryError` with `retryable` set; it never retries by
itself; the outbox (`auditor.outbox`) decides about retries and dead
letters, like Alertmanager's notifiers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from ..alerting import format_value
from ..times import rfc3339

if TYPE_CHECKING:
    import httpx

    from ..settings import ChannelSettings

__all__ = ["Message", "Notifier", "make_notifier", "rfc3339", "wire_alert"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Message:
    """What one channel gets in one delivery.

    `alerts` are transition objects: the alert object of DESIGN.md (rule,
    subject, severity, state, value, threshold, fingerprint, summary, since)
    plus "transition" and "seq". `head` is the audit-log head when sent.
    `test` marks a message sent by `auditor test-alert`.
    """

    exchange: str
    sent_at: datetime
    head: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    test: bool = False


@runtime_checkable
class Notifier(Protocol):
    """A delivery channel. `send` returns when the receiver accepted the message,
    or raises `DeliveryError(message, retryable=...)`; messages name no secret."""

    name: str

    def send(self, message: Message) -> None: ...


def make_notifier(ch: ChannelSettings, *, client: httpx.Client | None = None) -> Notifier:
    """The notifier for a configured channel. `client` replaces the shared
    HTTP client (tests pass one with an `httpx.MockTransport`)."""
    # Imported here: the channel modules import Message from this module.
    from .log import LogNotifier

    if ch.type == "log":
        return LogNotifier(ch.name)
    if ch.type == "email":
        return _email(ch)
    if ch.type in _HTTP_BUILDERS:
        return _HTTP_BUILDERS[ch.type](ch, client)
    raise ValueError(f"channel {ch.name!r}: unknown type {ch.type!r}; use one of log, email, "
                     + ", ".join(sorted(_HTTP_BUILDERS)))


def _need(ch: ChannelSettings, field_name: str, value: _T | None) -> _T:
    if value is None:
        raise ValueError(f"channel {ch.name!r}: a {ch.type} channel needs `{field_name}`")
    return value


def _webhook(ch: ChannelSettings, client: httpx.Client | None) -> Notifier:
    from .webhook import WebhookNotifier
    return WebhookNotifier(ch.name, _need(ch, "url", ch.url), secret=ch.secret,
                           timeout=ch.timeout, client=client)


def _slack(ch: ChannelSettings, client: httpx.Client | None) -> Notifier:
    from .slack import SlackNotifier
    return SlackNotifier(ch.name, _need(ch, "url", ch.url), timeout=ch.timeout, client=client)


def _teams(ch: ChannelSettings, client: httpx.Client | None) -> Notifier:
    from .teams import TeamsNotifier
    return TeamsNotifier(ch.name, _need(ch, "url", ch.url), timeout=ch.timeout, client=client)


def _pagerduty(ch: ChannelSettings, client: httpx.Client | None) -> Notifier:
    from .pagerduty import DEFAULT_URL, PagerDutyNotifier
    return PagerDutyNotifier(ch.name, _need(ch, "routing_key", ch.routing_key),
                             url=ch.url or DEFAULT_URL, timeout=ch.timeout, client=client)


def _telegram(ch: ChannelSettings, client: httpx.Client | None) -> Notifier:
    from .telegram import DEFAULT_URL, TelegramNotifier
    return TelegramNotifier(ch.name, _need(ch, "bot_token", ch.bot_token),
                            _need(ch, "chat_id", ch.chat_id), url=ch.url or DEFAULT_URL,
                            timeout=ch.timeout, client=client)


def _email(ch: ChannelSettings) -> Notifier:
    from .email import EmailNotifier
    security: Literal["starttls", "ssl", "plain"] = (
        "ssl" if ch.ssl else "starttls" if ch.starttls else "plain")
    return EmailNotifier(ch.name, _need(ch, "smtp", ch.smtp_host), _need(ch, "smtp", ch.smtp_port),
                         sender=_need(ch, "from", ch.sender), to=ch.to, security=security,
                         username=ch.username, password=ch.password, timeout=ch.timeout,
                         ca_file=ch.ca_file)


_HTTP_BUILDERS: dict[str, Callable[[ChannelSettings, httpx.Client | None], Notifier]] = {
    "webhook": _webhook, "slack": _slack, "teams": _teams, "pagerduty": _pagerduty,
    "telegram": _telegram}


# Keys of DESIGN.md's alert object, in the order the wire shows them.
_ALERT_KEYS = ("rule", "subject", "severity", "state", "value", "threshold", "fingerprint",
               "summary", "since")


def wire_alert(transition: dict[str, Any]) -> dict[str, Any]:
    """A stored transition (store_codec form: `kind`, `at`, `details`, …) as
    the object channels send: the alert object plus "transition" and "seq".

    `state` is derived when absent (`resolved` only for a resolved
    transition); `at` and `details` are kept as extensions; objects already
    in wire form pass through unchanged.
    """
    kind = transition.get("transition", transition.get("kind"))
    state = transition.get("state") or ("resolved" if kind == "resolved" else "firing")
    out: dict[str, Any] = {k: transition.get(k) for k in _ALERT_KEYS}
    out["state"] = state
    for key in ("value", "threshold"):  # the audit log keeps them exact; messages round ratios
        out[key] = format_value(str(out.get("rule")), out.get(key))
    out["transition"] = kind
    out["seq"] = transition.get("seq")
    for key, value in transition.items():
        if key not in out and key != "kind":
            out[key] = value
    return out
