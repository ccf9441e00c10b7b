"""approvals (cold movements agreed in advance) and alerts (channels and routes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .approvals import check_item, key_problem, parse_key
from .config_chains import eth_address
from .config_channels import (
    CHANNEL_TYPES,
    COMMON_KEYS,
    ChannelKeys,
    channel_keys,
    read_channel_options,
)
from .config_ctx import Ctx
from .config_yaml import index, join
from .settings import (
    AlertSettings,
    ApprovalItem,
    ApprovalsSettings,
    AssetSettings,
    ChannelSettings,
    RetrySettings,
    RouteSettings,
    WalletSettings,
)

__all__ = ["RULE_IDS", "read_alerts", "read_approvals"]

RULE_IDS = ("hot_ratio", "asset_hot_ratio", "guarantee_coverage", "reserve_coverage",
            "commingling", "hot_floor", "hot_drain", "large_outflow", "cold_outflow",
            "unmatched_outflow", "unknown_destination", "sanctioned_counterparty",
            "safe_changed", "config_changed", "stale_data", "daily_record", "delivery_failed")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*/\s*(s|m|h)$")
_ITEM_KEYS = ("id", "wallet", "asset", "to", "amount", "not_after", "not_before", "signatures")


# -- approvals --------------------------------------------------------------
def read_approvals(ctx: Ctx, raw: Any, wallets: tuple[WalletSettings, ...],
                   assets: Mapping[str, AssetSettings], wallet_names: set[str] | None = None,
                   asset_names: set[str] | None = None) -> ApprovalsSettings | None:
    """`wallet_names`/`asset_names`: every name written (valid or not), to avoid cascades."""
    if raw is None:
        return ApprovalsSettings()
    if isinstance(raw, list):
        ctx.error("approvals", "approvals is now a mapping: move the list under `items:` and "
                               "add the signers' `keys:` (approvals: {items: [...], keys: "
                               "[\"ssh-ed25519 …\"], quorum: 2})")
        return None
    m = ctx.mapping("approvals", raw, keys=("items", "keys", "quorum"))
    if m is None:
        return None
    errors = ctx.error_count()
    keys = _keys(ctx, m.get("keys"))
    known = (wallet_names or {w.name for w in wallets}, asset_names or set(assets))
    items = _items(ctx, m.get("items"), wallets, known)
    default_quorum = max(len(keys or ()), 1)
    quorum = ctx.integer("approvals.quorum", m.get("quorum", default_quorum), minimum=1)
    if quorum is not None and keys and quorum > len(keys):
        ctx.error("approvals.quorum", f"quorum {quorum} is more than the {len(keys)} keys; "
                                      "lower it or add keys")
    if not keys:
        ctx.warn("approvals", "approvals are unsigned: anyone who can edit the config can "
                              "approve a cold outflow; add approvals.keys")
    if ctx.error_count() != errors or keys is None or items is None or quorum is None:
        return None
    _unsigned(ctx, items, keys, quorum)
    return ApprovalsSettings(items=tuple(items), keys=tuple(keys), quorum=quorum)


def _keys(ctx: Ctx, raw: Any) -> list[str] | None:
    if raw is None:
        return []
    keys = ctx.text_list("approvals.keys", raw, allow_single=False)
    seen: dict[bytes, int] = {}
    for i, k in enumerate(keys or ()):
        why = key_problem(k)
        parsed = parse_key(k)
        if why is not None or parsed is None:
            ctx.error(index("approvals.keys", i), f"{k[:16]}… is not an ssh-ed25519 public key "
                      f"({why}); paste the line of the signer's id_ed25519.pub (\"ssh-ed25519 "
                      "AAAA… name\"), or make one with `ssh-keygen -t ed25519`")
        elif parsed.blob in seen:
            ctx.error(index("approvals.keys", i), "the same key as "
                      f"approvals.keys[{seen[parsed.blob]}]; each signer needs a key of their "
                      "own: remove the copy")
        else:
            seen[parsed.blob] = i
    return keys


def _unsigned(ctx: Ctx, items: list[ApprovalItem], keys: list[str], quorum: int) -> None:
    """With keys, an item without a quorum of valid signatures does not count: say so now."""
    if not keys:
        return
    for i, item in enumerate(items):  # no errors in approvals: items[i] is the i-th item written
        report = check_item(item, keys, quorum)
        if not report.ok:
            ctx.warn(join(index("approvals.items", i), "signatures"),
                     f"{report.problem}. It will not count: a cold outflow it describes still "
                     "fires cold_outflow. Have the signers sign it (`auditor approvals verify "
                     "FILE --show-canonical` prints what to sign)", f'approval "{item.id}"')


def _items(ctx: Ctx, raw: Any, wallets: tuple[WalletSettings, ...],
           known: tuple[set[str], set[str]]) -> list[ApprovalItem] | None:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.error("approvals.items", "expected a list of approval items (`- id: …`)")
        return None
    out: list[ApprovalItem] = []
    for i, item in enumerate(raw):
        a = _item(ctx, index("approvals.items", i), item, wallets, known)
        if a is None:
            continue
        if any(o.id == a.id for o in out):
            ctx.error(join(index("approvals.items", i), "id"),
                      f"the id {a.id!r} is already used; each item needs its own id")
        out.append(a)
    return out


def _item(ctx: Ctx, path: str, raw: Any, wallets: tuple[WalletSettings, ...],
          known: tuple[set[str], set[str]]) -> ApprovalItem | None:
    ident = raw.get("id") if isinstance(raw, dict) else None
    who = f'approval "{ident}"' if ident is not None else ""
    m = ctx.mapping(path, raw, keys=_ITEM_KEYS, who=who,
                    required=("id", "wallet", "asset", "not_after"))
    if m is None:
        return None
    for key in ("to", "amount"):
        if key not in m:
            ctx.error(path, f"`{key}` is required: an item without a destination and an "
                            f"amount would approve any movement of the wallet; add `{key}: …`",
                      who)
    errors = ctx.error_count()
    by_name = {w.name: w for w in wallets}
    ident = ctx.text(join(path, "id"), m["id"], who) if "id" in m else None
    wallet = ctx.text(join(path, "wallet"), m["wallet"], who) if "wallet" in m else None
    if wallet is not None:
        w = by_name.get(wallet)
        if w is None and wallet not in known[0]:
            ctx.error(join(path, "wallet"), f"unknown wallet `{wallet}`; name a wallet from "
                                            "`wallets`", who)
        elif w is not None and w.tier != "cold":
            ctx.error(join(path, "wallet"), f"wallet {wallet} is {w.tier}, not cold: approvals "
                                            "are for cold-wallet movements only", who)
    asset = ctx.text(join(path, "asset"), m["asset"], who) if "asset" in m else None
    if asset is not None and asset not in known[1]:
        ctx.error(join(path, "asset"), f"unknown asset `{asset}`; declare it under `assets`",
                  who)
    to = _destination(ctx, join(path, "to"), m["to"], wallets, known[0], who) \
        if "to" in m else None
    amount = (ctx.decimal(join(path, "amount"), m["amount"], who, positive=True)
              if "amount" in m else None)
    not_after = _time(ctx, join(path, "not_after"), m["not_after"], who) if "not_after" in m \
        else None
    not_before = _time(ctx, join(path, "not_before"), m["not_before"], who) \
        if m.get("not_before") is not None else None
    if not_before and not_after and not_before >= not_after:
        ctx.error(join(path, "not_before"), "must be earlier than not_after", who)
    sigs = ctx.text_list(join(path, "signatures"), m.get("signatures") or [], who)
    if ctx.error_count() != errors or None in (ident, wallet, asset, to, amount, not_after):
        return None
    return ApprovalItem(id=ident, wallet=wallet, asset=asset, to=to,  # type: ignore[arg-type]
                        amount=amount, not_after=not_after,  # type: ignore[arg-type]
                        not_before=not_before, signatures=tuple(sigs or ()))


def _destination(ctx: Ctx, path: str, raw: Any, wallets: tuple[WalletSettings, ...],
                 wallet_names: set[str], who: str) -> str | None:
    """An own wallet's name, or an address of an own wallet."""
    text = ctx.text(path, raw, who)
    if text is None:
        return None
    if text in wallet_names:
        return text
    if text.startswith("0x"):
        addr = eth_address(ctx, path, text, who)
        if addr is not None and any(addr in w.addresses for w in wallets):
            return addr
        if addr is None:
            return None
    ctx.error(path, f"{text!r} is not one of the exchange's own wallets; name the destination "
                    "wallet (cold movements go to own wallets)", who)
    return None


def _time(ctx: Ctx, path: str, raw: Any, who: str) -> datetime | None:
    text = ctx.text(path, raw, who)
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        ctx.error(path, f"{text!r} is not an RFC 3339 time with a time zone; write e.g. "
                        "\"2026-12-01T06:00:00Z\"", who)
        return None
    return t


# -- alerts -----------------------------------------------------------------
def _retry(ctx: Ctx, path: str, raw: Any, base: RetrySettings, who: str = "") -> RetrySettings | None:
    m = ctx.mapping(path, raw, keys=("first", "max", "budget"), who=who)
    if m is None:
        return None
    first = ctx.duration(join(path, "first"), m.get("first", base.first), who, minimum=1)
    most = ctx.duration(join(path, "max"), m.get("max", base.max), who, minimum=1)
    budget = ctx.duration(join(path, "budget"), m.get("budget", base.budget), who, minimum=1)
    if first is None or most is None or budget is None:
        return None
    if first > most:
        ctx.error(join(path, "first"), "the first retry wait is longer than `max`; lower it",
                  who)
        return None
    return RetrySettings(first=first, max=most, budget=budget)


def _rate(ctx: Ctx, path: str, raw: Any, who: str) -> Decimal | None:
    per = {"s": 1, "m": 60, "h": 3600}
    if isinstance(raw, str) and (m := _RATE.match(raw.strip())):
        if Decimal(m[1]) > 0:
            return Decimal(m[1]) / per[m[2]]
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return Decimal(getattr(raw, "text", str(raw)))
    ctx.error(path, f"{raw!r} is not a rate; write messages per time such as \"1/s\" or "
                    "\"30/m\"", who)
    return None


def _channel(ctx: Ctx, path: str, raw: Any, retry: RetrySettings) -> ChannelSettings | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    who = f'channel "{name}"' if isinstance(name, str) else ""
    kind = raw.get("type") if isinstance(raw, dict) else None
    spec = channel_keys(kind)
    if isinstance(raw, dict) and "type" in raw and spec is None:
        ctx.choice(join(path, "type"), kind, CHANNEL_TYPES, who)
        return None  # the other keys depend on the type
    spec = spec or ChannelKeys()
    m = ctx.mapping(path, raw, keys=COMMON_KEYS + spec.all,
                    required=("name", "type") + spec.required, secrets=spec.secrets, who=who)
    if m is None:
        return None
    errors = ctx.error_count()
    name = ctx.text(join(path, "name"), m["name"], who) if "name" in m else None
    options = read_channel_options(ctx, path, str(kind), m, who) if "type" in m else None
    timeout = ctx.duration(join(path, "timeout"), m.get("timeout", "10s"), who, minimum=1)
    own_retry = _retry(ctx, join(path, "retry"), m["retry"], retry, who) if "retry" in m \
        else None
    rate = _rate(ctx, join(path, "rate"), m["rate"], who) if "rate" in m else None
    if ctx.error_count() != errors or name is None or options is None or timeout is None:
        return None
    return ChannelSettings(name=name, type=kind,  # type: ignore[arg-type]
                           timeout=timeout, retry=own_retry, rate=rate, **options)


def _route(ctx: Ctx, path: str, raw: Any, channels: set[str],
           names: Mapping[str, set[str]]) -> RouteSettings | None:
    m = ctx.mapping(path, raw, required=("channels",),
                    keys=("severity", "channels", "rule", "chain", "wallet", "asset", "continue",
                          "repeat_every"))
    if m is None:
        return None
    errors = ctx.error_count()
    severity = ctx.severity_list(join(path, "severity"), m.get("severity", ["warning",
                                                                           "critical"]))
    chans = ctx.text_list(join(path, "channels"), m.get("channels")) if "channels" in m else None
    for i, c in enumerate(chans or ()):
        if c not in channels:
            known = ", ".join(sorted(channels)) or "none"
            ctx.error(index(join(path, "channels"), i),
                      f"unknown channel `{c}`; name one of alerts.channels ({known})")
    matchers: dict[str, list[str]] = {}
    for key in ("rule", "chain", "wallet", "asset"):
        items = ctx.text_list(join(path, key), m.get(key) or [])
        for i, v in enumerate(items or ()):
            if v not in names[key]:
                ctx.error(index(join(path, key), i), f"unknown {key} `{v}`; the route would "
                                                     "never match")
        matchers[key] = items or []
    cont = m.get("continue", False)  # first match wins, as in Alertmanager
    if not isinstance(cont, bool):
        ctx.error(join(path, "continue"), "expected true or false (true: later matching "
                                          "routes get the alert too)")
    repeat = (ctx.duration(join(path, "repeat_every"), m["repeat_every"], minimum=1)
              if m.get("repeat_every") is not None else None)
    if ctx.error_count() != errors or severity is None or not chans:
        return None
    return RouteSettings(channels=tuple(chans), severity=tuple(severity),
                         rule=tuple(matchers["rule"]), chain=tuple(matchers["chain"]),
                         wallet=tuple(matchers["wallet"]), asset=tuple(matchers["asset"]),
                         continue_=bool(cont), repeat_every=repeat)


def read_alerts(ctx: Ctx, raw: Any, names: Mapping[str, set[str]]) -> AlertSettings | None:
    """`names` holds the known rule/chain/wallet/asset names routes may match on."""
    m = ctx.mapping("alerts", {} if raw is None else raw,
                    keys=("repeat_every", "retry", "channels", "routes"))
    if m is None:
        return None
    errors = ctx.error_count()
    repeat = ctx.duration("alerts.repeat_every", m.get("repeat_every", "1h"), minimum=1)
    retry = _retry(ctx, "alerts.retry", m["retry"], RetrySettings()) if "retry" in m \
        else RetrySettings()
    channels: list[ChannelSettings] = []
    raw_channels = m.get("channels") or []
    if not isinstance(raw_channels, list):
        ctx.error("alerts.channels", "expected a list of channels (`- name: …`)")
        raw_channels = []
    for i, c in enumerate(raw_channels):
        ch = _channel(ctx, index("alerts.channels", i), c, retry or RetrySettings())
        if ch is not None and any(o.name == ch.name for o in channels):
            ctx.error(join(index("alerts.channels", i), "name"),
                      f"the channel name {ch.name!r} is already used; names must be unique")
        elif ch is not None:
            channels.append(ch)
    declared = {c.get("name") for c in raw_channels if isinstance(c, dict)}
    routes = _routes(ctx, m.get("routes"), {str(n) for n in declared}, names)
    if not raw_channels:
        channels = [ChannelSettings(name="console", type="log")]
        routes = [RouteSettings(channels=("console",))]
        ctx.warn("alerts.channels", "no alert channels configured: alerts go to a `console` "
                                    "log channel (stderr) only; add a webhook channel and routes")
    elif not routes and "routes" not in m:
        ctx.warn("alerts.routes", "no routes: no alert will be delivered; add e.g. "
                                  "`routes: [{severity: [critical], channels: [...]}]`")
    if ctx.error_count() != errors or repeat is None or retry is None:
        return None
    return AlertSettings(repeat_every=repeat, retry=retry, channels=tuple(channels),
                         routes=tuple(routes))


def _routes(ctx: Ctx, raw: Any, channels: set[str],
            names: Mapping[str, set[str]]) -> list[RouteSettings]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.error("alerts.routes", "expected a list of routes (`- severity: [critical]`)")
        return []
    out = [_route(ctx, index("alerts.routes", i), r, channels, names) for i, r in enumerate(raw)]
    return [r for r in out if r is not None]
