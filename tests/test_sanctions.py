"""Sanctions screening: the builtin lists, exact matching, files, staleness."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.sanctions import BUILTIN_AS_OF, ListInfo, Screen, load_screen, stale_lists
from auditor.sanctions_lists import BUILTIN_FILES, builtin_files, parse_plain
from auditor.settings import SanctionsList, SanctionsSettings, Secret

DATA = Path(__file__).resolve().parent.parent / "auditor" / "data" / "sanctions"
SDN_SAMPLE = Path(__file__).resolve().parent / "data" / "sdn_advanced_sample.xml"
BUILTIN = SanctionsList(source="builtin", label="builtin")
ETH_LISTED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # checksummed in the ETH file
ETH_LISTED_LOWER = "0x179f48c78f57a3a78f0608cc9197b8972921d1d2"  # lowercase in the ETH file
BECH32_LISTED = "bc1q05aktddf9ce4p7hh3stgsf253m4vweu7nkhtmw"
BASE58_LISTED = "123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX"
TRON_LISTED = "TEAqwfMhXLaomXhZ8KeMhx3njGmQEDnsUR"  # in the USDT file
OMNI_LISTED = "16iWn2J1McqjToYLHSsAyS6En3QA8YQ91H"  # in the USDT file
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def settings(*lists: SanctionsList, max_age: int = 7 * 86400) -> SanctionsSettings:
    return SanctionsSettings(lists=lists, max_age=max_age)


def file_list(path: Path, fmt: str = "plain", label: str | None = None) -> SanctionsList:
    return SanctionsList(source=str(path), label=label or path.name, format=fmt,  # type: ignore[arg-type]
                         path=path)


@pytest.fixture(scope="module")
def builtin_screen() -> Screen:
    screen, problems = load_screen(settings(BUILTIN), None)
    assert problems == []
    return screen


# -- the shipped lists --------------------------------------------------------------


def test_builtin_files_hold_the_counts_their_readme_states():
    readme = (DATA / "README.md").read_text()
    stated = {name: int(n) for name, n in re.findall(r"\| (sanctioned_addresses_\w+\.txt) \| (\d+) \|", readme)}
    assert set(stated) == set(BUILTIN_FILES)
    counted = {name: parse_plain(text, name).entries for name, text in builtin_files().items()}
    assert counted == stated == {"sanctioned_addresses_XBT.txt": 435, "sanctioned_addresses_ETH.txt": 152,
                                 "sanctioned_addresses_USDT.txt": 26, "sanctioned_addresses_USDC.txt": 2}


def test_builtin_ships_its_license_and_snapshot_date():
    assert "MIT License" in (DATA / "LICENSE").read_text()
    assert "2024-09-27" in (DATA / "README.md").read_text()
    assert BUILTIN_AS_OF == datetime(2024, 9, 27, tzinfo=UTC)


def test_builtin_list_loads_as_one_list_dated_by_its_snapshot(builtin_screen):
    info = builtin_screen.lists["builtin"]
    assert info.as_of == BUILTIN_AS_OF and info.kind == "builtin" and info.source == "builtin"
    # ETH 152 + USDT's 8 0x + USDC's 2 (overlapping) = 156; XBT 434 (one Tron entry is
    # misfiled under XBT) + USDT's 7 Omni addresses (overlapping) = 437; 11 Tron + 1 ignored
    assert (info.ethereum, info.bitcoin, info.ignored) == (156, 437, 12)
    assert info.count == len(builtin_screen) == 593


# -- exact matching ----------------------------------------------------------------------


def test_ethereum_match_ignores_the_case_of_the_hex(builtin_screen):
    for a in (ETH_LISTED, ETH_LISTED.lower(), "0x" + ETH_LISTED[2:].upper(), ETH_LISTED_LOWER,
              "0x" + ETH_LISTED_LOWER[2:].upper()):
        assert builtin_screen.match("ethereum", a) == ("builtin",), a


def test_an_address_one_character_off_is_not_matched(builtin_screen):
    for chain, a in (("ethereum", ETH_LISTED), ("bitcoin", BECH32_LISTED), ("bitcoin", BASE58_LISTED)):
        last = a[-1]
        off = a[:-1] + ("2" if last != "2" else "3")
        assert builtin_screen.match(chain, off) == (), off
        assert builtin_screen.match(chain, a[:-1]) == ()


def test_bech32_matches_in_either_case_base58_only_as_written(builtin_screen):
    assert builtin_screen.match("bitcoin", BECH32_LISTED) == ("builtin",)
    assert builtin_screen.match("bitcoin", BECH32_LISTED.upper()) == ("builtin",)
    assert builtin_screen.match("bitcoin", BASE58_LISTED) == ("builtin",)
    assert builtin_screen.match("bitcoin", BASE58_LISTED.swapcase()) == ()
    assert builtin_screen.match("bitcoin", BASE58_LISTED.lower()) == ()


def test_a_tron_address_is_not_matched_on_any_chain(builtin_screen):
    assert builtin_screen.match("ethereum", TRON_LISTED) == ()
    assert builtin_screen.match("bitcoin", TRON_LISTED) == ()
    assert builtin_screen.match("tron", TRON_LISTED) == ()


def test_omni_usdt_address_is_screened_as_bitcoin(builtin_screen):
    assert builtin_screen.match("bitcoin", OMNI_LISTED) == ("builtin",)


def test_matching_is_per_chain_type(builtin_screen):
    assert builtin_screen.match("bitcoin", ETH_LISTED) == ()
    assert builtin_screen.match("ethereum", BECH32_LISTED) == ()


def test_unlisted_addresses_are_not_matched(builtin_screen):
    assert builtin_screen.match("ethereum", "0x" + "11" * 20) == ()
    assert builtin_screen.match("bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq") == ()


def test_match_names_every_list_holding_the_address_in_config_order(tmp_path):
    mine = tmp_path / "ours.txt"
    mine.write_text(f"{BECH32_LISTED.upper()}\n0x" + "ab" * 20 + "\n")
    screen, problems = load_screen(settings(file_list(mine, label="ours"), BUILTIN), None)
    assert problems == []
    assert screen.match("bitcoin", BECH32_LISTED) == ("ours", "builtin")
    assert screen.match("ethereum", "0x" + "AB" * 20) == ("ours",)
    assert list(screen.lists) == ["ours", "builtin"]


# -- files ------------------------------------------------------------------------------


def test_plain_file_loads_with_comments_and_its_modification_time(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text(f"# our own additions\n\n{ETH_LISTED}\r\n  {BASE58_LISTED}  \n{TRON_LISTED}\n")
    mtime = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    os.utime(f, (mtime.timestamp(), mtime.timestamp()))
    screen, problems = load_screen(settings(file_list(f)), None)
    assert problems == []
    info = screen.lists["list.txt"]
    assert info == ListInfo(label="list.txt", as_of=mtime, count=2, source=str(f), ethereum=1,
                            bitcoin=1, ignored=1, kind="file")


def test_sdn_xml_file_loads_with_its_publication_date(tmp_path):
    screen, problems = load_screen(settings(file_list(SDN_SAMPLE, "sdn-xml", "ofac")), None)
    assert problems == []
    info = screen.lists["ofac"]
    assert info.published == datetime(2024, 9, 27, tzinfo=UTC)
    assert info.as_of == datetime.fromtimestamp(SDN_SAMPLE.stat().st_mtime, UTC)
    assert screen.match("ethereum", ETH_LISTED) == ("ofac",)


def test_a_missing_file_is_a_problem_and_the_other_lists_still_screen(tmp_path):
    screen, problems = load_screen(settings(file_list(tmp_path / "gone.txt"), BUILTIN), None)
    assert [label for label, _ in problems] == ["gone.txt"]
    assert "cannot read" in problems[0][1] and "sanctions.lists" in problems[0][1]
    assert "gone.txt" not in screen.lists
    assert screen.match("ethereum", ETH_LISTED) == ("builtin",)


@pytest.mark.parametrize(("content", "reason"), [
    ("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n", "line 1 is not an address"),
    ('["0x098B716B8Aaf21512996dC57EB0615e2383E2f96"]\n', "line 1 is not an address"),
    ("", "holds no Ethereum or Bitcoin address"),
    ("# nothing yet\n", "holds no Ethereum or Bitcoin address"),
    (f"{TRON_LISTED}\n", "holds no Ethereum or Bitcoin address"),
    (f"{ETH_LISTED}\n{ETH_LISTED} {BASE58_LISTED}\n", "line 2 is not an address"),
])
def test_a_corrupt_file_is_a_problem_never_an_empty_list(tmp_path, content, reason):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    screen, problems = load_screen(settings(file_list(f)), None)
    assert screen.lists == {} and len(screen) == 0
    ((label, message),) = problems
    assert label == "bad.txt" and reason in message


def test_binary_garbage_is_a_problem(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    _, problems = load_screen(settings(file_list(f)), None)
    assert "not UTF-8" in problems[0][1]


def test_sdn_xml_garbage_is_a_problem(tmp_path):
    f = tmp_path / "sdn.xml"
    f.write_text(SDN_SAMPLE.read_text()[:3000])
    _, problems = load_screen(settings(file_list(f, "sdn-xml")), None)
    assert "not well-formed XML" in problems[0][1]


def test_a_changed_file_is_read_again(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text(f"{ETH_LISTED}\n")
    lst = file_list(f)
    screen, _ = load_screen(settings(lst), None)
    assert screen.match("ethereum", ETH_LISTED) == ("list.txt",)
    f.write_text(f"{ETH_LISTED_LOWER}\n")
    later = f.stat().st_mtime + 5
    os.utime(f, (later, later))
    screen, _ = load_screen(settings(lst), None)
    assert screen.match("ethereum", ETH_LISTED) == ()
    assert screen.match("ethereum", ETH_LISTED_LOWER) == ("list.txt",)


# -- URL lists are read from the cache only -------------------------------------------------


def url_list(url: str = "https://lists.example/v1/sdn.txt?key=SECRET", fmt: str = "plain") -> SanctionsList:
    return SanctionsList(source="https://lists.example:443/sdn.txt", label="https://lists.example:443/sdn.txt",
                         format=fmt, url=Secret(url))  # type: ignore[arg-type]


def test_a_url_list_never_fetched_is_a_problem_that_says_to_run_update(tmp_path):
    screen, problems = load_screen(settings(url_list()), tmp_path)
    ((label, message),) = problems
    assert label == "https://lists.example:443/sdn.txt"
    assert "auditor sanctions update" in message and "SECRET" not in message
    assert screen.lists == {}


def test_a_damaged_cache_is_a_problem(tmp_path):
    from auditor.sanctions_lists import cache_path

    lst = url_list()
    cache_path(tmp_path, lst).write_text('{"version": 1, "ethereum": ["0xnope"]}')
    _, problems = load_screen(settings(lst), tmp_path)
    assert "damaged" in problems[0][1]
    cache_path(tmp_path, lst).write_text("{trunc")
    _, problems = load_screen(settings(lst), tmp_path)
    assert "unreadable" in problems[0][1]


def test_cache_file_name_does_not_reveal_the_url(tmp_path):
    from auditor.sanctions_lists import cache_path

    name = cache_path(tmp_path, url_list()).name
    assert "SECRET" not in name and "lists.example" not in name


# -- age ---------------------------------------------------------------------------------


def test_the_builtin_snapshot_is_stale_past_max_age(builtin_screen):
    ((label, message),) = stale_lists(builtin_screen, 7 * 86400, NOW)
    assert label == "builtin"
    assert "2024-09-27T00:00:00Z" in message and "max_age is 1w" in message and "sanctions.lists" in message


def test_a_list_within_max_age_is_not_stale(builtin_screen):
    assert stale_lists(builtin_screen, 7 * 86400, BUILTIN_AS_OF + timedelta(days=7)) == []
    assert stale_lists(builtin_screen, 7 * 86400, BUILTIN_AS_OF + timedelta(days=7, seconds=1)) != []


def test_stale_file_list_says_to_replace_the_file(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text(f"{ETH_LISTED}\n")
    old = (NOW - timedelta(days=10)).timestamp()
    os.utime(f, (old, old))
    screen, _ = load_screen(settings(file_list(f)), None)
    ((label, message),) = stale_lists(screen, 7 * 86400, NOW)
    assert label == "list.txt" and "10 days old" in message and "replace the file" in message
