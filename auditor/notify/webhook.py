"""The `webhook` channel: one signed JSON POST per message.

Body (UTF-8 JSON)::

    {"exchange": "example-ex", "sent_at": "2026-11-24T10:00:00Z",
     "head": "<audit-log head when sent>",
     "alerts": [{<alert object>, "transition": "firing", "seq": 17}, ...]}

plus `"test": true` for `auditor test-alert` messages. Receivers drop
duplicates by `seq`: delivery is at least once.

With a channel `secret`, two headers sign the exact bytes of the body::

    X-Auditor-Timestamp: 1795514400
    X-Auditor-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

Writing a receiver: read the raw request body *before* parsing it, then

    from auditor.notify.webhook import verify_signature
    ok = verify_signature(secret, request.headers["X-Auditor-Timestamp"], raw_body,
                          request.headers["X-Auditor-Signature"], now=int(time.time()))

which checks the HMAC in constant time and refuses timestamps more than
`tolerance` seconds (default 300) from `now` (replays). Without Python:
compute HMAC-SHA256 with the secret over the timestamp, a `.`, and the raw
body, hex-encode it, and compare with the header after `sha256=`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from ..settings import Secret
from .base import Message, rfc3339
from .http import post_json

__all__ = ["WebhookNotifier", "encode_body", "sign", "verify_signature",
           "TIMESTAMP_HEADER", "SIGNATURE_HEADER"]

TIMESTAMP_HEADER = "X-Auditor-Timestamp"
SIGNATURE_HEADER = "X-Auditor-Signature"


def _json_default(value: object) -> str:
    # Transition objects should already be JSON-ready; these keep a stray
    # Decimal exact (positional, never 1E+3) and a datetime in RFC 3339.
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in a webhook body")


def encode_body(message: Message) -> bytes:
    """The exact bytes posted for `message`."""
    payload: dict[str, Any] = {"exchange": message.exchange,
                               "sent_at": rfc3339(message.sent_at),
                               "head": message.head, "alerts": message.alerts}
    if message.test:
        payload["test"] = True
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=_json_default).encode("utf-8")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Auditor-Signature` value: `sha256=<hex HMAC(secret, ts + "." + body)>`."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str, now: int,
                     tolerance: int = 300) -> bool:
    """True when `header` signs `timestamp` + `body` with `secret` and the
    timestamp is within `tolerance` seconds of `now` (unix seconds)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


class WebhookNotifier:
    """Posts each message as one JSON body to the channel's url."""

    def __init__(self, name: str, url: Secret | str, *, secret: Secret | None = None,
                 timeout: float = 10.0, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:  # never the url: it may carry a token
        return f"WebhookNotifier(name={self.name!r})"

    def send(self, message: Message) -> None:
        body = encode_body(message)
        headers: dict[str, str] = {}
        if self._secret is not None:
            # Wall-clock time, not sent_at: receivers use it against replays.
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret.reveal().encode("utf-8"),
                                             timestamp, body)
        post_json(self._url, body, headers, self._timeout, client=self._client)
