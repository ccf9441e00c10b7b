"""Small top-level sections: exchange, store, daemon, schedule (prices and
liabilities live in config_prices, re-exported here)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config_ctx import Ctx
from .config_prices import read_liabilities, read_prices
from .settings import (
    DaemonSettings,
    ExchangeSettings,
    ReportsSettings,
    ScheduleSettings,
    Secret,
    StoreSettings,
    redact_url,
)

__all__ = [
    "DEFAULT_STORE",
    "check_url",
    "read_daemon",
    "read_exchange",
    "read_liabilities",
    "read_prices",
    "read_reports",
    "read_schedule",
    "read_store",
]

DEFAULT_STORE = "var/auditor.db"
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_FIAT = re.compile(r"^[A-Z]{3}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.-]*)):(?P<port>\d{1,5})$")


def check_url(ctx: Ctx, path: str, url: str, schemes: tuple[str, ...], who: str = "") -> bool:
    """A URL's shape; the message shows only scheme://host:port (URLs carry API keys)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        ctx.error(path, "is not a valid URL; write scheme://host[:port]/path", who)
        return False
    if parts.scheme not in schemes or not parts.hostname:
        allowed = ", ".join(f"{s}://" for s in schemes)
        shown = redact_url(url) if parts.hostname else "the URL"
        ctx.error(path, f"{shown} is not a usable URL; it must start with {allowed} and name "
                        "a host", who)
        return False
    return True


def read_exchange(ctx: Ctx, raw: Any) -> ExchangeSettings | None:
    m = ctx.mapping("exchange", raw, keys=("id", "name", "fiat"), required=("id",))
    if m is None:
        return None
    ident = None
    if "id" in m:
        ident = ctx.text("exchange.id", m["id"], pattern=_SLUG,
                         hint="use lowercase letters, digits and `-` (e.g. example-ex); it is "
                              "part of every alert fingerprint")
    name = ctx.text("exchange.name", m["name"]) if "name" in m else ident
    fiat = "JPY"
    if "fiat" in m:
        fiat = ctx.text("exchange.fiat", m["fiat"], pattern=_FIAT,
                        hint="write the ISO 4217 code in capitals, e.g. JPY or USD") or fiat
    if ident is None or name is None:
        return None
    return ExchangeSettings(id=ident, name=name, fiat=fiat)


def read_store(ctx: Ctx, raw: Any) -> StoreSettings | None:
    if raw is None:
        return StoreSettings(path=ctx.resolve_path(DEFAULT_STORE))
    m = ctx.mapping("store", raw, keys=("path",))
    if m is None:
        return None
    text = ctx.text("store.path", m.get("path", DEFAULT_STORE))
    return StoreSettings(path=ctx.resolve_path(text)) if text else None


def _listen(ctx: Ctx, value: Any) -> tuple[str, int | None] | None:
    if value is None or value is False or value == "off":
        return ("127.0.0.1", None)
    m = _LISTEN.match(str(value)) if isinstance(value, str) else None
    if m is None or int(m["port"]) > 65535:
        ctx.error("daemon.listen", f"{value!r} is not host:port; write \"127.0.0.1:9464\" "
                                   "(quoted), or `off` for no HTTP endpoint")
        return None
    return (m["v6"] or m["host"] or "0.0.0.0", int(m["port"]))


def read_daemon(ctx: Ctx, raw: Any) -> DaemonSettings | None:
    if raw is None:
        return DaemonSettings()
    m = ctx.mapping("daemon", raw, keys=("listen", "heartbeat"))
    if m is None:
        return None
    listen = _listen(ctx, m["listen"]) if "listen" in m else ("127.0.0.1", 9464)
    url, timeout = None, 10
    if m.get("heartbeat") is not None:
        hb = ctx.mapping("daemon.heartbeat", m["heartbeat"], keys=("url", "timeout"),
                         secrets=("url",), required=("url",))
        if hb is None:
            return None
        if "url" in hb:
            text = ctx.text("daemon.heartbeat.url", hb["url"])
            if text and check_url(ctx, "daemon.heartbeat.url", text, ("http", "https")):
                url = Secret(text)
        if "timeout" in hb:
            timeout = ctx.duration("daemon.heartbeat.timeout", hb["timeout"], minimum=1) or 10
    if listen is None:
        return None
    return DaemonSettings(listen_host=listen[0], listen_port=listen[1], heartbeat_url=url,
                          heartbeat_timeout=timeout)


def read_schedule(ctx: Ctx, raw: Any) -> ScheduleSettings | None:
    if raw is None:
        return ScheduleSettings()
    m = ctx.mapping("schedule", raw, keys=("poll_every", "timezone", "records_cutoff"))
    if m is None:
        return None
    errors = ctx.error_count()
    poll = ctx.duration("schedule.poll_every", m.get("poll_every", "60s"), minimum=1)
    tz = "UTC"
    if "timezone" in m:
        tz = ctx.text("schedule.timezone", m["timezone"]) or tz
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            ctx.error("schedule.timezone", f"{tz!r} is not an IANA time zone; write e.g. "
                                           "Asia/Tokyo, Europe/London or UTC")
    cutoff = "00:00"
    if "records_cutoff" in m:
        cutoff = ctx.text("schedule.records_cutoff", m["records_cutoff"], pattern=_HHMM,
                          hint='write local time as "HH:MM" in quotes, e.g. "00:00"') or cutoff
    if poll is None or ctx.error_count() != errors:
        return None
    return ScheduleSettings(poll_every=poll, timezone=tz, records_cutoff=cutoff)


_REPORT_EVERY = ("daily", "weekly", "monthly")
_REPORT_FORMATS = ("html", "json", "csv", "md")


def read_reports(ctx: Ctx, raw: Any) -> ReportsSettings | None:
    """`reports:` {every, formats, out}; absent: no scheduled reports (`auditor report`
    works without it)."""
    if raw is None:
        return None
    m = ctx.mapping("reports", raw, keys=("every", "formats", "out"))
    if m is None:
        return None
    every = ctx.choice("reports.every", m.get("every", "monthly"), _REPORT_EVERY)
    formats: list[str] = []
    raw_formats = m.get("formats", list(_REPORT_FORMATS))
    if not isinstance(raw_formats, list) or not raw_formats:
        ctx.error("reports.formats", "expected a list of formats, e.g. [html, json, csv, md]")
    else:
        for i, f in enumerate(raw_formats):
            if ctx.choice(f"reports.formats[{i}]", f, _REPORT_FORMATS) is not None:
                formats.append(str(f))
    out = ctx.text("reports.out", m.get("out", "reports/"))
    if every is None or out is None or not formats or len(formats) != len(raw_formats):
        return None
    return ReportsSettings(every=every,  # type: ignore[arg-type]
                           formats=tuple(dict.fromkeys(formats)), out=ctx.resolve_path(out))
