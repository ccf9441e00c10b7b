"""Write a report's files and record them in the audit log.

Files are `report-<from>-<to>.<ext>` in the output directory, each written
to a temporary name and renamed (a reader never sees half a file). Then one
`report` audit record holds {from, to, files: {name: sha256}, head_before,
head_seq, scheduled}: the log then proves which files the report was, and
`head_before` is the head the report itself states.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..store import Store
from .build import build_report
from .render_text import render_csv, render_json, render_md

__all__ = ["FORMATS", "WrittenReport", "parse_formats", "render", "write_report"]

FORMATS = ("html", "json", "csv", "md")


def _html(report: dict[str, Any]) -> str:
    from .render_html import render_html  # matplotlib and jinja2 load only when needed

    return render_html(report)


_RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "html": _html, "json": render_json, "csv": render_csv, "md": render_md}


@dataclass(frozen=True)
class WrittenReport:
    paths: list[Path]
    sha256: dict[str, str]  # file name → hex digest
    seq: int  # the `report` audit record
    head_before: str


def parse_formats(values: Sequence[str]) -> list[str]:
    """`--format` values, repeated or comma-separated, in a stable order; ValueError if unknown."""
    wanted = {v.strip().lower() for text in values for v in text.split(",") if v.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(FORMATS)} (repeat --format or separate with commas)")
    return [f for f in FORMATS if f in wanted]


def render(report: dict[str, Any], fmt: str) -> str:
    return _RENDER[fmt](report)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_report(store: Store, settings: Settings, first: date, last: date,
                 formats: Sequence[str], out_dir: Path, *, now: datetime | None = None,
                 scheduled: bool = False) -> WrittenReport:
    """Build, render, write, then append the `report` record. Returns what was written."""
    now = now or datetime.now(UTC)
    report = build_report(store, settings, first, last, now)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, digests = [], {}
    for fmt in formats:
        data = render(report, fmt).encode("utf-8")
        path = out_dir / f"report-{report['from']}-{report['to']}.{fmt}"
        _write_atomic(path, data)
        paths.append(path)
        digests[path.name] = hashlib.sha256(data).hexdigest()
    record = store.append_audit("report", {
        "from": report["from"], "to": report["to"], "files": digests,
        "head_before": report["head"], "head_seq": report["head_seq"],
        "scheduled": scheduled}, now)
    return WrittenReport(paths, digests, record.seq, report["head"])
