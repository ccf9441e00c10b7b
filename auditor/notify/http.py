"""The one HTTP helper every HTTP channel posts through.

Every call has a timeout. Failures become `DeliveryError` with `retryable`
set the way the outbox needs it: 429, 5xx, timeouts and connection errors
are worth retrying; any other non-2xx answer is not. Error texts name the
receiver only as `scheme://host:port` (`settings.redact_url`): channel URLs
often carry a token in the path or query, so the full URL, the body and
httpx's own exception texts (which can contain the URL) are never used.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import DeliveryError
from ..settings import ChannelSettings, Secret, redact_url

__all__ = [
    "USER_AGENT",
    "ResponseCheck",
    "collect_secrets",
    "host_label",
    "make_client",
    "post_json",
    "scrub",
    "shared_client",
]

# A channel's own look at a response before the status classification, e.g.
# a receiver that reports errors inside a 200. Raises DeliveryError to refuse.
ResponseCheck = Callable[[httpx.Response, str], None]

USER_AGENT = f"custody-auditor/{__version__}"

_URL = re.compile(r"https?://[^\s\"'<>]+")

_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO (`HTTP Request: POST
    https://…/bot<token>/sendMessage …`); channel URLs carry tokens, so its
    records keep only `scheme://host:port`, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = _URL.sub(lambda m: host_label(m.group(0)), text)
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client as the channels use it. Redirects are not followed: a webhook
    that moved should be reconfigured, not silently re-posted elsewhere."""
    return httpx.Client(transport=transport, follow_redirects=False,
                        headers={"User-Agent": USER_AGENT})


def shared_client() -> httpx.Client:
    """The process-wide client (connection pooling across channels and cycles)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = make_client()
        return _shared


def host_label(url: Secret | str) -> str:
    """`scheme://host:port` of a URL, safe for logs; never raises."""
    raw = url.reveal() if isinstance(url, Secret) else url
    try:
        return redact_url(raw)
    except ValueError:  # e.g. a non-numeric port
        return "<invalid url>"


def post_json(url: Secret | str, body: bytes, headers: Mapping[str, str] | None = None,
              timeout: float = 10.0, *, client: httpx.Client | None = None,
              check: ResponseCheck | None = None) -> httpx.Response:
    """POST `body` (already-encoded JSON) and return the 2xx response.

    Raises `DeliveryError` (retryable or not) for anything else. The error is
    raised outside the `except` block so that it carries no `__context__`
    pointing at an httpx exception whose text may contain the URL. `check`
    sees every response (with the redacted host label) before the status
    classification and may raise its own `DeliveryError`.
    """
    raw = url.reveal() if isinstance(url, Secret) else url
    label = host_label(url)
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    http = client if client is not None else shared_client()
    failure: DeliveryError | None = None
    try:
        response = http.post(raw, content=body, headers=all_headers,
                             timeout=httpx.Timeout(timeout))
    except httpx.TimeoutException:
        failure = DeliveryError(f"{label} did not answer within {timeout:g}s; "
                                "will retry (check the receiver is up)", retryable=True)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        failure = DeliveryError(f"{label}: the channel url is not a valid http(s) url; "
                                "fix the channel's url in alerts.channels", retryable=False)
    except httpx.TransportError as exc:
        failure = DeliveryError(f"{label} unreachable ({type(exc).__name__}); will retry "
                                "(check the receiver is up and reachable)", retryable=True)
    if failure is not None:
        raise failure
    if check is not None:
        check(response, label)
    _check_status(response, label)
    return response


def _retry_after(response: httpx.Response) -> str:
    """` (Retry-After 30s)` when the receiver said how long to wait, in seconds."""
    value = response.headers.get("Retry-After", "").strip()
    return f" (Retry-After {value}s)" if value.isdigit() and len(value) <= 6 else ""


def _check_status(response: httpx.Response, label: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise DeliveryError(f"{label} answered HTTP {status}{_retry_after(response)}; "
                            "will retry", retryable=True)
    if 300 <= status < 400:
        raise DeliveryError(f"{label} answered HTTP {status} (a redirect, not followed); "
                            "set the channel's url to the final address", retryable=False)
    raise DeliveryError(f"{label} refused the message with HTTP {status}; check the "
                        "channel's url, secret and the receiver's logs", retryable=False)


def collect_secrets(channels: Iterable[ChannelSettings]) -> list[str]:
    """Every secret text of the channels, longest first: each secret, and a
    url's path, query, fragment and credentials (tokens live there; the
    `scheme://host:port` that `redact_url` shows is not treated as secret)."""
    found: set[str] = set()
    for ch in channels:
        for secret in (ch.secret, ch.routing_key, ch.bot_token, ch.password):
            if secret is not None:
                found.add(secret.reveal())
        if ch.url is not None:
            raw = ch.url.reveal()
            try:
                parts = urlsplit(raw)
                found.update([parts.path, parts.query, parts.fragment, parts.password or "",
                              parts.username or ""])
            except ValueError:  # unparsable: hide it whole
                found.add(raw)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` replaced by `***` (defence in depth
    for texts that did not come from this module)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
