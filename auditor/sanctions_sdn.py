"""OFAC SDN advanced XML (`sdn_advanced.xml`) → the digital currency addresses it lists.

The schema: `Sanctions/ReferenceValueSets/FeatureTypeValues/FeatureType` maps
an ID to a name (`<FeatureType ID="344">Digital Currency Address - XBT</…>`);
each party's `Feature FeatureTypeID="344"` holds the address as the text of
`FeatureVersion/VersionDetail`; `Sanctions/DateOfIssue` has `Year`, `Month`,
`Day`. The namespace changed over time (`http://www.un.org/sanctions/1.0`,
then `https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/
exports/ADVANCED_XML`), so elements are matched by local name.

The file is tens of megabytes: it is parsed as a stream with expat (no tree
is built, memory stays bounded by the addresses kept). A document type
declaration is refused: the real list has none, and entities are how XML
bombs work.

Which addresses count: XBT entries of Bitcoin format for Bitcoin; ETH, USDT,
USDC (and the EVM chains ARB, BSC, ETC, whose addresses are the same keys)
entries of Ethereum format for Ethereum; USDT on Omni is a Bitcoin address.
Every other entry (Tron, Monero, Litecoin, …) is counted as ignored.
"""

from __future__ import annotations

import xml.parsers.expat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from .sanctions_lists import ListError, ParsedList, Sorter

__all__ = ["FEATURE_PREFIX", "ASSET_KINDS", "parse_sdn", "parse_sdn_file"]

FEATURE_PREFIX = "Digital Currency Address - "
ASSET_KINDS: dict[str, frozenset[str]] = {
    "XBT": frozenset({"bitcoin"}),
    "ETH": frozenset({"ethereum"}),
    "USDT": frozenset({"ethereum", "bitcoin"}),  # ERC-20 and Omni (and Tron, ignored)
    "USDC": frozenset({"ethereum", "bitcoin"}),
    "ARB": frozenset({"ethereum"}),
    "BSC": frozenset({"ethereum"}),
    "ETC": frozenset({"ethereum"}),
}
_NONE: frozenset[str] = frozenset()
_CHUNK = 1 << 20


class _Refused(Exception):
    """Raised from an expat handler to stop the parse; carries the reason."""


class _SdnParser:
    """Expat handlers: a small state machine over the element path, no tree."""

    def __init__(self) -> None:
        self.sorter = Sorter()
        self.types: dict[str, str] = {}  # FeatureType ID → asset (XBT, ETH, …)
        self.types_done = False
        self.pending: list[tuple[str, str]] = []  # (type ID, address) read before the types
        self.depth = 0
        self.root: str | None = None
        self.text: list[str] | None = None  # collecting character data
        self.feature_type: str | None = None  # the FeatureTypeID of the open Feature
        self.type_id: str | None = None  # the ID of the open FeatureType
        self.date: dict[str, str] = {}
        self.in_date = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]
        self.depth += 1
        if self.depth == 1:
            self.root = local
            if local != "Sanctions":
                raise _Refused(f"the root element is <{local}>, not <Sanctions>: not an OFAC "
                               "SDN advanced XML file (sdn_advanced.xml); use `format: plain` "
                               "for a list of addresses")
        if local == "FeatureType":
            self.type_id, self.text = attrs.get("ID"), []
        elif local == "Feature":
            self.feature_type = attrs.get("FeatureTypeID")
        elif local == "VersionDetail" and self.feature_type is not None:
            self.text = []
        elif local == "DateOfIssue" and self.depth == 2:
            self.in_date = True
        elif self.in_date and local in ("Year", "Month", "Day"):
            self.text = []

    def end(self, name: str) -> None:
        local = name.rpartition(" ")[2]
        self.depth -= 1
        text = "".join(self.text).strip() if self.text is not None else ""
        if local == "FeatureType":
            if self.type_id and text.startswith(FEATURE_PREFIX):
                self.types[self.type_id] = text[len(FEATURE_PREFIX):].strip()
            self.text = None
        elif local == "VersionDetail" and self.text is not None:
            if text and self.feature_type is not None:
                self._address(self.feature_type, text)
            self.text = None
        elif local == "Feature":
            self.feature_type = None
        elif local == "ReferenceValueSets":
            self.types_done = True
        elif local == "DateOfIssue":
            self.in_date = False
        elif self.in_date and local in ("Year", "Month", "Day"):
            self.date[local] = text
            self.text = None

    def chars(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def _address(self, type_id: str, text: str) -> None:
        asset = self.types.get(type_id)
        if asset is not None:
            self.sorter.add(text, ASSET_KINDS.get(asset, _NONE))
        elif not self.types_done:
            self.pending.append((type_id, text))  # the reference values come later

    def finish(self, label: str) -> ParsedList:
        for type_id, text in self.pending:
            asset = self.types.get(type_id)
            if asset is not None:
                self.sorter.add(text, ASSET_KINDS.get(asset, _NONE))
        if not self.types:
            raise ListError(f"{label}: no `{FEATURE_PREFIX}…` feature type: not an SDN advanced "
                            "XML file (or a truncated one)")
        parsed = self.sorter.result(self._published(label))
        if parsed.count == 0:
            raise ListError(f"{label}: lists no Ethereum or Bitcoin address ({parsed.entries} "
                            "digital currency entries); refused rather than taken as empty")
        return parsed

    def _published(self, label: str) -> datetime | None:
        if not self.date:
            return None
        try:
            return datetime(int(self.date["Year"]), int(self.date["Month"]),
                            int(self.date["Day"]), tzinfo=UTC)
        except (KeyError, ValueError):
            raise ListError(f"{label}: DateOfIssue is not a date ({self.date})") from None


def _refuse_doctype(*_: object) -> None:
    raise _Refused("it declares a document type (<!DOCTYPE>), which the SDN list never does; "
                   "refused (entities are how XML bombs work)")


def parse_sdn(stream: BinaryIO, label: str) -> ParsedList:
    """The addresses of an SDN advanced XML stream. ListError if it is not one."""
    handler = _SdnParser()
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.chars
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    read: Callable[[int], bytes] = stream.read
    try:
        while chunk := read(_CHUNK):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Refused as e:
        raise ListError(f"{label}: {e}") from None
    except xml.parsers.expat.ExpatError as e:
        reason = xml.parsers.expat.ErrorString(e.code) if e.code is not None else "error"
        raise ListError(f"{label}: not well-formed XML ({reason} at line {e.lineno}); a "
                        "truncated download? fetch it again") from None
    return handler.finish(label)


def parse_sdn_file(path: Path, label: str) -> ParsedList:
    with path.open("rb") as f:
        return parse_sdn(f, label)
