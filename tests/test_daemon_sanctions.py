"""The daemon refreshes URL sanctions lists itself: at the first cycle, then daily, in
a thread of its own, one refresh at a time; nothing when no list has a URL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from test_sanctions_update import ETH_A, ListServer, url_list

from auditor.daemon_sanctions import EVERY, SanctionsRefresher
from auditor.sanctions import load_screen
from auditor.settings import SanctionsSettings, Settings, StoreSettings

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def settings(tmp: Path, *lists: Any) -> Settings:
    """Only the fields the refresher reads are real; the rest is never touched."""
    fake: Any = object.__new__(Settings)
    object.__setattr__(fake, "store", StoreSettings(path=tmp / "auditor.db"))
    object.__setattr__(fake, "sanctions", SanctionsSettings(lists=tuple(lists), cache_dir=tmp / "cache"))
    return fake  # type: ignore[no-any-return]


def test_url_lists_are_fetched_at_the_first_cycle_into_the_cache_the_cycles_screen(tmp_path: Path) -> None:
    server = ListServer()
    server.routes["/good.txt"] = (200, f"{ETH_A}\n".encode(), 0.0)
    try:
        lst = url_list(server.url("/good.txt"))
        s = settings(tmp_path, lst)
        r = SanctionsRefresher(s)
        assert r.enabled and r.due(T0)
        r.join(30)
        screen, problems = load_screen(s.sanctions)
        assert problems == [] and screen.match("ethereum", ETH_A.lower()) == (lst.label,)
        assert screen.lists[lst.label].as_of == T0
    finally:
        server.close()


def test_a_refresh_is_due_once_a_day_and_never_twice_at_once(tmp_path: Path) -> None:
    release = threading.Event()
    calls: list[datetime] = []

    def slow(s: SanctionsSettings, cache: Path, now: datetime) -> list[Any]:
        calls.append(now)
        release.wait(10)
        return []

    r = SanctionsRefresher(settings(tmp_path, url_list("http://127.0.0.1:1/x.txt")), refresh=slow)
    assert r.due(T0)
    assert not r.due(T0 + timedelta(seconds=EVERY + 1))  # the first one still runs
    release.set()
    r.join(10)
    assert not r.due(T0 + timedelta(hours=23))
    assert r.due(T0 + timedelta(seconds=EVERY))
    r.join(10)
    assert calls == [T0, T0 + timedelta(seconds=EVERY)]


def test_without_url_lists_nothing_is_fetched(tmp_path: Path) -> None:
    from auditor.config_sanctions import _BUILTIN  # the builtin list

    r = SanctionsRefresher(settings(tmp_path, _BUILTIN), refresh=lambda *a: (_ for _ in ()).throw(AssertionError))
    assert not r.enabled and not r.due(T0)
