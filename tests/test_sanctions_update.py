"""`auditor sanctions update`: URL lists fetched from a local HTTP server into the cache."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from auditor.sanctions import load_screen, refresh_lists, update_lists
from auditor.settings import SanctionsList, SanctionsSettings, Secret, redact_url

SDN_SAMPLE = Path(__file__).resolve().parent / "data" / "sdn_advanced_sample.xml"
ETH_A = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"
ETH_B = "0x179f48c78f57a3a78f0608cc9197b8972921d1d2"
BTC_A = "bc1q05aktddf9ce4p7hh3stgsf253m4vweu7nkhtmw"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class ListServer:
    """GET-only server on 127.0.0.1: `routes[path] = (status, body, delay_seconds)`."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                server.hits.append(self.path)
                if path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/good.txt?key=SECRET-TOKEN")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body, delay = server.routes.get(path, (404, b"not found", 0.0))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the slow case)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?key=SECRET-TOKEN"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ListServer]:
    s = ListServer()
    s.routes["/good.txt"] = (200, f"{ETH_A}\n{BTC_A}\n".encode(), 0.0)
    s.routes["/sdn.xml"] = (200, SDN_SAMPLE.read_bytes(), 0.0)
    s.routes["/fail.txt"] = (500, b"internal error", 0.0)
    s.routes["/garbage.txt"] = (200, b"<html><body>Please log in</body></html>", 0.0)
    s.routes["/slow.txt"] = (200, f"{ETH_A}\n".encode(), 3.0)
    yield s
    s.close()


def url_list(url: str, fmt: str = "plain") -> SanctionsList:
    name = url.split("?")[0].rsplit("/", 1)[-1]
    label = f"{redact_url(url)}/{name}"
    return SanctionsList(source=label, label=label, format=fmt, url=Secret(url))  # type: ignore[arg-type]


def sanctions(*lists: SanctionsList, cache: Path) -> SanctionsSettings:
    return SanctionsSettings(lists=lists, cache_dir=cache)


def test_a_fetched_list_is_screened_from_the_cache_as_of_its_fetch_time(server, tmp_path):
    lst = url_list(server.url("/good.txt"))
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    assert r.ok and r.label == lst.label and "1 Ethereum and 1 Bitcoin addresses" in r.message
    screen, problems = load_screen(sanctions(lst, cache=tmp_path))
    assert problems == []
    assert screen.lists[lst.label].as_of == T0 and screen.lists[lst.label].kind == "url"
    assert screen.match("ethereum", ETH_A.lower()) == (lst.label,)
    assert screen.match("bitcoin", BTC_A) == (lst.label,)


def test_an_sdn_xml_list_is_fetched_and_parsed(server, tmp_path):
    lst = url_list(server.url("/sdn.xml"), "sdn-xml")
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    assert r.ok and "3 Ethereum and 5 Bitcoin addresses, 5 of other chains not screened" in r.message
    screen, _ = load_screen(sanctions(lst, cache=tmp_path))
    info = screen.lists[lst.label]
    assert info.as_of == T0 and info.published == datetime(2024, 9, 27, tzinfo=UTC)
    assert screen.match("ethereum", ETH_B) == (lst.label,)


def test_http_500_fails_and_keeps_the_previous_copy(server, tmp_path):
    lst = url_list(server.url("/good.txt"))
    refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    server.routes["/good.txt"] = (500, b"oops", 0.0)
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0 + timedelta(days=1))
    assert not r.ok
    assert r.message == "failed: HTTP 500; kept the copy fetched at 2026-11-24T10:00:00Z"
    screen, problems = load_screen(sanctions(lst, cache=tmp_path))
    assert problems == [] and screen.lists[lst.label].as_of == T0  # still dated by the last good fetch


def test_garbage_fails_and_never_replaces_the_cached_list(server, tmp_path):
    lst = url_list(server.url("/good.txt"))
    refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    server.routes["/good.txt"] = server.routes["/garbage.txt"]
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0 + timedelta(days=1))
    assert not r.ok and "line 1 is not an address" in r.message and "kept the copy" in r.message
    screen, _ = load_screen(sanctions(lst, cache=tmp_path))
    assert screen.match("ethereum", ETH_A) == (lst.label,)


def test_a_first_fetch_that_fails_says_the_list_is_missing(server, tmp_path):
    lst = url_list(server.url("/fail.txt"))
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    assert not r.ok and "no earlier copy" in r.message
    _, problems = load_screen(sanctions(lst, cache=tmp_path))
    assert "not fetched yet" in problems[0][1]


def test_a_slow_server_fails_within_the_timeout(server, tmp_path):
    lst = url_list(server.url("/slow.txt"))
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0, timeout=0.5)
    assert not r.ok and "no answer within 0.5s" in r.message


def test_a_download_over_the_size_limit_fails(server, tmp_path, monkeypatch):
    from auditor import sanctions_fetch

    monkeypatch.setitem(sanctions_fetch.MAX_BYTES, "plain", 40)
    server.routes["/big.txt"] = (200, (ETH_A + "\n").encode() * 10, 0.0)
    (r,) = refresh_lists(sanctions(url_list(server.url("/big.txt")), cache=tmp_path), None, T0)
    assert not r.ok and "larger than 40 bytes" in r.message


def test_a_redirect_is_followed(server, tmp_path):
    lst = url_list(server.url("/moved"))
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    assert r.ok, r.message
    assert [h.split("?")[0] for h in server.hits] == ["/moved", "/good.txt"]


def test_an_unreachable_server_fails_without_naming_the_url(tmp_path):
    lst = url_list("http://127.0.0.1:9/x.txt?key=SECRET-TOKEN")
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0, timeout=2)
    assert not r.ok and "request failed (ConnectError)" in r.message


def test_messages_and_logs_never_show_the_url_key(server, tmp_path, caplog):
    caplog.set_level(logging.INFO)  # httpx logs each request URL at INFO
    lists = [url_list(server.url(p)) for p in ("/good.txt", "/fail.txt", "/garbage.txt", "/moved")]
    results = update_lists(sanctions(*lists, cache=tmp_path), None, T0)
    text = repr(results) + caplog.text + "".join(p.read_text() for p in tmp_path.iterdir())
    assert "SECRET-TOKEN" not in text
    assert [label for label, _ in results] == [lst.label for lst in lists]


def test_update_only_reads_builtin_and_file_lists(tmp_path):
    f = tmp_path / "ours.txt"
    f.write_text(f"{ETH_A}\n")
    lists = (SanctionsList(source="builtin", label="builtin"),
             SanctionsList(source=str(f), label="ours.txt", path=f),
             SanctionsList(source=str(tmp_path / "gone.txt"), label="gone.txt", path=tmp_path / "gone.txt"))
    results = refresh_lists(sanctions(*lists, cache=tmp_path / "cache"), None, T0)
    assert [(r.label, r.ok) for r in results] == [("builtin", True), ("ours.txt", True), ("gone.txt", False)]
    assert "nothing to fetch" in results[0].message and "2024-09-27" in results[0].message
    assert not (tmp_path / "cache").exists()


def test_a_second_update_reports_what_changed(server, tmp_path):
    lst = url_list(server.url("/good.txt"))
    refresh_lists(sanctions(lst, cache=tmp_path), None, T0)
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0 + timedelta(hours=1))
    assert r.message.endswith("(unchanged since 2026-11-24T10:00:00Z)")
    server.routes["/good.txt"] = (200, f"{ETH_B}\n{BTC_A}\n".encode(), 0.0)
    (r,) = refresh_lists(sanctions(lst, cache=tmp_path), None, T0 + timedelta(hours=2))
    assert r.message.endswith("(+1 −1 since 2026-11-24T11:00:00Z)")
