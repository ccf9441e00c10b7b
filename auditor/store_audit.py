"""The audit log's hash chain: append inside a write transaction, verify by streaming.

hash = sha256(prev_hash_bytes ‖ canonical JSON of {"seq", "at", "kind", "payload"}),
the first prev_hash is 32 zero bytes, hashes are hex in the table (DESIGN.md, Store).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from .store_codec import dumps, dumps_parsed, format_time

__all__ = ["ZERO_HASH", "AuditChain", "AuditRecord", "VerifyResult", "record_body", "verify_chain"]

ZERO_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    hash: str  # hex


@dataclass(frozen=True)
class VerifyResult:
    """`ok` False: the chain is broken (`first_bad` is the first bad seq) or the anchor
    does not match (`anchor_ok` False). `head` is the stored hash of the last record."""

    ok: bool
    records: int
    head: str
    first_bad: int | None = None
    anchor_ok: bool | None = None
    reason: str | None = None


def record_body(seq: int, at: str, kind: str, payload_text: str) -> bytes:
    """Canonical JSON of {"seq", "at", "kind", "payload"} from the payload's canonical text.

    Keys sort as at < kind < payload < seq; composing the text avoids encoding
    a large payload twice (tests pin this equal to canonical_json of the dict).
    """
    at_j, kind_j = dumps_parsed(at), dumps_parsed(kind)
    return f'{{"at":{at_j},"kind":{kind_j},"payload":{payload_text},"seq":{seq}}}'.encode()


def _link(prev_hex: str, body: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hex) + body).hexdigest()


class AuditChain:
    """Appends records inside the caller's open write transaction (BEGIN IMMEDIATE)."""

    def __init__(self, conn: sqlite3.Connection):
        if not conn.in_transaction:
            raise RuntimeError("AuditChain needs an open write transaction (BEGIN IMMEDIATE)")
        self._conn = conn
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.head = (int(row[0]), str(row[1])) if row else (0, ZERO_HASH)

    @property
    def next_seq(self) -> int:
        return self.seq + 1

    def append(self, kind: str, payload: dict[str, object], at: datetime) -> AuditRecord:
        if not isinstance(payload, dict):
            raise TypeError(f"an audit payload is a dict, got {type(payload).__name__}")
        if not kind or not isinstance(kind, str):
            raise ValueError("an audit record needs a kind (e.g. 'cycle', 'alert')")
        seq, at_text = self.seq + 1, format_time(at)
        payload_text = dumps(payload, f"audit {kind} payload")  # TypeError on floats
        digest = _link(self.head, record_body(seq, at_text, kind, payload_text))
        self._conn.execute(
            "INSERT INTO audit_log (seq, at, kind, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, at_text, kind, payload_text, self.head, digest),
        )
        self.seq, self.head = seq, digest
        return AuditRecord(seq, digest)


def _refuse_float(text: str) -> object:
    raise ValueError(f"a float ({text}) in a stored payload")


# Built once: json.loads with options builds a decoder per call. NaN/Infinity are floats too.
_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)


def _row_problem(row: tuple[int, str, str, str, str, str], seq_expected: int, prev: str) -> tuple[str | None, str]:
    """(problem or None, recomputed hash) for one row; a problem is about `seq_expected`."""
    seq, at, kind, payload, prev_hash, stored = row
    if seq != seq_expected:
        return f"record {seq_expected} is missing (the log jumps to {seq}): rows were deleted", prev
    if prev_hash != prev:
        return f"record {seq}: prev_hash is not the hash of record {seq_expected - 1}", prev
    try:
        obj = _DECODER.decode(str(payload))
        canonical = dumps_parsed(obj)
    except (ValueError, TypeError) as e:
        return f"record {seq}: payload is not canonical JSON ({e})", prev
    if canonical != payload:
        return f"record {seq}: payload text is not in canonical form (edited)", prev
    digest = _link(prev, record_body(seq, at, kind, canonical))
    if digest != stored:
        return f"record {seq}: hash does not match its contents (edited record or hash)", prev
    return None, digest


def _anchor_verdict(
    anchor: tuple[int, str] | None, anchor_stored: str | None, first_bad: int | None
) -> tuple[bool | None, str | None]:
    if anchor is None:
        return None, None
    seq, want = anchor[0], anchor[1].lower().removeprefix("0x")
    if anchor_stored is None:
        return False, f"anchor seq {seq} is not in the log"
    if anchor_stored != want:
        return False, f"anchor mismatch at seq {seq}: the log has {anchor_stored}"
    if first_bad is not None and first_bad <= seq:
        return False, f"anchor seq {seq} lies after the first bad record {first_bad}"
    return True, None


def verify_chain(conn: sqlite3.Connection, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Recompute the chain row by row (bounded memory: one cursor, one record at a time)."""
    if anchor is not None and not _HEX64.match(anchor[1].lower().removeprefix("0x")):
        raise ValueError("an anchor is SEQ:HEX with a 64-hex-digit hash (from a heartbeat or report)")
    records, prev, head = 0, ZERO_HASH, ZERO_HASH
    first_bad: int | None = None
    reason: str | None = None
    anchor_stored: str | None = None
    cur = conn.execute("SELECT seq, at, kind, payload, prev_hash, hash FROM audit_log ORDER BY seq")
    cur.arraysize = 512
    for row in cur:
        records += 1
        head = str(row[5])  # str(): a tampered row may hold any type
        if anchor is not None and row[0] == anchor[0]:
            anchor_stored = head.lower()
        if first_bad is not None:
            continue  # keep counting; the chain cannot be trusted past the first bad record
        problem, prev = _row_problem(row, records, prev)
        if problem is not None:
            first_bad, reason = records, problem
    anchor_ok, anchor_reason = _anchor_verdict(anchor, anchor_stored, first_bad)
    ok = first_bad is None and anchor_ok is not False
    return VerifyResult(ok, records, head, first_bad, anchor_ok, reason or anchor_reason)
