"""OFAC SDN advanced XML: the digital currency addresses, streamed, in the real schema."""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.sanctions_lists import ListError
from auditor.sanctions_sdn import parse_sdn, parse_sdn_file

SAMPLE = Path(__file__).resolve().parent / "data" / "sdn_advanced_sample.xml"
NEW_NS = "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/ADVANCED_XML"
OLD_NS = "http://www.un.org/sanctions/1.0"


def parse_text(text: str):
    return parse_sdn(io.BytesIO(text.encode()), "sdn")


def test_sample_yields_the_ethereum_and_bitcoin_addresses_of_each_currency():
    p = parse_sdn_file(SAMPLE, "sdn")
    assert p.ethereum == {
        "0x098b716b8aaf21512996dc57eb0615e2383e2f96",  # ETH (checksummed) and USDC (lowercase): once
        "0x179f48c78f57a3a78f0608cc9197b8972921d1d2",
        "0x2f389ce8bd8ff92de3402ffce4691d17fc4f6535",  # USDT on Ethereum
    }
    assert p.bitcoin == {
        "bc1q05aktddf9ce4p7hh3stgsf253m4vweu7nkhtmw",
        "bc1q202ajnhxgg9d9jjczmg0g4usp6haqldyy2eakl",  # whitespace around the text trimmed
        "123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX",
        "31nadacWrgPeAQxKRMabhn3fPhnhi3hjKa",
        "16iWn2J1McqjToYLHSsAyS6En3QA8YQ91H",  # USDT on Omni is a Bitcoin address
    }


def test_other_chains_are_counted_as_ignored_and_other_features_not_at_all():
    p = parse_sdn_file(SAMPLE, "sdn")
    # XMR, LTC, XRP, TRX and USDT on Tron: 5 of 14 digital currency entries; the website
    # and birthdate features are not addresses
    assert (p.entries, p.ignored) == (14, 5)
    assert "www.example-mixer.invalid" not in p.bitcoin | p.ethereum


def test_publication_date_is_read_from_date_of_issue():
    assert parse_sdn_file(SAMPLE, "sdn").published == datetime(2024, 9, 27, tzinfo=UTC)


def test_older_namespace_and_no_namespace_parse_the_same():
    text = SAMPLE.read_text()
    expected = parse_sdn_file(SAMPLE, "sdn")
    assert parse_text(text.replace(NEW_NS, OLD_NS)) == expected
    assert parse_text(text.replace(f' xmlns="{NEW_NS}"', "")) == expected


def test_feature_types_declared_after_the_parties_still_count():
    text = SAMPLE.read_text()
    start, end = text.index("  <ReferenceValueSets>"), text.index("  <Locations>")
    refs = text[start:end]
    moved = text[:start] + text[end:].replace("</Sanctions>", refs + "</Sanctions>")
    assert parse_text(moved).count == parse_sdn_file(SAMPLE, "sdn").count


def test_a_truncated_file_is_an_error_not_a_shorter_list():
    text = SAMPLE.read_text()
    with pytest.raises(ListError, match="not well-formed XML"):
        parse_text(text[: len(text) // 2])


def test_an_html_page_is_refused_as_not_an_sdn_file():
    with pytest.raises(ListError, match="root element is <html>"):
        parse_text("<html><body>Service unavailable</body></html>")


def test_a_document_type_declaration_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE Sanctions [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Sanctions>&b;</Sanctions>')
    with pytest.raises(ListError, match="document type"):
        parse_text(bomb)


def test_a_file_without_digital_currency_features_is_refused():
    with pytest.raises(ListError, match="no `Digital Currency Address - …` feature type"):
        parse_text(f'<Sanctions xmlns="{NEW_NS}"><ReferenceValueSets><FeatureTypeValues>'
                   '<FeatureType ID="8">Birthdate</FeatureType></FeatureTypeValues>'
                   "</ReferenceValueSets><DistinctParties/></Sanctions>")


def test_a_file_listing_only_other_chains_is_refused_rather_than_empty():
    text = (f'<Sanctions xmlns="{NEW_NS}"><ReferenceValueSets><FeatureTypeValues>'
            '<FeatureType ID="444">Digital Currency Address - XMR</FeatureType>'
            "</FeatureTypeValues></ReferenceValueSets><DistinctParties><DistinctParty><Profile>"
            '<Feature FeatureTypeID="444"><FeatureVersion><VersionDetail DetailTypeID="1432">'
            "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge"
            "</VersionDetail></FeatureVersion></Feature></Profile></DistinctParty></DistinctParties>"
            "</Sanctions>")
    with pytest.raises(ListError, match="lists no Ethereum or Bitcoin address"):
        parse_text(text)


def test_an_xbt_feature_holding_an_ethereum_address_does_not_count_for_ethereum():
    text = (f'<Sanctions xmlns="{NEW_NS}"><ReferenceValueSets><FeatureTypeValues>'
            '<FeatureType ID="344">Digital Currency Address - XBT</FeatureType>'
            "</FeatureTypeValues></ReferenceValueSets><DistinctParties><DistinctParty><Profile>"
            + "".join(f'<Feature FeatureTypeID="344"><FeatureVersion><VersionDetail>{a}'
                      "</VersionDetail></FeatureVersion></Feature>"
                      for a in ("0x179f48c78f57a3a78f0608cc9197b8972921d1d2",
                                "123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX"))
            + "</Profile></DistinctParty></DistinctParties></Sanctions>")
    p = parse_text(text)
    assert p.ethereum == frozenset() and p.bitcoin == {"123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX"}
    assert p.ignored == 1


class _GeneratedSdn(io.RawIOBase):
    """A large SDN file produced on the fly: parties with long features and, every 20th,
    an Ethereum address, so that the input is far larger than what is kept."""

    def __init__(self, parties: int) -> None:
        self._parts = self._generate(parties)
        self._buf = b""

    @staticmethod
    def _generate(parties: int):
        yield (f'<?xml version="1.0"?><Sanctions xmlns="{NEW_NS}"><ReferenceValueSets>'
               '<FeatureTypeValues><FeatureType ID="345">Digital Currency Address - ETH'
               "</FeatureType></FeatureTypeValues></ReferenceValueSets><DistinctParties>").encode()
        filler = ("<Feature FeatureTypeID=\"8\"><FeatureVersion><VersionDetail>" + "x" * 1000
                  + "</VersionDetail></FeatureVersion></Feature>")
        for i in range(parties):
            address = (f'<Feature FeatureTypeID="345"><FeatureVersion><VersionDetail>0x{i:040x}'
                       "</VersionDetail></FeatureVersion></Feature>") if i % 20 == 0 else ""
            yield (f'<DistinctParty FixedRef="{i}"><Profile ID="{i}">{filler}{address}'
                   "</Profile></DistinctParty>").encode()
        yield b"</DistinctParties></Sanctions>"

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while len(self._buf) < len(b):
            part = next(self._parts, None)
            if part is None:
                break
            self._buf += part
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _peak_memory(parties: int) -> tuple[int, int]:
    stream = io.BufferedReader(_GeneratedSdn(parties), buffer_size=1 << 20)
    tracemalloc.start()
    try:
        p = parse_sdn(stream, "big")  # type: ignore[arg-type]
        return len(p.ethereum), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_parsing_streams_a_large_file_in_bounded_memory():
    small_count, small_peak = _peak_memory(5_000)  # ~5.5 MB of XML
    big_count, big_peak = _peak_memory(30_000)  # ~33 MB of XML
    assert (small_count, big_count) == (250, 1_500)
    # Six times the input costs no more than the addresses kept (and the read buffers)
    assert big_peak - small_peak < 1_000_000, (small_peak, big_peak)
    assert big_peak < 12_000_000
