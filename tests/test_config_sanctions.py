"""The `sanctions` section: lists (builtin, files, URLs), max_age, cache_dir, oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditor.config_ctx import Ctx
from auditor.config_sanctions import read_sanctions
from auditor.config_yaml import parse_yaml
from auditor.settings import ChainSettings, SanctionsSettings, Secret

CHAINS = {"ethereum": ChainSettings(name="ethereum", type="ethereum"),
          "bitcoin": ChainSettings(name="bitcoin", type="bitcoin", network="bitcoin")}
ORACLE = "0x40C57923924B5c5c5455c48D93317139ADDaC8fb"


def read(tmp_path: Path, yaml_text: str | None, **kw: Any) -> tuple[SanctionsSettings, Ctx]:
    """read_sanctions on the `sanctions:` value of a YAML snippet, as config.py calls it."""
    if yaml_text is None:
        ctx, raw = Ctx("auditor.yaml", {}, tmp_path, {}), None
    else:
        doc = parse_yaml(yaml_text)
        ctx, raw = Ctx("auditor.yaml", doc.lines, tmp_path, {}), doc.data["sanctions"]
    kw.setdefault("store_dir", tmp_path / "var")
    return read_sanctions(ctx, raw, CHAINS, **kw), ctx


def problems(ctx: Ctx, severity: str = "error") -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in ctx.problems if p.severity == severity]


def test_without_the_section_the_builtin_list_screens_with_a_week_max_age(tmp_path):
    s, ctx = read(tmp_path, None)
    assert ctx.problems == []
    assert [(x.source, x.label, x.format) for x in s.lists] == [("builtin", "builtin", "plain")]
    assert s.max_age == 7 * 86400 and s.cache_dir == tmp_path / "var" / "sanctions"
    assert s.oracle is None and s.oracle_chain is None


def test_every_kind_of_list_is_read(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "ours.txt").write_text("0x" + "ab" * 20 + "\n")
    (tmp_path / "lists" / "sdn_advanced.xml").write_text("<Sanctions/>")
    s, ctx = read(tmp_path, """sanctions:
  lists:
    - builtin
    - lists/ours.txt
    - lists/sdn_advanced.xml
    - "https://lists.example/v1/sanctioned_addresses_ETH.txt?key=SECRET"
    - {source: "https://sdn.example:8443/exports/SDN_ADVANCED.XML?token=SECRET", label: ofac-sdn}
    - {source: "https://mirror.example/latest", format: sdn-xml}
  max_age: 2d
  cache_dir: cache/sanctions
""")
    assert problems(ctx) == [] and problems(ctx, "warning") == []
    builtin, ours, sdn, eth, ofac, mirror = s.lists
    assert ours.path == tmp_path / "lists" / "ours.txt" and ours.label == "ours.txt"
    assert ours.format == "plain" and ours.url is None
    assert sdn.format == "sdn-xml" and sdn.label == "sdn_advanced.xml"
    assert eth.label == "https://lists.example:443/sanctioned_addresses_ETH.txt"
    assert eth.url == Secret("https://lists.example/v1/sanctioned_addresses_ETH.txt?key=SECRET")
    assert eth.format == "plain" and eth.path is None
    assert ofac.label == "ofac-sdn" and ofac.format == "sdn-xml"  # from the .XML name
    assert mirror.format == "sdn-xml" and mirror.label == "https://mirror.example:443/latest"
    assert "SECRET" not in repr(s.lists)
    assert s.max_age == 2 * 86400 and s.cache_dir == tmp_path / "cache" / "sanctions"


def test_a_single_source_may_be_written_without_a_list(tmp_path):
    s, ctx = read(tmp_path, "sanctions:\n  lists: builtin\n")
    assert ctx.problems == [] and [x.label for x in s.lists] == ["builtin"]


def test_a_url_is_read_from_a_file_with_source_file(tmp_path):
    (tmp_path / "sdn_url").write_text("https://sdn.example/sdn_advanced.xml?key=SECRET\n")
    s, ctx = read(tmp_path, "sanctions:\n  lists: [{source_file: sdn_url}]\n")
    assert ctx.problems == []
    (lst,) = s.lists
    assert lst.url == Secret("https://sdn.example/sdn_advanced.xml?key=SECRET")
    assert lst.format == "sdn-xml" and lst.label == "https://sdn.example:443/sdn_advanced.xml"


def test_a_missing_file_is_a_warning_not_an_error(tmp_path):
    s, ctx = read(tmp_path, "sanctions:\n  lists: [builtin, later.txt]\n")
    assert problems(ctx) == []
    ((path, message),) = problems(ctx, "warning")
    assert path == "sanctions.lists[1]" and "does not exist" in message and "stale_data" in message
    assert [x.label for x in s.lists] == ["builtin", "later.txt"]


def test_each_problem_names_its_key_and_never_the_url(tmp_path):
    (tmp_path / "a").mkdir()
    _, ctx = read(tmp_path, """sanctions:
  lists:
    - builtin
    - builtin
    - ftp://lists.example/x.txt?key=SECRET
    - {source: a}
    - {source: x.txt, format: csv}
    - {source: x.txt, label: "has spaces"}
    - {format: plain}
    - {source: builtin, format: sdn-xml}
    - [nested]
  max_age: 7
  cache_dir: [a]
  oracle: {chain: bitcoin, address: "0x40c57923924b5c5c5455c48d93317139addac8fB"}
  freshness: 1d
""")
    found = problems(ctx)
    assert [p for p, _ in found] == [
        "sanctions.freshness", "sanctions.lists[1]", "sanctions.lists[2]",
        "sanctions.lists[3].source", "sanctions.lists[4].format", "sanctions.lists[5].label",
        "sanctions.lists[6]", "sanctions.lists[7].source", "sanctions.lists[8]",
        "sanctions.max_age", "sanctions.cache_dir", "sanctions.oracle.chain",
        "sanctions.oracle.address"]
    text = dict(found)
    assert "a second list labelled `builtin`" in text["sanctions.lists[1]"]
    assert "ftp://lists.example:0 is not a usable URL" in text["sanctions.lists[2]"]
    assert "is a directory" in text["sanctions.lists[3].source"]
    assert "not one of plain | sdn-xml" in text["sanctions.lists[4].format"]
    assert "`source` is required" in text["sanctions.lists[6]"]
    assert "builtin list is a plain list" in text["sanctions.lists[7].source"]
    assert "has no unit" in text["sanctions.max_age"]
    assert "not `type: ethereum`" in text["sanctions.oracle.chain"]
    assert "EIP-55" in text["sanctions.oracle.address"]
    assert "expected text" in text["sanctions.lists[8]"]
    assert all("SECRET" not in str(p) for p in ctx.problems)


def test_two_urls_with_the_same_file_name_need_labels(tmp_path):
    _, ctx = read(tmp_path, """sanctions:
  lists:
    - "https://a.example/list.txt?key=ONE"
    - "https://a.example/list.txt?key=TWO"
""")
    ((path, message),) = problems(ctx)
    assert path == "sanctions.lists[1]" and "give one a `label:`" in message
    assert "ONE" not in message and "TWO" not in message


def test_an_empty_list_of_lists_warns_that_nothing_is_screened(tmp_path):
    s, ctx = read(tmp_path, "sanctions:\n  lists: []\n")
    assert s.lists == () and problems(ctx) == []
    assert "not screened" in problems(ctx, "warning")[0][1]


def test_max_age_must_be_a_duration(tmp_path):
    _, ctx = read(tmp_path, "sanctions:\n  max_age: soon\n")
    assert problems(ctx)[0][0] == "sanctions.max_age"


def test_oracle_defaults_to_the_chainalysis_address_on_an_ethereum_chain(tmp_path):
    s, ctx = read(tmp_path, "sanctions:\n  oracle: {chain: ethereum}\n")
    assert ctx.problems == []
    assert (s.oracle, s.oracle_chain) == (ORACLE, "ethereum")


def test_oracle_address_lowercase_is_checksummed(tmp_path):
    s, ctx = read(tmp_path, f"sanctions:\n  oracle: {{chain: ethereum, address: \"{ORACLE.lower()}\"}}\n")
    assert ctx.problems == [] and s.oracle == ORACLE


@pytest.mark.parametrize(("oracle", "path", "words"), [
    ("{address: \"0x40C57923924B5c5c5455c48D93317139ADDaC8fb\"}", "sanctions.oracle", "`chain` is required"),
    ("{chain: mainnet}", "sanctions.oracle.chain", "unknown chain `mainnet`"),
    ("{chain: ethereum, address: vitalik.eth}", "sanctions.oracle.address", "ENS name"),
    ("{chain: ethereum, url: x}", "sanctions.oracle.url", "unknown key `url`"),
])
def test_oracle_problems(tmp_path, oracle, path, words):
    s, ctx = read(tmp_path, f"sanctions:\n  oracle: {oracle}\n")
    assert any(p == path and words in m for p, m in problems(ctx)), problems(ctx)


def test_a_chain_declared_but_invalid_is_not_reported_again(tmp_path):
    _, ctx = read(tmp_path, "sanctions:\n  oracle: {chain: broken}\n",
                  chain_names={"ethereum", "bitcoin", "broken"})
    assert problems(ctx) == []


def test_problems_carry_the_yaml_line(tmp_path):
    _, ctx = read(tmp_path, "sanctions:\n  lists:\n    - builtin\n    - {source: x.txt, format: csv}\n")
    (p,) = [p for p in ctx.problems if p.severity == "error"]
    assert p.line == 4


def test_a_misspelt_builtin_is_not_taken_for_a_file_name(tmp_path):
    _, ctx = read(tmp_path, "sanctions:\n  lists: [Builtin]\n")
    ((path, message),) = problems(ctx)
    assert path == "sanctions.lists[0]" and "write `builtin`" in message
