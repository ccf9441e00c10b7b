"""What an alert email says: subject line, plain-text body and HTML body.

Subject: `[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+2 more)`
(`[TEST] ` in front for `auditor test-alert`). Both bodies carry, per alert,
the rule, subject, value, threshold, wallet and tx when known, since, the
fingerprint and seq, and what to do (the alert's summary); then the
audit-log head when sent. The HTML is self-contained (inline styles only)
and escapes every value.
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from .base import Message, rfc3339
from .text import TEST_NOTE, facts, one_line, severity_label, title

__all__ = ["build_email", "html_body", "plain_body", "subject_line"]

_COLOURS = {"CRITICAL": "#b00020", "WARNING": "#b26a00", "RESOLVED": "#1b5e20"}
_FOOTER = ("Acknowledge a firing alert (stops repeats) with `auditor alerts ack "
           "FINGERPRINT`; `auditor alerts list` shows every open alert.")


def subject_line(message: Message) -> str:
    return title(message.exchange, message.alerts, test=message.test)


def _heading(alert: dict[str, Any]) -> str:
    transition = alert.get("transition") or alert.get("state") or "?"
    return one_line(f"{severity_label(alert)} {transition}: {alert.get('rule', '?')} "
                    f"{alert.get('subject', '?')}")


def _count(message: Message) -> str:
    n = len(message.alerts)
    return f"custody-auditor {message.exchange}: {n} alert transition{'s' if n != 1 else ''}"


def plain_body(message: Message) -> str:
    lines: list[str] = []
    if message.test:
        lines += [TEST_NOTE, ""]
    lines += [_count(message), ""]
    for alert in message.alerts:
        lines.append(_heading(alert))
        lines += [f"  {label:<12} {value}" for label, value in facts(alert, full_fp=True)]
        summary = str(alert.get("summary") or "").strip()
        if summary:
            lines.append("  What to do:  " + summary.replace("\n", "\n               "))
        lines.append("")
    lines += [f"Audit-log head when sent: {message.head}",
              f"Sent {rfc3339(message.sent_at)} by custody-auditor.", _FOOTER, ""]
    return "\n".join(lines)


def _html_alert(alert: dict[str, Any]) -> str:
    label = severity_label(alert)
    colour = _COLOURS.get(label, "#333333")
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#555">'
        f"{html.escape(k)}</th><td style=\"font-family:monospace\">{html.escape(v)}</td></tr>"
        for k, v in facts(alert, full_fp=True))
    summary = html.escape(str(alert.get("summary") or "")).replace("\n", "<br>")
    todo = (f'<p style="margin:6px 0"><strong>What to do:</strong> {summary}</p>'
            if summary else "")
    return (f'<div style="border-left:4px solid {colour};padding:4px 12px;margin:12px 0">'
            f'<h3 style="margin:4px 0;color:{colour}">{html.escape(_heading(alert))}</h3>'
            f'<table style="border-collapse:collapse">{rows}</table>{todo}</div>')


def html_body(message: Message) -> str:
    test = (f'<p style="background:#fff3cd;padding:8px;font-weight:bold">'
            f"{html.escape(TEST_NOTE)}</p>" if message.test else "")
    alerts = "".join(_html_alert(a) for a in message.alerts)
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(subject_line(message))}</title></head>"
            '<body style="font-family:sans-serif;font-size:14px;color:#222">'
            f"{test}<h2>{html.escape(_count(message))}</h2>{alerts}"
            f'<p style="color:#555">Audit-log head when sent: '
            f'<code>{html.escape(message.head)}</code><br>'
            f"Sent {html.escape(rfc3339(message.sent_at))} by custody-auditor.<br>"
            f"{html.escape(_FOOTER)}</p></body></html>")


def build_email(message: Message, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """A multipart/alternative email: text/plain first, then text/html."""
    msg = EmailMessage()
    msg["Subject"] = subject_line(message)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(message.sent_at)
    # The sender's domain, not socket.getfqdn(): that can block on DNS.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "custody-auditor.invalid"
    msg["Message-ID"] = make_msgid("auditor", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(plain_body(message))
    msg.add_alternative(html_body(message), subtype="html")
    # Bodies are encoded above (within 78 columns). For the headers, fold only
    # past RFC 5322's hard limit: Python's folder would move a subject of 70-odd
    # characters to a continuation line, which some readers show with a
    # leading space.
    msg.policy = msg.policy.clone(max_line_length=998)
    return msg
