"""Audit reports: `build_report` reads the store and computes; the renderers turn
the result into JSON, CSV, Markdown and self-contained HTML; `write_report`
writes the files and appends the `report` audit record with their sha256."""

from __future__ import annotations

from .build import REPORT_VERSION, build_report
from .period import Period, closed_period, default_period, parse_date, period_of
from .write import FORMATS, WrittenReport, render, write_report

__all__ = ["FORMATS", "REPORT_VERSION", "Period", "WrittenReport", "build_report",
           "closed_period", "default_period", "parse_date", "period_of", "render",
           "write_report"]
