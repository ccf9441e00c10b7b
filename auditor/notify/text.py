"""Wording shared by the human-facing channels (Slack, email, PagerDuty,
Telegram, Teams), so an alert reads the same wherever it lands.

Everything here is pure: it takes wire alert objects (`base.wire_alert`
form: rule, subject, severity, state, value, threshold, fingerprint,
summary, since, transition, seq, and optional `details`) and returns text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "TEST_NOTE",
    "clip",
    "facts",
    "is_resolved",
    "lead_alert",
    "one_line",
    "severity_label",
    "short_fp",
    "title",
    "tx_of",
    "value_text",
    "wallet_of",
]

TEST_NOTE = ("TEST message sent by `auditor test-alert`: this channel works. "
             "No action needed.")

# Rules whose subject is `chain:txid:counterparty` (DESIGN.md, Subjects).
_TX_SUBJECT_RULES = frozenset({"large_outflow", "unmatched_outflow", "unknown_destination",
                               "sanctioned_counterparty"})
_TX_KEYS = ("tx", "txid", "tx_hash", "txhash", "hash")


def one_line(value: object) -> str:
    """`value` as text on one line (summaries may hold newlines)."""
    return " ".join(str(value).split())


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with `…` when cut."""
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def is_resolved(alert: dict[str, Any]) -> bool:
    return alert.get("transition") == "resolved" or alert.get("state") == "resolved"


def severity_label(alert: dict[str, Any]) -> str:
    """`CRITICAL`, `WARNING`, or `RESOLVED` for a resolved transition."""
    if is_resolved(alert):
        return "RESOLVED"
    return str(alert.get("severity") or "unknown").upper()


def _rank(alert: dict[str, Any]) -> int:
    # Open critical first, then open warning, resolved last.
    if is_resolved(alert):
        return 2
    return 0 if alert.get("severity") == "critical" else 1


def lead_alert(alerts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The alert a title names: the most severe open one (first on ties)."""
    return min(alerts, key=_rank) if alerts else None


def title(exchange: str, alerts: Sequence[dict[str, Any]], *, test: bool = False) -> str:
    """One line naming the most severe alert:
    `[CRITICAL] custody-auditor example-ex: hot_drain eth-hot-1/ETH (+2 more)`."""
    prefix = "[TEST] " if test else ""
    lead = lead_alert(alerts)
    if lead is None:
        return f"{prefix}custody-auditor {exchange}: test message"
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return one_line(f"{prefix}[{severity_label(lead)}] custody-auditor {exchange}: "
                    f"{lead.get('rule', '?')} {lead.get('subject', '?')}{more}")


def value_text(alert: dict[str, Any]) -> str | None:
    """`0.42 vs threshold 0.2`, or None when the alert has neither."""
    value, threshold = alert.get("value"), alert.get("threshold")
    if value is None and threshold is None:
        return None
    return (f"{value if value is not None else 'unknown'} vs threshold "
            f"{threshold if threshold is not None else 'none'}")


def _details(alert: dict[str, Any]) -> dict[str, Any]:
    details = alert.get("details")
    return details if isinstance(details, dict) else {}


def wallet_of(alert: dict[str, Any]) -> str | None:
    wallet = _details(alert).get("wallet")
    return one_line(wallet) if isinstance(wallet, str) and wallet else None


def tx_of(alert: dict[str, Any]) -> str | None:
    """The transaction an alert is about: from its details, or from a
    `chain:txid:counterparty` subject."""
    details = _details(alert)
    for key in _TX_KEYS:
        if isinstance(details.get(key), str) and details[key]:
            return one_line(details[key])
    subject = str(alert.get("subject") or "")
    parts = subject.split(":")
    if alert.get("rule") in _TX_SUBJECT_RULES and len(parts) == 3 and parts[1]:
        return parts[1]
    return None


def short_fp(alert: dict[str, Any]) -> str:
    return str(alert.get("fingerprint") or "")[:12] or "?"


def facts(alert: dict[str, Any], *, full_fp: bool = False) -> list[tuple[str, str]]:
    """Label/value pairs for a table: rule, subject, value, threshold, wallet,
    tx, since, fingerprint (first 12 digits unless `full_fp`), seq (absent
    ones left out)."""
    out = [("rule", str(alert.get("rule", "?"))), ("subject", one_line(alert.get("subject", "?")))]
    for key in ("value", "threshold"):
        if alert.get(key) is not None:
            out.append((key, str(alert[key])))
    wallet, tx = wallet_of(alert), tx_of(alert)
    if wallet:
        out.append(("wallet", wallet))
    if tx:
        out.append(("tx", tx))
    if alert.get("since"):
        out.append(("since", str(alert["since"])))
    fp = str(alert.get("fingerprint") or "") if full_fp else short_fp(alert)
    out.append(("fingerprint", fp or "?"))
    out.append(("seq", str(alert.get("seq", "?"))))
    return out
