"""What `config_changed` compares between cycles, and a readable diff of it.

The material holds only strings (and lists and mappings of them): no Decimal,
no float, and never a secret (no URL, webhook secret or signature), because
the diff goes into an alert.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from . import units
from .config_flows import DEFAULT_UNKNOWN_DESTINATION
from .settings import (
    AlertSettings,
    ApprovalsSettings,
    CoverageRule,
    RuleSettings,
    Settings,
    Threshold,
    WalletSettings,
)

__all__ = ["config_material", "diff_material"]

_OFF = "off"
_GAP_LIMIT: int = WalletSettings.gap_limit  # the default


def _dec(d: Decimal | None) -> str:
    return _OFF if d is None else units.format_decimal(d)


def _threshold(t: Threshold | None) -> dict[str, str] | str:
    if t is None:
        return _OFF
    return {"warning": _dec(t.warning), "critical": _dec(t.critical)}


def _coverage(c: CoverageRule | None) -> dict[str, Any] | str:
    if c is None:
        return _OFF
    return {**_threshold(c.threshold), "tolerance": _dec(c.tolerance)}  # type: ignore[dict-item]


def _rules(r: RuleSettings) -> dict[str, Any]:
    scope = "all" if r.scope_classes is None else sorted(r.scope_classes)
    asset_ratio: dict[str, Any] | str = _OFF
    if r.asset_hot_ratio is not None:
        asset_ratio = {**_threshold(r.asset_hot_ratio.default),  # type: ignore[dict-item]
                       "assets": {s: _threshold(t) for s, t in
                                  sorted(r.asset_hot_ratio.assets.items())}}
    floor: dict[str, Any] | str = _OFF
    if r.hot_floor is not None:
        floor = {"severity": r.hot_floor.severity,
                 "assets": {s: _dec(a) for s, a in sorted(r.hot_floor.assets.items())}}
    return {
        "preset": r.preset,
        "scope": scope,
        "hot_ratio": _threshold(r.hot_ratio),
        "asset_hot_ratio": asset_ratio,
        "guarantee_coverage": _coverage(r.guarantee_coverage),
        "reserve_coverage": _coverage(r.reserve_coverage),
        "commingling": _threshold(r.commingling),
        "hot_floor": floor,
        "hot_drain": {
            "min_value": _dec(r.hot_drain.min_value),
            "windows": [f"{units.format_duration(w.window)} {_dec(w.drop)} {w.severity}"
                        for w in r.hot_drain.windows],
        },
        "stale_data": {"max_age": units.format_duration(r.stale_data.max_age)},
        "cold_outflow": "on" if r.cold_outflow else _OFF,
        "config_changed": "on" if r.config_changed else _OFF,
        **_transfer_rules(r),
    }


def _transfer_rules(r: RuleSettings) -> dict[str, Any]:
    """The transfer rules, each only when it differs from the default (a config
    written before they existed keeps its digest)."""
    out: dict[str, Any] = {}
    if r.large_outflow is not None:
        out["large_outflow"] = {"max_single": _dec(r.large_outflow.max_single),
                                "severity": r.large_outflow.severity}
    ud = r.unknown_destination
    if ud != DEFAULT_UNKNOWN_DESTINATION:
        out["unknown_destination"] = _OFF if ud is None else {
            "severity": ud.severity, "assets": {s: _dec(a) for s, a in sorted(ud.assets.items())}}
    return out


def _wallet(w: WalletSettings) -> dict[str, Any]:
    out: dict[str, Any] = {"chain": w.chain, "tier": w.tier, "role": w.role,
                           "addresses": list(w.addresses), "assets": list(w.assets)}
    # Bitcoin keys only when set, so an Ethereum-only config keeps its digest
    if w.descriptors:
        out["descriptors"] = list(w.descriptors)
    if w.gap_limit != _GAP_LIMIT:
        out["gap_limit"] = str(w.gap_limit)
    if w.issued:
        out["issued"] = str(w.issued)
    return out


def _approvals(a: ApprovalsSettings) -> dict[str, Any]:
    items = {}
    for it in a.items:
        items[it.id] = {
            "wallet": it.wallet, "asset": it.asset, "to": it.to, "amount": _dec(it.amount),
            "not_after": it.not_after.isoformat(),
            "not_before": it.not_before.isoformat() if it.not_before else "",
        }
    return {"items": items, "keys": sorted(a.keys), "quorum": str(a.quorum)}


def _routes(a: AlertSettings) -> list[dict[str, Any]]:
    # `repeat_every` only when set, so a config without it keeps its digest
    return [{"severity": list(r.severity), "channels": list(r.channels), "rule": list(r.rule),
             "chain": list(r.chain), "wallet": list(r.wallet), "asset": list(r.asset),
             "continue": "true" if r.continue_ else "false",
             **({"repeat_every": str(r.repeat_every)} if r.repeat_every is not None else {})}
            for r in a.routes]


def config_material(settings: Settings) -> dict[str, Any]:
    """The JSON-able parts of the config whose change fires `config_changed`."""
    return {
        "wallets": {w.name: _wallet(w) for w in settings.wallets},
        "allow": sorted(f"{c.chain}:{c.address} {c.name}" for c in settings.counterparties),
        "approvals": _approvals(settings.approvals),
        "rules": _rules(settings.rules),
        "routes": _routes(settings.alerts),
        "channels": {c.name: {"type": c.type} for c in settings.alerts.channels},
    }


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def diff_material(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human lines: `wallets.eth-hot-1.addresses: added 0x…`, `rules.hot_ratio.critical: 0.05 → 0.06`."""
    out: list[str] = []
    _diff(old, new, "", out)
    return out


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            p = _join(path, str(key))
            if key not in new:
                out.append(f"{p}: removed")
            elif key not in old:
                out.append(f"{p}: added {_short(new[key])}")
            else:
                _diff(old[key], new[key], p, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        if all(isinstance(x, str) for x in old + new):
            out.extend(f"{path}: added {x}" for x in new if x not in old)
            out.extend(f"{path}: removed {x}" for x in old if x not in new)
            if not any(x not in old for x in new) and not any(x not in new for x in old):
                out.append(f"{path}: order {_short(old)} → {_short(new)}")
            return
        for i in range(max(len(old), len(new))):
            p = f"{path}[{i}]"
            if i >= len(new):
                out.append(f"{p}: removed {_short(old[i])}")
            elif i >= len(old):
                out.append(f"{p}: added {_short(new[i])}")
            else:
                _diff(old[i], new[i], p, out)
        return
    out.append(f"{path}: {_short(old)} → {_short(new)}")
