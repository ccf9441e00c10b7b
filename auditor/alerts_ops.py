"""What a person does to alerts from the CLI: resolve by hand.

Event rules (`hot_drain`, `cold_outflow`, `config_changed`, …) never resolve by
evaluation: a person resolves them, which is written to the audit log and
announced on the critical route (and to the channels that got the firing).
"""

from __future__ import annotations

from datetime import datetime

from . import alerting
from .errors import AuditorError
from .settings import Settings

__all__ = ["critical_channels", "resolve_by_hand"]


def critical_channels(settings: Settings) -> list[str]:
    """Channels of every route that takes critical alerts (the `log` channels if none)."""
    out: list[str] = []
    for r in settings.alerts.routes:
        if "critical" in r.severity:
            out += [c for c in r.channels if c not in out]
    if not out:
        out = [c.name for c in settings.alerts.channels if c.type == "log"]
    return out


def resolve_by_hand(settings: Settings, store: object, fp: str, by: str, reason: str,
                    now: datetime) -> int:
    alert = store.get_alert(fp)  # type: ignore[attr-defined]
    if alert is None:
        raise AuditorError(f"no alert with fingerprint {fp}")
    if alert.state != "firing":
        raise AuditorError(f"alert {fp[:12]} ({alert.rule} {alert.subject}) is already resolved")
    if not reason.strip():
        raise AuditorError("give a --reason: it is written to the audit log")
    new_alert, transition = alerting.manual_resolve(alert, now, by, reason)
    channels = list(dict.fromkeys([*alert.notified_channels, *critical_channels(settings)]))
    return store.resolve_alert(fp, by, reason, now, transition, new_alert, channels)  # type: ignore[attr-defined]
