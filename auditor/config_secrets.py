"""`${NAME}` substitution and the watch-only guard against private keys.

Both walk the whole parsed tree before any section is validated, so a
private key is refused wherever it is written, even under a key that would
otherwise be "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .config_ctx import Ctx
from .config_yaml import index, join

__all__ = ["HASH_OR_SECRET_KEYS", "find_private_keys", "substitute_env"]

_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Keys whose values are hashes or secrets, where 64 hex digits are expected.
HASH_OR_SECRET_KEYS = frozenset({"txid", "sha256", "head", "secret", "routing_key", "password"})

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_XPRV = re.compile(r"(?<![A-Za-z0-9])([xtyzuvYZUV]prv[" + _B58 + r"]{50,})")
_WIF = re.compile(r"^[5KLc][" + _B58 + r"]{50,51}$")
_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_TOKEN_SPLIT = re.compile(r"[\s()\[\]{},;:\"'=<>*/]+")


def substitute_env(ctx: Ctx, data: Any, path: str = "") -> Any:
    """Replace `${NAME}` in every string value; `$${NAME}` is a literal `${NAME}`."""
    if isinstance(data, dict):
        return {k: substitute_env(ctx, v, join(path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env(ctx, v, index(path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return "${" + m.group(2) + "}"
        name = m.group(2)
        if name not in ctx.env:
            ctx.error_once(path, f"the environment variable {name} is not set; export {name}=… "
                            "before starting the auditor, or write the value here")
            return ""
        return ctx.env[name]

    return _VAR.sub(repl, data)


def _exempt(key: str | None) -> bool:
    if key is None:
        return False
    base = key.removesuffix("_file")
    return base in HASH_OR_SECRET_KEYS


def _looks_private(text: str) -> str | None:
    """What kind of private key `text` holds (or contains), if any."""
    if _XPRV.search(text):
        return "an extended private key"
    if _HEX64.match(text.strip()):
        return "a 64-hex-digit private key"
    for token in _TOKEN_SPLIT.split(text):
        if _WIF.match(token):
            return "a WIF private key"
        if _HEX64.match(token):
            return "a 64-hex-digit private key"
    return None


def _preview(text: str) -> str:
    m = _XPRV.search(text)
    start = m.start() if m else 0
    return text.strip()[start:start + 4] + "…"


def find_private_keys(ctx: Ctx, data: Any, path: str = "", key: str | None = None) -> Any:
    """Refuse private keys anywhere except under keys that hold a hash or a secret.

    Returns the data with each refused value replaced by its 4-character preview,
    so that no later message can echo the key material.
    """
    if isinstance(data, Mapping):
        return {k: find_private_keys(ctx, v, join(path, k), str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [find_private_keys(ctx, v, index(path, i), key) for i, v in enumerate(data)]
    if _exempt(key):
        return data
    text = data if isinstance(data, str) else None
    if isinstance(data, int) and not isinstance(data, bool):
        text = str(data)
    kind = _looks_private(text) if text else None
    if not kind or text is None:
        return data
    ctx.error_once(path, f"{_preview(text)} looks like {kind}; the auditor is watch-only and "
                         "never takes private keys: give the public key, xpub or address "
                         "instead (and treat this key as exposed)")
    return _preview(text)
