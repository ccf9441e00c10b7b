"""The `safe` key of wallets: an Ethereum wallet whose one address is a Safe multisig."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config_ctx import Ctx
from .config_yaml import join

__all__ = ["refuse_safe_on_bitcoin", "read_safe_flag"]


def refuse_safe_on_bitcoin(ctx: Ctx, path: str, item: dict[str, Any], who: str) -> dict[str, Any]:
    """A bitcoin wallet with `safe`: an error, and the item without the key."""
    if "safe" not in item:
        return item
    ctx.error(join(path, "safe"), "`safe` is for wallets on Ethereum chains (a Safe is an "
                                  "Ethereum contract); remove it", who)
    return {k: v for k, v in item.items() if k != "safe"}


def read_safe_flag(ctx: Ctx, path: str, m: dict[str, Any], addresses: Sequence[str] | None,
                   who: str) -> bool | None:
    """`safe: true|false` (default false); true needs exactly one address, the Safe's."""
    raw = m.get("safe", False)
    p = join(path, "safe")
    if not isinstance(raw, bool):
        ctx.error(p, "expected true or false (true: the wallet's address is a Safe multisig "
                     "whose owners, threshold, modules and implementation are watched)", who)
        return None
    if raw and addresses is not None and len(addresses) != 1:
        ctx.error(p, f"a `safe: true` wallet has exactly one address, the Safe's; this one "
                     f"lists {len(addresses)}: put each Safe in a wallet of its own", who)
        return None
    return raw
