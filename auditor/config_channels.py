"""The type-specific keys of `alerts.channels[]`: which keys each channel type
takes, and their checks. `config_alerts` reads the keys every channel has
(name, type, timeout, retry, rate) and asks this module for the rest.

Secret keys (`url`, `secret`, `routing_key`, `bot_token`, `password`) also
accept a `<key>_file` twin and `${VAR}`; they become `settings.Secret`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from .config_ctx import Ctx
from .config_sections import check_url
from .config_yaml import index, join
from .settings import Secret

__all__ = ["CHANNEL_TYPES", "COMMON_KEYS", "ChannelKeys", "channel_keys", "read_channel_options"]

CHANNEL_TYPES = ("log", "webhook", "slack", "email", "pagerduty", "telegram", "teams")
COMMON_KEYS = ("name", "type", "timeout", "retry", "rate")

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_CHAT_ID = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$")
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$|^[^@\s<>\"]+@localhost$")


@dataclass(frozen=True)
class ChannelKeys:
    """The keys a channel type takes beyond COMMON_KEYS."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.required + self.optional


_KEYS = {
    "log": ChannelKeys(),
    "webhook": ChannelKeys(("url",), ("secret",), ("url", "secret")),
    "slack": ChannelKeys(("url",), (), ("url",)),
    "teams": ChannelKeys(("url",), (), ("url",)),
    "pagerduty": ChannelKeys(("routing_key",), ("url",), ("routing_key", "url")),
    "telegram": ChannelKeys(("bot_token", "chat_id"), ("url",), ("bot_token", "url")),
    "email": ChannelKeys(("smtp", "from", "to"),
                         ("starttls", "ssl", "insecure", "username", "password", "ca_file"),
                         ("password",)),
}


def channel_keys(kind: object) -> ChannelKeys | None:
    """The keys of channel type `kind`; None for an unknown type."""
    return _KEYS.get(kind) if isinstance(kind, str) else None


def read_channel_options(ctx: Ctx, path: str, kind: str, m: dict[str, Any],
                         who: str) -> dict[str, Any] | None:
    """The `ChannelSettings` fields of a channel's type-specific keys (already
    limited to `channel_keys(kind)` by `ctx.mapping`); None after a problem."""
    errors = ctx.error_count()
    reader = _READERS.get(kind)
    out = reader(ctx, path, m, who) if reader is not None else {}
    return out if ctx.error_count() == errors else None


# -- HTTP channels --------------------------------------------------------------
def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(ctx: Ctx, path: str, raw: Any, who: str, *, https_only: bool) -> Secret | None:
    url = ctx.text(path, raw, who)
    if url is None or not check_url(ctx, path, url, ("http", "https"), who):
        return None
    host = urlsplit(url).hostname or ""
    if https_only and urlsplit(url).scheme != "https" and not is_loopback(host):
        ctx.error(path, "must start with https:// (the URL or the message carries a "
                        "credential; http is only allowed to 127.0.0.1 or localhost)", who)
        return None
    return Secret(url)


def _secret_text(ctx: Ctx, path: str, raw: Any, who: str) -> Secret | None:
    text = ctx.text(path, raw, who)
    return Secret(text.strip()) if text is not None else None


def _webhook(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "url" in m:
        out["url"] = _url(ctx, join(path, "url"), m["url"], who, https_only=False)
    if "secret" in m:
        out["secret"] = _secret_text(ctx, join(path, "secret"), m["secret"], who)
    return out


def _hook_url(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    """slack and teams: just the incoming webhook URL (its path is the credential)."""
    if "url" not in m:
        return {}
    return {"url": _url(ctx, join(path, "url"), m["url"], who, https_only=True)}


def _pagerduty(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "routing_key" in m:
        key = _secret_text(ctx, join(path, "routing_key"), m["routing_key"], who)
        if key is not None and not _ROUTING_KEY.match(key.reveal()):
            ctx.warn(join(path, "routing_key"), "does not look like an Events API v2 "
                     "integration key (32 letters and digits); copy it from the PagerDuty "
                     "service's Integrations tab (\"Events API V2\")", who)
        out["routing_key"] = key
    if "url" in m:
        out["url"] = _url(ctx, join(path, "url"), m["url"], who, https_only=True)
    return out


def _telegram(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "bot_token" in m:
        token = _secret_text(ctx, join(path, "bot_token"), m["bot_token"], who)
        if token is not None and not _BOT_TOKEN.match(token.reveal()):
            ctx.error(join(path, "bot_token"), "is not a bot token (digits, a colon, then "
                      "letters: 123456789:AA…); copy it from @BotFather", who)
        out["bot_token"] = token
    if "chat_id" in m:
        chat = ctx.text(join(path, "chat_id"), m["chat_id"], who)
        if chat is not None and not _CHAT_ID.match(chat.strip()):
            ctx.error(join(path, "chat_id"), f"{chat!r} is not a chat id; write the numeric id "
                      "(a group: -1001234567890) or a public @channelname", who)
        out["chat_id"] = chat.strip() if chat is not None else None
    if "url" in m:
        out["url"] = _url(ctx, join(path, "url"), m["url"], who, https_only=True)
    return out


# -- email ------------------------------------------------------------------------
def _flag(ctx: Ctx, path: str, raw: Any, who: str) -> bool | None:
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):  # from ${VAR}
        return raw.strip().lower() == "true"
    if not isinstance(raw, bool):
        ctx.error(path, f"expected true or false, got {raw!r}", who)
        return None
    return raw


def _smtp(ctx: Ctx, path: str, raw: Any, who: str) -> tuple[str, int] | None:
    text = ctx.text(path, raw, who)
    if text is None:
        return None
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        ctx.error(path, f"{text!r} is not host:port; write e.g. \"smtp.example.com:587\" "
                        "(587 with starttls, 465 with ssl)", who)
        return None
    return host, int(port)


def _address(ctx: Ctx, path: str, raw: Any, who: str) -> str | None:
    text = ctx.text(path, raw, who)
    if text is None:
        return None
    if not _ADDRESS.match(parseaddr(text)[1]) or "\n" in text or "\r" in text:
        ctx.error(path, f"{text!r} is not an email address; write name@example.com "
                        "(or \"Custody Auditor <auditor@example.com>\")", who)
        return None
    return text.strip()


def _security(ctx: Ctx, path: str, m: dict[str, Any], host: str | None,
              who: str) -> dict[str, bool]:
    read = {k: _flag(ctx, join(path, k), m[k], who) if k in m else False
            for k in ("starttls", "ssl", "insecure")}
    flags = {k: bool(v) for k, v in read.items()}
    if None in read.values():
        pass  # already reported; the checks below would only add guesses
    elif flags["starttls"] and flags["ssl"]:
        ctx.error(join(path, "ssl"), "`ssl` and `starttls` are both true; choose one: "
                  "`ssl: true` for port 465, `starttls: true` for port 587", who)
    elif flags["insecure"] and (flags["starttls"] or flags["ssl"]):
        ctx.error(join(path, "insecure"), "`insecure: true` only allows plain SMTP; remove it "
                  "(to trust a relay's private CA, set `ca_file`)", who)
    elif not (flags["starttls"] or flags["ssl"] or flags["insecure"]) and host is not None \
            and not is_loopback(host):
        ctx.error(path, f"plain SMTP to {host} would send the alerts (and the password) "
                  "unencrypted over the network; set `starttls: true` (port 587) or "
                  "`ssl: true` (port 465), or `insecure: true` if the relay is on a network "
                  "you trust", who)
    return flags


def _email(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    smtp = _smtp(ctx, join(path, "smtp"), m["smtp"], who) if "smtp" in m else None
    out: dict[str, Any] = dict(_security(ctx, path, m, smtp[0] if smtp else None, who))
    if smtp is not None:
        out["smtp_host"], out["smtp_port"] = smtp
    if "from" in m:
        out["sender"] = _address(ctx, join(path, "from"), m["from"], who)
    if "to" in m:
        to = ctx.text_list(join(path, "to"), m["to"], who) or []
        out["to"] = tuple(a for i, t in enumerate(to)
                          if (a := _address(ctx, index(join(path, "to"), i), t, who)))
        if not to and isinstance(m["to"], list):
            ctx.error(join(path, "to"), "no recipients; list at least one address", who)
    out.update(_login(ctx, path, m, who))
    if "ca_file" in m:
        out["ca_file"] = _ca_file(ctx, join(path, "ca_file"), m["ca_file"], who)
    return out


def _login(ctx: Ctx, path: str, m: dict[str, Any], who: str) -> dict[str, Any]:
    user = ctx.text(join(path, "username"), m["username"], who) if "username" in m else None
    password = _secret_text(ctx, join(path, "password"), m["password"], who) \
        if "password" in m else None
    if "username" in m and "password" not in m:
        ctx.error(path, "`username` is set but no password; add `password_file: …` (or "
                        "`password: \"${SMTP_PASSWORD}\"`)", who)
    elif "password" in m and "username" not in m:
        ctx.error(path, "a password without `username`; add `username: …` or remove the "
                        "password", who)
    return {"username": user, "password": password}


def _ca_file(ctx: Ctx, path: str, raw: Any, who: str) -> Any:
    text = ctx.text(path, raw, who)
    if text is None:
        return None
    file = ctx.resolve_path(text)
    if not file.is_file():
        ctx.error(path, f"{file} does not exist; give the PEM file of the CA that signed the "
                        "relay's certificate (relative paths start at the config file)", who)
        return None
    return file


_READERS = {"webhook": _webhook, "slack": _hook_url, "teams": _hook_url,
            "pagerduty": _pagerduty, "telegram": _telegram, "email": _email}
