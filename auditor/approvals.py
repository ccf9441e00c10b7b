"""Signed cold-wallet approvals: the canonical form of an item and its SSH signatures.

With `approvals.keys` set, an approval item counts only when `quorum` distinct
keys signed it. A signature is `ssh-keygen -Y sign -n auditor-approval` (the
OpenSSH SSHSIG format, PROTOCOL.sshsig) over `canonical_item(item)`, and only
`ssh-ed25519` keys are accepted. Anyone who can edit the config can still
write an item, but not sign it: an item without a quorum is dropped before
`cold_outflow` sees it, so the movement it describes still fires.

Canonical form (what the signers sign, byte for byte, no trailing newline):
UTF-8 JSON with sorted keys, no whitespace, non-ASCII kept as is, and every
value a string. Keys: `id`, `wallet`, `asset`, `to`, `amount`, `not_after`,
and `not_before` only when set (never `signatures`). Values are as the config
reads them: `amount` in whole units written positionally without trailing
zeros (`units.format_decimal`: "50", "0.5"), `to` as a wallet name or an
EIP-55 address, times in UTC as `YYYY-MM-DDTHH:MM:SSZ` (times with fractions
of a second are refused). `auditor approvals verify FILE --show-canonical`
prints exactly these bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import units
from .errors import ConfigError, ConfigProblem
from .settings import ApprovalItem, ApprovalsSettings, WalletSettings
from .sshsig import SignerKey, check_signature, key_problem, parse_key, verify_sshsig

__all__ = [
    "NAMESPACE",
    "ItemReport",
    "SignerKey",
    "canonical_item",
    "check_item",
    "format_reports",
    "key_problem",
    "parse_key",
    "valid_approvals",
    "verify_file",
    "verify_sshsig",
]

NAMESPACE = "auditor-approval"
_FIELDS = ("id", "wallet", "asset", "to", "amount", "not_after", "not_before")


# --- canonical form ------------------------------------------------------------


def canonical_item(item: ApprovalItem | Mapping[str, Any]) -> bytes:
    """The bytes signers sign for `item` (see the module docstring).

    A mapping (an item as written in a file) is normalised like the config
    does: `amount` and the times are parsed and written back canonically;
    `signatures` is left out. Raises ValueError for a missing or invalid value.
    """
    raw = _fields(item)
    out: dict[str, str] = {}
    for key in _FIELDS:
        value = raw.get(key)
        if value is None:
            if key == "not_before":
                continue
            raise ValueError(f"`{key}` is missing")
        out[key] = _canonical_value(key, value)
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fields(item: ApprovalItem | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(item, ApprovalItem):
        return {k: getattr(item, k) for k in _FIELDS}
    unknown = sorted(str(k) for k in item if k not in _FIELDS and k != "signatures")
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} in an approval item")
    return item


def _canonical_value(key: str, value: Any) -> str:
    if key == "amount":
        return units.format_decimal(units.parse_decimal(value))
    if key in ("not_after", "not_before"):
        return _utc_text(value, key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"`{key}` must be text")
    return str(value)


def _utc_text(value: Any, key: str) -> str:
    t = value if isinstance(value, datetime) else _parse_time(value, key)
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"`{key}` has no time zone; write e.g. \"2026-12-01T06:00:00Z\"")
    if t.microsecond:
        raise ValueError(f"`{key}` has fractions of a second; write whole seconds")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"`{key}` must be an RFC 3339 time written as text")
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"`{key}` {value!r} is not an RFC 3339 time") from None


# --- items ---------------------------------------------------------------------


@dataclass(frozen=True)
class ItemReport:
    """One item's verdict. `canonical` is None when the item could not be read."""

    id: str
    ok: bool
    signers: tuple[str, ...] = ()
    problem: str = ""
    canonical: bytes | None = None

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "signers": list(self.signers),
                "problem": self.problem}


def check_item(item: ApprovalItem, keys: Sequence[str], quorum: int) -> ItemReport:
    """Whether `item` carries `quorum` valid signatures by distinct keys, and why not."""
    try:
        message = canonical_item(item)
    except ValueError as e:
        return ItemReport(item.id, False, problem=f"cannot be signed: {e}")
    signer_keys = [k for k in (parse_key(line) for line in keys) if k]
    seen: dict[bytes, str] = {}
    notes: list[str] = []
    for i, armored in enumerate(item.signatures, 1):
        signer, why = check_signature(armored, message, signer_keys, NAMESPACE)
        if signer is None:
            notes.append(f"signature {i} {why}" if why.startswith("by ") else
                         f"signature {i}: {why}")
        elif signer.blob in seen:
            notes.append(f"signature {i}: a second signature by {signer.name} (each key "
                         "counts once)")
        else:
            seen[signer.blob] = signer.name
    signers = tuple(seen.values())
    needed = max(quorum, 1)  # with keys, never fewer than one signature
    ok = len(signers) >= needed
    return ItemReport(item.id, ok, signers, _problem(ok, signers, needed, notes), message)


def _problem(ok: bool, signers: tuple[str, ...], quorum: int, notes: list[str]) -> str:
    if ok:
        return f"ignored: {'; '.join(notes)}" if notes else ""
    n = len(signers)
    head = f"{n} valid signature{'' if n == 1 else 's'} of {quorum} needed"
    if signers:
        head += f" ({', '.join(signers)})"
    return "; ".join([head, *notes])


def format_reports(reports: Sequence[ItemReport]) -> str:
    """The human table of `auditor approvals verify`: id, ok, signers, problem."""
    rows = [("ID", "OK", "SIGNERS", "PROBLEM")]
    rows += [(r.id, "ok" if r.ok else "NOT OK", ", ".join(r.signers) or "-", r.problem)
             for r in reports]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["  ".join([*(row[c].ljust(widths[c]) for c in range(3)), row[3]]).rstrip()
             for row in rows]
    bad = sum(1 for r in reports if not r.ok)
    lines.append(f"{len(reports)} item(s): {len(reports) - bad} ok, {bad} not ok")
    return "\n".join(lines)


def valid_approvals(approvals: ApprovalsSettings) -> tuple[ApprovalsSettings, list[str]]:
    """The items that count, and one problem per item dropped.

    With `keys`: an item counts with `quorum` valid signatures by distinct keys.
    Without keys, items count unsigned (check-config warns about it).
    """
    if not approvals.keys:
        return approvals, []
    kept: list[ApprovalItem] = []
    problems: list[str] = []
    for item in approvals.items:
        report = check_item(item, approvals.keys, approvals.quorum)
        if report.ok:
            kept.append(item)
        else:
            problems.append(f"approval {item.id}: {report.problem}")
    return dataclasses.replace(approvals, items=tuple(kept)), problems


# --- approval files (`auditor approvals verify FILE`) ---------------------------


def verify_file(path: Path, approvals: ApprovalsSettings,
                wallets: tuple[WalletSettings, ...], assets: Collection[str]) -> list[ItemReport]:
    """Check every item of an approval file against `approvals.keys` and `quorum`.

    The file (YAML or JSON) holds `items: [...]` or a list of items, with the
    schema of the config's `approvals.items`; `wallets` and `assets` are the
    config's, to read items exactly as the config would. An item that cannot
    be read is reported not ok (canonical None). Raises ConfigError when the
    file cannot be read or has the wrong shape.
    """
    from .config_alerts import _item  # the config's own reader: same normalisation
    from .config_ctx import Ctx

    doc, raw_items, key = _read_file(path)
    ctx = Ctx(str(path), doc.lines, path.resolve().parent, {})
    known = ({w.name for w in wallets}, set(assets))
    out: list[ItemReport] = []
    for i, raw in enumerate(raw_items):
        where = f"{key}[{i}]" if key else f"[{i}]"
        before = len(ctx.problems)
        item = _item(ctx, where, raw, wallets, known)
        ident = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") is not None else where
        if item is None:
            why = "; ".join(f"{p.path}: {p.message}" for p in ctx.problems[before:]) or "unreadable"
            out.append(ItemReport(ident, False, problem=why))
        elif any(r.id == item.id for r in out):
            out.append(ItemReport(ident, False, problem=f"the id {item.id!r} is already used in "
                                  "this file; each item needs its own id"))
        else:
            out.append(check_item(item, approvals.keys, approvals.quorum))
    return out


def _read_file(path: Path) -> tuple[Any, list[Any], str]:
    from .config_yaml import YamlSyntaxError, parse_yaml

    file = str(path)
    try:
        doc = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError([ConfigProblem(file, "", f"cannot read the approval file: {reason}; "
                                         "check the path")]) from None
    except YamlSyntaxError as e:
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML or JSON: {e}", e.line)]) \
            from None
    data = doc.data
    if data in ([], {"items": []}):
        raise ConfigError([ConfigProblem(file, "", "the approval file holds no items; write "
                                         "the items to check")])
    if isinstance(data, list):
        return doc, data, ""
    if isinstance(data, dict) and set(data) == {"items"} and isinstance(data["items"], list):
        return doc, data["items"], "items"
    raise ConfigError([ConfigProblem(file, "", "an approval file holds `items: [...]` or a "
                                     "list of items (`- {id: …, wallet: …, asset: …, to: …, "
                                     "amount: …, not_after: …}`)")])
