"""`type: bitcoin` chains (network, backends) and the keys of wallets on them
(addresses, descriptors, xpub, gap_limit, issued), checked against the chain's
network with auditor.chains.bitcoin.descriptors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from .chains.bitcoin.descriptors import (
    NETWORKS,
    branches,
    check_address,
    check_descriptor,
    xpub_descriptor,
)
from .config_ctx import Ctx
from .config_sections import check_url
from .config_yaml import index, join
from .settings import BackendSettings, ChainSettings, Secret, redact_url

__all__ = ["BTC_CHAIN_KEYS", "BTC_DECIMALS", "BTC_WALLET_KEYS", "BitcoinWallet", "bitcoin_networks",
           "read_bitcoin_chain", "read_bitcoin_wallet"]

BTC_CHAIN_KEYS = ("network", "backends")
BTC_DECIMALS = 8  # amounts are satoshis
BTC_WALLET_KEYS = ("descriptors", "xpub", "gap_limit", "issued")
_ETH_CHAIN_KEYS = {"rpc": "a bitcoin chain lists its servers under `backends`",
                   "multicall3": "Multicall3 is an Ethereum contract; remove it"}
_BACKENDS = ("esplora", "electrum", "bitcoind")
_SCHEMES = {"esplora": ("http", "https"), "electrum": ("tcp", "ssl"), "bitcoind": ("http", "https")}
_BACKEND_KEYS = ("type", "url", "timeout", "concurrency", "cookie_file", "ca_file")

# addresses, descriptors, gap_limit, issued
BitcoinWallet = tuple[tuple[str, ...], tuple[str, ...], int, int]


# -- chains -------------------------------------------------------------------
def bitcoin_networks(raw: Any) -> dict[str, str | None]:
    """The chains written as `type: bitcoin` (valid or not), each with its network
    when that is valid: assets and wallets on them are checked the bitcoin way."""
    if not isinstance(raw, dict):
        return {}
    return {str(name): (body.get("network") if body.get("network") in NETWORKS else None)
            for name, body in raw.items()
            if isinstance(body, dict) and body.get("type") == "bitcoin"}


def read_bitcoin_chain(ctx: Ctx, path: str, name: str, body: dict[str, Any],
                       who: str) -> ChainSettings | None:
    for key, why in _ETH_CHAIN_KEYS.items():
        if key in body:
            ctx.error(join(path, key), f"`{key}` is a key of `type: ethereum` chains; {why}", who)
    body = {k: v for k, v in body.items() if k not in _ETH_CHAIN_KEYS}
    m = ctx.mapping(path, body, who=who, required=("type", "network", "backends"),
                    keys=("type", *BTC_CHAIN_KEYS, "confirmations", "max_head_age"))
    if m is None:
        return None
    errors = ctx.error_count()
    network = ctx.choice(join(path, "network"), m["network"], NETWORKS, who) \
        if "network" in m else None
    backends = _read_backends(ctx, join(path, "backends"), m["backends"], who) \
        if "backends" in m else ()
    confirmations = ctx.integer(join(path, "confirmations"), m.get("confirmations", 3), who,
                                minimum=1)
    head_age = ctx.duration(join(path, "max_head_age"), m.get("max_head_age", "2h"), who,
                            minimum=1)
    if ctx.error_count() != errors or None in (network, confirmations, head_age) or not backends:
        return None
    return ChainSettings(name=name, type="bitcoin", confirmations=cast(int, confirmations),
                         max_head_age=cast(int, head_age), multicall3=None, network=network,
                         backends=backends)


def _read_backends(ctx: Ctx, path: str, raw: Any, who: str) -> tuple[BackendSettings, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.error(path, "expected a list of servers: `backends: [{type: esplora, url: "
                        "http://…}]` (types: esplora, electrum, bitcoind)", who)
        return ()
    out: list[BackendSettings] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        backend = _read_backend(ctx, index(path, i), item, who)
        if backend is None:
            continue
        url = backend.url.reveal()
        if url in seen:
            ctx.error(index(path, i), f"{backend.label} is listed twice (as backends[{seen[url]}]); "
                                      "a second backend must be another server to cross-check", who)
        seen.setdefault(url, i)
        out.append(backend)
    if len(raw) == 1:
        ctx.warn(path, "single backend: a lying or stale server cannot be detected; add a "
                       "second backend entry", who)
    return tuple(out) if len(out) == len(raw) else ()


def _read_backend(ctx: Ctx, path: str, item: Any, who: str) -> BackendSettings | None:
    m = ctx.mapping(path, item, keys=_BACKEND_KEYS, secrets=("url",), required=("type", "url"),
                    who=who)
    if m is None or "type" not in m or "url" not in m:
        return None
    errors = ctx.error_count()
    kind = ctx.choice(join(path, "type"), m["type"], _BACKENDS, who)
    url = ctx.text(join(path, "url"), m["url"], who)
    timeout = ctx.duration(join(path, "timeout"), m.get("timeout", "10s"), who, minimum=1)
    concurrency = ctx.integer(join(path, "concurrency"), m.get("concurrency", 16), who,
                              minimum=1, maximum=1000)
    if kind is None or url is None or not check_url(ctx, join(path, "url"), url, _SCHEMES[kind],
                                                    who):
        return None
    cookie = _cookie_file(ctx, path, m, kind, url, who)
    ca_file = _ca_file(ctx, path, m, kind, url, who)
    if ctx.error_count() != errors or timeout is None or concurrency is None:
        return None
    return BackendSettings(type=cast(Literal["esplora", "electrum", "bitcoind"], kind),
                           url=Secret(url), label=redact_url(url), timeout=timeout,
                           concurrency=concurrency, cookie_file=cookie, ca_file=ca_file)


def _cookie_file(ctx: Ctx, path: str, m: dict[str, Any], kind: str, url: str,
                 who: str) -> Any:
    if "cookie_file" not in m:
        return None
    p = join(path, "cookie_file")
    if kind != "bitcoind":
        ctx.error(p, "`cookie_file` is for `type: bitcoind` (Bitcoin Core's .cookie); remove it",
                  who)
        return None
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        ctx.error(p, "the url already carries user:password; give either the credentials in "
                     "the url or `cookie_file`, not both", who)
        return None
    text = ctx.text(p, m["cookie_file"], who)
    # Not checked for existence: Core rewrites the cookie at every start, so it is read
    # at each connection (a missing file then is a read failure of this backend).
    return ctx.resolve_path(text) if text else None


def _ca_file(ctx: Ctx, path: str, m: dict[str, Any], kind: str, url: str, who: str) -> Any:
    if "ca_file" not in m:
        return None
    p = join(path, "ca_file")
    if kind != "electrum" or not url.startswith("ssl://"):
        ctx.error(p, "`ca_file` is for `type: electrum` servers at ssl://…; remove it", who)
        return None
    text = ctx.text(p, m["ca_file"], who)
    if text is None:
        return None
    file = ctx.resolve_path(text)
    if not file.is_file():
        ctx.error(p, f"{file} does not exist; give the PEM certificate of the server (or of "
                     "the CA that signed it); relative paths start at the config file", who)
        return None
    return file


# -- wallets ------------------------------------------------------------------
def read_bitcoin_wallet(ctx: Ctx, path: str, m: dict[str, Any], network: str | None,
                        who: str) -> BitcoinWallet | None:
    """A bitcoin wallet's addresses, descriptors, gap limit and issued count.
    `network` None: the chain itself is invalid (reported there); nothing is checked."""
    if not any(k in m for k in ("addresses", "descriptors", "xpub")):
        ctx.error(path, "give the wallet's `descriptors` (or `xpub`) and/or `addresses`", who)
        return None
    if network is None:
        return None
    errors = ctx.error_count()
    addresses = _addresses(ctx, join(path, "addresses"), m.get("addresses"), network, who)
    descriptors = _descriptors(ctx, path, m, network, who)
    gap = ctx.integer(join(path, "gap_limit"), m.get("gap_limit", 20), who, minimum=1)
    issued = ctx.integer(join(path, "issued"), m.get("issued", 0), who, minimum=0,
                         maximum=2**31)
    if issued and descriptors is not None and not any(
            b.ranged for d in descriptors for b in branches(d)):
        ctx.error(join(path, "issued"), "`issued` counts derived receive addresses; it needs "
                                        "a ranged descriptor (one ending in /*)", who)
    if ctx.error_count() != errors or addresses is None or descriptors is None \
            or gap is None or issued is None:
        return None
    return addresses, descriptors, gap, issued


def _addresses(ctx: Ctx, path: str, raw: Any, network: str, who: str) -> tuple[str, ...] | None:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        ctx.error(path, "expected a list of addresses: `addresses: [\"bc1q…\"]`", who)
        return None
    out: list[str] = []
    seen: set[str] = set()
    ok = True
    for i, item in enumerate(raw):
        p = index(path, i)
        text = ctx.text(p, item, who)
        if text is None:
            ok = False
            continue
        try:
            address = check_address(text, network)
        except ValueError as e:
            ctx.error(p, str(e), who)
            ok = False
            continue
        if address in seen:
            ctx.error(p, f"{address} is listed twice; remove one", who)
        seen.add(address)
        out.append(address)
    return tuple(out) if ok else None


def _descriptors(ctx: Ctx, path: str, m: dict[str, Any], network: str,
                 who: str) -> tuple[str, ...] | None:
    """`descriptors` then `xpub` entries, each as its canonical public descriptor."""
    entries: list[tuple[str, Any, Callable[[str, str], str]]] = []
    converters: tuple[tuple[str, Callable[[str, str], str]], ...] = (
        ("descriptors", check_descriptor), ("xpub", xpub_descriptor))
    for key, convert in converters:
        if key not in m:
            continue
        raw = m[key]
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            ctx.error(join(path, key), f"expected a list: `{key}: [\"…\"]`", who)
            return None
        entries += [(index(join(path, key), i), v, convert) for i, v in enumerate(items)]
    out: list[str] = []
    ok = True
    for p, item, convert in entries:
        text = ctx.text(p, item, who)
        try:
            descriptor = convert(text, network) if text is not None else None
        except ValueError as e:
            ctx.error(p, str(e), who)
            descriptor = None
        if descriptor is None:
            ok = False
        elif descriptor in out:
            ctx.error(p, "this descriptor is listed twice (after turning xpubs into "
                         "descriptors); remove one", who)
        else:
            out.append(descriptor)
    return tuple(out) if ok else None
