"""The `log` channel: one readable line per alert transition on stderr.

It writes to the process's stderr directly rather than through `logging`:
it is a delivery channel, so a log level or handler set elsewhere must not
be able to swallow an alert. A line (one line on the terminal) looks like

    ALERT example-ex CRITICAL firing hot_drain eth-hot-1/ETH value 0.42 vs threshold 0.2
    - hot wallet fell 42% in 10m (fp 3f2a9c0d1b2e seq 17)
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..errors import DeliveryError
from .base import Message

__all__ = ["LogNotifier", "format_line"]


def _one_line(value: object) -> str:
    # Summaries may hold newlines; a log line must stay one line.
    return " ".join(str(value).split())


def format_line(exchange: str, alert: dict[str, Any], *, test: bool = False) -> str:
    """The text line for one transition object."""
    parts = ["ALERT" + (" TEST" if test else ""), exchange,
             str(alert.get("severity", "?")).upper(),
             str(alert.get("transition", alert.get("state", "?"))),
             str(alert.get("rule", "?")), _one_line(alert.get("subject", "?"))]
    value, threshold = alert.get("value"), alert.get("threshold")
    if value is not None or threshold is not None:
        parts.append(f"value {value if value is not None else 'unknown'} vs threshold "
                     f"{threshold if threshold is not None else 'none'}")
    summary = _one_line(alert.get("summary", ""))
    if summary:
        parts.append(f"- {summary}")
    fp = str(alert.get("fingerprint", ""))[:12]
    parts.append(f"(fp {fp or '?'} seq {alert.get('seq', '?')})")
    return " ".join(parts)


class LogNotifier:
    """Writes each transition of a message as one line to `stream` (default:
    the current `sys.stderr`, looked up at send time)."""

    def __init__(self, name: str = "log", stream: TextIO | None = None):
        self.name = name
        self._stream = stream

    def send(self, message: Message) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        lines = [format_line(message.exchange, a, test=message.test) for a in message.alerts]
        if not lines and message.test:
            lines = [f"ALERT TEST {message.exchange} test message (no alerts)"]
        try:
            for line in lines:
                stream.write(line + "\n")
            stream.flush()
            return
        except (OSError, ValueError) as exc:  # closed or broken stderr
            kind = type(exc).__name__
        raise DeliveryError(f"log channel {self.name!r} could not write to stderr ({kind})",
                            retryable=True)
