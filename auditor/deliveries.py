"""Which channels get which of a cycle's transitions (one grouped outbox row per channel).

Routing is `alerting.route` (first match unless `continue`); a `resolved` goes
to the channels that got the firing; silenced transitions (indexes in
`muted`) go nowhere; `config_changed` also reaches the previous config's
critical channels. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import replace

from . import alerting
from .model import Alert, Transition
from .settings import Settings

__all__ = ["plan_deliveries", "with_notified"]


def plan_deliveries(settings: Settings, transitions: Sequence[Transition],
                    alerts: Sequence[Alert], previous_material: Mapping[str, object] | None,
                    muted: Set[int] = frozenset(),
                    ) -> tuple[list[tuple[str, list[int]]], dict[str, list[str]]]:
    """One grouped outbox row per channel: (channel, transition indexes). Also, per
    fingerprint, the channels its firing/escalated/repeat went to (a later resolved
    goes there). `muted`: indexes a silence covers, not delivered."""
    wallet_chain = {w.name: w.chain for w in settings.wallets}
    by_fp = {a.fingerprint: a for a in alerts}
    configured = {c.name for c in settings.alerts.channels}
    per_channel: dict[str, list[int]] = {}
    notified: dict[str, list[str]] = {}
    for i, t in enumerate(transitions):
        if i in muted:
            continue
        prior = by_fp[t.fingerprint].notified_channels if t.fingerprint in by_fp else ()
        names = (list(prior) if t.kind == "resolved" else []) or alerting.route(
            t, settings.alerts.routes, wallet_chain)
        if t.rule == "config_changed" and previous_material:
            # Whoever was paged for critical alerts before the change hears of it too:
            # an intruder who reroutes alerts must not silence the announcement.
            names += [c for c in _critical_channels(previous_material) if c in configured]
        for ch in dict.fromkeys(names):
            per_channel.setdefault(ch, []).append(i)
        if t.kind != "resolved":
            notified.setdefault(t.fingerprint, []).extend(names)
    return list(per_channel.items()), notified


def with_notified(a: Alert, channels: Sequence[str]) -> Alert:
    """`a` with `channels` added to the channels that got its firing."""
    if not channels:
        return a
    return replace(a, notified_channels=tuple(dict.fromkeys([*a.notified_channels, *channels])))


def _critical_channels(material: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    routes = material.get("routes") or []
    for r in routes if isinstance(routes, list | tuple) else []:
        if isinstance(r, dict) and "critical" in r.get("severity", []):
            out += [str(c) for c in r.get("channels", [])]
    return out
