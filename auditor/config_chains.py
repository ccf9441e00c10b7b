"""chains, assets and wallets: what is watched, where, and under which label."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from eth_utils.crypto import keccak

from .config_bitcoin import (
    BTC_CHAIN_KEYS,
    BTC_DECIMALS,
    BTC_WALLET_KEYS,
    bitcoin_networks,
    read_bitcoin_chain,
    read_bitcoin_wallet,
)
from .config_ctx import Ctx
from .config_safe import read_safe_flag, refuse_safe_on_bitcoin
from .config_sections import check_url
from .config_yaml import index, join
from .settings import (
    AssetSettings,
    ChainSettings,
    Deployment,
    RpcEndpoint,
    Secret,
    WalletSettings,
    redact_url,
)

__all__ = ["MULTICALL3", "ChainNames", "eth_address", "read_assets", "read_chains",
           "read_wallets"]

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$")
_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
CLASSES = ("crypto", "stablecoin")
TIERS = ("hot", "warm", "deposit", "cold")
ROLES = ("customer", "guarantee", "proprietary")


def _checksum(address: str) -> str:
    """EIP-55 of a validated 0x + 40-hex address: one keccak, no re-validation
    (eth_utils validates twice; a 100k-address deposit fleet notices)."""
    lower = address[2:].lower()
    digest = keccak(text=lower).hex()
    return "0x" + "".join(c.upper() if d in "89abcdef" else c
                          for c, d in zip(lower, digest[:40], strict=True))


def eth_address(ctx: Ctx, path: str, value: Any, who: str = "") -> str | None:
    """An EIP-55 address; all-lowercase is accepted and checksummed, other mixes refused."""
    text = ctx.text(path, value, who)
    if text is None:
        return None
    if text.endswith(".eth") or ("." in text and not text.startswith("0x")):
        ctx.error(path, f"{text} looks like an ENS name; names can be repointed by their "
                        "owner, so write the 0x address itself", who)
        return None
    if not _HEX40.match(text):
        ctx.error(path, f"{text[:12]}… is not an Ethereum address; write 0x followed by 40 "
                        "hex digits", who)
        return None
    checksummed = _checksum(text)
    if text[2:] == text[2:].lower():
        return checksummed
    if text != checksummed:
        ctx.error(path, f"{text} is not a valid EIP-55 checksum address; write it as "
                        f"{checksummed} (checksummed) or all lowercase — and "
                        "check it is the address you meant: a wrong checksum is often a typo",
                  who)
        return None
    return text


# -- chains -----------------------------------------------------------------
class ChainNames(set[str]):
    """Every declared chain name, valid or not (so references do not cascade).
    `bitcoin` maps the names written as `type: bitcoin` to their network (None
    when it is invalid): assets and wallets on them are checked the bitcoin way."""

    def __init__(self, names: set[str], bitcoin: dict[str, str | None]):
        super().__init__(names)
        self.bitcoin = bitcoin


def _bitcoin(chain_names: set[str]) -> dict[str, str | None]:
    return chain_names.bitcoin if isinstance(chain_names, ChainNames) else {}


def read_chains(ctx: Ctx, raw: Any) -> tuple[dict[str, ChainSettings], set[str]]:
    """Valid chains, and every declared name (a `ChainNames`)."""
    if raw is None:
        ctx.error("chains", "no chains configured; add `chains: {ethereum: {type: ethereum, "
                            "rpc: [{url: …}]}}`")
        return {}, ChainNames(set(), {})
    if not isinstance(raw, dict) or not raw:
        ctx.error("chains", "expected a mapping of chain name to chain settings")
        return {}, ChainNames(set(), {})
    chains: dict[str, ChainSettings] = {}
    for name, body in raw.items():
        path = join("chains", name)
        if not _NAME.match(str(name)):
            ctx.error(path, f"chain name {name!r}: use letters, digits, `-`, `_`")
            continue
        chain = _read_chain(ctx, path, str(name), body)
        if chain is not None:
            chains[str(name)] = chain
    return chains, ChainNames({str(n) for n in raw}, bitcoin_networks(raw))


def _read_chain(ctx: Ctx, path: str, name: str, body: Any) -> ChainSettings | None:
    who = f'chain "{name}"'
    if isinstance(body, dict) and body.get("type") == "bitcoin":
        return read_bitcoin_chain(ctx, path, name, body, who)
    if isinstance(body, dict):
        for key in BTC_CHAIN_KEYS:
            if key in body:
                ctx.error(join(path, key), f"`{key}` is a key of `type: bitcoin` chains; remove "
                                           "it (or set `type: bitcoin`)", who)
        body = {k: v for k, v in body.items() if k not in BTC_CHAIN_KEYS}
    m = ctx.mapping(path, body, who=who, required=("type", "rpc"),
                    keys=("type", "rpc", "confirmations", "max_head_age", "multicall3"))
    if m is None:
        return None
    errors = ctx.error_count()
    if "type" in m:
        ctx.choice(join(path, "type"), m["type"], ("ethereum", "bitcoin"), who)
    rpc = _read_rpc(ctx, join(path, "rpc"), m["rpc"], who) if "rpc" in m else ()
    confirmations = ctx.integer(join(path, "confirmations"), m.get("confirmations", 12), who,
                                minimum=1)
    head_age = ctx.duration(join(path, "max_head_age"), m.get("max_head_age", "2m"), who,
                            minimum=1)
    multicall: str | None = MULTICALL3
    if "multicall3" in m:
        multicall = None if m["multicall3"] is None else eth_address(
            ctx, join(path, "multicall3"), m["multicall3"], who)
    if ctx.error_count() != errors or confirmations is None or head_age is None:
        return None
    return ChainSettings(name=name, type="ethereum", rpc=rpc, confirmations=confirmations,
                         max_head_age=head_age, multicall3=multicall)


def _read_rpc(ctx: Ctx, path: str, raw: Any, who: str) -> tuple[RpcEndpoint, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.error(path, "expected a list of providers: `rpc: [{url: http://…}]`", who)
        return ()
    out = []
    for i, item in enumerate(raw):
        p = index(path, i)
        if isinstance(item, str):
            item = {"url": item}
        m = ctx.mapping(p, item, keys=("url", "timeout"), secrets=("url",),
                        required=("url",), who=who)
        if m is None or "url" not in m:
            continue
        url = ctx.text(join(p, "url"), m["url"], who)
        timeout = ctx.duration(join(p, "timeout"), m.get("timeout", "10s"), who, minimum=1)
        ok = url and check_url(ctx, join(p, "url"), url, ("http", "https", "ws", "wss"), who)
        if ok and url and timeout is not None:
            out.append(RpcEndpoint(url=Secret(url), label=redact_url(url), timeout=timeout))
    if len(raw) == 1:
        ctx.warn(path, "single provider: a lying or stale node cannot be detected; add a "
                       "second rpc entry", who)
    return tuple(out)


# -- assets -----------------------------------------------------------------
def read_assets(ctx: Ctx, raw: Any, chain_names: set[str]) -> dict[str, AssetSettings]:
    if raw is None:
        ctx.error("assets", "no assets configured; add e.g. `assets: {ETH: {class: crypto, "
                            "chain: ethereum, decimals: 18}}`")
        return {}
    if not isinstance(raw, dict):
        ctx.error("assets", "expected a mapping of symbol to asset settings")
        return {}
    assets: dict[str, AssetSettings] = {}
    natives: dict[str, str] = {}
    for sym, body in raw.items():
        path = join("assets", sym)
        if not _SYMBOL.match(str(sym)):
            ctx.error(path, f"asset symbol {sym!r}: use letters, digits, `.`, `-`, `_`")
            continue
        asset = _read_asset(ctx, path, str(sym), body, chain_names)
        if asset is None:
            continue
        assets[str(sym)] = asset
        for d in asset.deployments:
            if d.token is None and d.chain in natives:
                ctx.error(path, f"{d.chain} already has a native coin, {natives[d.chain]}; "
                                "give this asset's `token` address", f'asset "{sym}"')
            elif d.token is None:
                natives[d.chain] = str(sym)
    return assets


def _read_asset(ctx: Ctx, path: str, sym: str, body: Any,
                chain_names: set[str]) -> AssetSettings | None:
    who = f'asset "{sym}"'
    m = ctx.mapping(path, body, who=who, required=("class",),
                    keys=("class", "chain", "token", "decimals", "deployments"))
    if m is None:
        return None
    errors = ctx.error_count()
    cls = ctx.choice(join(path, "class"), m["class"], CLASSES, who) if "class" in m else None
    if "deployments" in m:
        clash = [k for k in ("chain", "token", "decimals") if k in m]
        if clash:
            ctx.error(join(path, clash[0]), f"`{clash[0]}` goes inside each entry of "
                                            "`deployments`, not next to it", who)
        deployments = _read_deployments(ctx, join(path, "deployments"), m["deployments"],
                                        chain_names, who)
    else:
        d = _read_deployment(ctx, path, m, chain_names, who)
        deployments = [d] if d else []
    if ctx.error_count() != errors or cls is None or not deployments:
        return None
    return AssetSettings(symbol=sym, cls=cls, decimals=max(d.decimals for d in deployments),
                         deployments=tuple(deployments))


def _read_deployments(ctx: Ctx, path: str, raw: Any, chain_names: set[str],
                      who: str) -> list[Deployment]:
    if not isinstance(raw, list) or not raw:
        ctx.error(path, "expected a list: `deployments: [{chain: …, token: …, decimals: …}]`",
                  who)
        return []
    out: list[Deployment] = []
    for i, item in enumerate(raw):
        p = index(path, i)
        m = ctx.mapping(p, item, keys=("chain", "token", "decimals"), who=who)
        d = _read_deployment(ctx, p, m, chain_names, who) if m is not None else None
        if d is None:
            continue
        if any(o.chain == d.chain for o in out):
            ctx.error(join(p, "chain"), f"{d.chain} is listed twice; one deployment per chain",
                      who)
        out.append(d)
    return out


def _read_deployment(ctx: Ctx, path: str, m: dict[str, Any], chain_names: set[str],
                     who: str) -> Deployment | None:
    for key in ("chain", "decimals"):
        if key not in m:
            ctx.error(path, f"`{key}` is required; add `{key}: …`", who)
    chain = ctx.text(join(path, "chain"), m["chain"], who) if "chain" in m else None
    if chain is not None and chain not in chain_names:
        ctx.error(join(path, "chain"), _unknown_chain(chain, chain_names), who)
        chain = None
    decimals = (ctx.integer(join(path, "decimals"), m["decimals"], who, minimum=0, maximum=77)
                if "decimals" in m else None)
    if chain is not None and chain in _bitcoin(chain_names):
        return _bitcoin_deployment(ctx, path, m, chain, decimals, who)
    token = None
    if m.get("token") is not None:
        token = eth_address(ctx, join(path, "token"), m["token"], who)
        if token is None:
            return None
    if chain is None or decimals is None:
        return None
    return Deployment(chain=chain, token=token, decimals=decimals)


def _bitcoin_deployment(ctx: Ctx, path: str, m: dict[str, Any], chain: str,
                        decimals: int | None, who: str) -> Deployment | None:
    if m.get("token") is not None:
        ctx.error(join(path, "token"), f"{chain} is a bitcoin chain: it has no tokens, only "
                                       "its native coin; remove `token`", who)
        return None
    if decimals is not None and decimals != BTC_DECIMALS:
        ctx.error(join(path, "decimals"), f"bitcoin amounts are satoshis: `decimals` must be "
                                          f"{BTC_DECIMALS}, not {decimals}", who)
        return None
    return Deployment(chain=chain, token=None, decimals=decimals) if decimals is not None else None


def _unknown_chain(chain: str, chain_names: set[str]) -> str:
    known = ", ".join(sorted(chain_names)) or "none"
    return f"unknown chain `{chain}`; declare it under `chains` (configured: {known})"


def native_assets(chains: dict[str, ChainSettings],
                  assets: Mapping[str, AssetSettings]) -> dict[str, ChainSettings]:
    """Chains with `native_asset` set to the symbol of their native coin."""
    out = dict(chains)
    for sym, asset in assets.items():
        for d in asset.deployments:
            if d.token is None and d.chain in out:
                out[d.chain] = dataclasses.replace(out[d.chain], native_asset=sym)
    return out


# -- wallets ----------------------------------------------------------------
def read_wallets(ctx: Ctx, raw: Any, chain_names: set[str], assets: Mapping[str, AssetSettings],
                 asset_names: set[str] | None = None) -> tuple[WalletSettings, ...]:
    if raw is None:
        ctx.error("wallets", "no wallets configured; add `wallets: [{name: …, chain: …, "
                             "tier: hot, role: customer, addresses: [0x…]}]`")
        return ()
    if not isinstance(raw, list):
        ctx.error("wallets", "expected a list of wallets (`- name: …`)")
        return ()
    out: list[WalletSettings] = []
    names: dict[str, int] = {}
    seen: dict[tuple[str, str], str] = {}
    for i, item in enumerate(raw):
        path = index("wallets", i)
        w = _read_wallet(ctx, path, item, chain_names, assets,
                         set(assets) if asset_names is None else asset_names)
        if w is None:
            continue
        if w.name in names:
            ctx.error(join(path, "name"), f"the name {w.name!r} is already used by wallets"
                                          f"[{names[w.name]}]; wallet names must be unique")
        names.setdefault(w.name, i)
        for j, addr in enumerate(w.addresses):
            key = (w.chain, addr.lower())
            if key in seen and seen[key] != w.name:
                ctx.error(index(join(path, "addresses"), j),
                          f"{addr} is also in wallet \"{seen[key]}\"; an address belongs to "
                          "one wallet (it would be counted twice)", f'wallet "{w.name}"')
            seen.setdefault(key, w.name)
        for j, d in enumerate(w.descriptors):
            key = (w.chain, d)
            if key in seen and seen[key] != w.name:
                ctx.error(index(join(path, "descriptors"), j),
                          f"this descriptor is also in wallet \"{seen[key]}\"; its addresses "
                          "belong to one wallet (they would be counted twice)", f'wallet "{w.name}"')
            seen.setdefault(key, w.name)
        out.append(w)
    return tuple(out)


def _read_wallet(ctx: Ctx, path: str, item: Any, chain_names: set[str],
                 assets: Mapping[str, AssetSettings], asset_names: set[str]
                 ) -> WalletSettings | None:
    name = item.get("name") if isinstance(item, dict) else None
    who = f'wallet "{name}"' if isinstance(name, str) else f"wallet {path}"
    chain_raw = item.get("chain") if isinstance(item, dict) else None
    on_bitcoin = isinstance(chain_raw, str) and chain_raw in _bitcoin(chain_names)
    if isinstance(item, dict) and not on_bitcoin:
        item = _without_bitcoin_keys(ctx, path, item, who)
    elif isinstance(item, dict):
        item = refuse_safe_on_bitcoin(ctx, path, item, who)
    m = ctx.mapping(path, item, who=who,
                    required=("name", "chain", "tier") + (() if on_bitcoin else ("addresses",)),
                    keys=("name", "chain", "tier", "role", "addresses", "assets")
                    + (BTC_WALLET_KEYS if on_bitcoin else ("safe",)))
    if m is None:
        return None
    errors = ctx.error_count()
    name = ctx.text(join(path, "name"), m["name"], who, pattern=_NAME,
                    hint="use letters, digits, `-`, `_`, `.`") if "name" in m else None
    chain = ctx.text(join(path, "chain"), m["chain"], who) if "chain" in m else None
    if chain is not None and chain not in chain_names:
        ctx.error(join(path, "chain"), _unknown_chain(chain, chain_names), who)
    tier = ctx.choice(join(path, "tier"), m["tier"], TIERS, who) if "tier" in m else None
    role = _role(ctx, path, m, who)
    if role == "guarantee" and tier not in (None, "cold"):
        ctx.error(join(path, "tier"), f"a `role: guarantee` wallet must be `tier: cold` (the "
                                      f"performance guarantee is held offline), not {tier}", who)
    if on_bitcoin:
        btc = read_bitcoin_wallet(ctx, path, m, _bitcoin(chain_names)[str(chain_raw)], who)
    else:
        eth = _addresses(ctx, join(path, "addresses"), m.get("addresses"), who)
        btc = (tuple(eth), (), 20, 0) if eth is not None else None
    safe = False if on_bitcoin else read_safe_flag(ctx, path, m, eth, who)
    held = _wallet_assets(ctx, join(path, "assets"), m.get("assets"), chain, assets,
                          asset_names, who)
    if ctx.error_count() != errors or btc is None or None in (name, chain, tier, role, held, safe):
        return None
    addresses, descriptors, gap_limit, issued = btc
    return WalletSettings(name=name, chain=chain, tier=tier, role=role,  # type: ignore[arg-type]
                          addresses=addresses, assets=tuple(held or ()),
                          descriptors=descriptors, gap_limit=gap_limit, issued=issued,
                          safe=bool(safe))


def _without_bitcoin_keys(ctx: Ctx, path: str, item: dict[str, Any], who: str) -> dict[str, Any]:
    for key in BTC_WALLET_KEYS:
        if key in item:
            ctx.error(join(path, key), f"`{key}` is for wallets on `type: bitcoin` chains; "
                                       f"remove it, or put the wallet on a bitcoin chain", who)
    return {k: v for k, v in item.items() if k not in BTC_WALLET_KEYS}


def _role(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> str | None:
    if "role" not in m:
        ctx.error(path, "`role` is required: customer | guarantee | proprietary. Every wallet "
                        "must say whose coins it holds, because an unlabelled treasury wallet "
                        "flatters every ratio", who)
        return None
    return ctx.choice(join(path, "role"), m["role"], ROLES, who)


def _addresses(ctx: Ctx, path: str, raw: Any, who: str) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        ctx.error(path, "expected a list of addresses: `addresses: [\"0x…\"]`", who)
        return None
    out = [eth_address(ctx, index(path, i), a, who) for i, a in enumerate(raw)]
    if None in out:
        return None
    result: list[str] = []
    seen: set[str] = set()  # a deposit fleet has 100k addresses: no list scans
    for i, a in enumerate(out):
        if a in seen:
            ctx.error(index(path, i), f"{a} is listed twice; remove one", who)
        else:
            seen.add(a)  # type: ignore[arg-type]
            result.append(a)  # type: ignore[arg-type]
    return result


def _wallet_assets(ctx: Ctx, path: str, raw: Any, chain: str | None,
                   assets: Mapping[str, AssetSettings], asset_names: set[str],
                   who: str) -> list[str] | None:
    on_chain = [s for s, a in assets.items() if chain and a.on_chain(chain)]
    if raw is None:
        return on_chain
    listed = ctx.text_list(path, raw, who)
    if listed is None:
        return None
    for i, sym in enumerate(listed):
        if sym not in asset_names:
            ctx.error(index(path, i), f"unknown asset `{sym}`; declare it under `assets`", who)
        elif chain and sym in assets and sym not in on_chain:
            ctx.error(index(path, i), f"{sym} has no deployment on {chain}; add one under "
                                      f"`assets.{sym}` or remove it here", who)
    return listed
