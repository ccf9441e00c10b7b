"""The report's charts as inline SVG text (matplotlib, no pyplot, no network).

Glyphs are drawn as paths (`svg.fonttype: path`), so the SVG needs no font;
the XML prologue, DOCTYPE, namespace URLs and metadata are stripped so the
HTML holds no URL at all (inline SVG in HTML needs no namespace). Floats
appear here only as plotting coordinates, never in the report's figures.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit

from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

__all__ = ["coverage_chart", "holdings_chart", "ratio_chart", "svg_text"]

_RC: dict[RcKeyType, Any] = {"svg.fonttype": "path", "svg.hashsalt": "custody-auditor", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}
# (key in the report's latest amounts, label, colour)
_TIERS = (("hot", "hot", "#d9534f"), ("warm", "warm", "#f0ad4e"),
          ("deposit", "deposit", "#f7d774"), ("C", "cold", "#3a6ea5"))
_STRIP = [re.compile(p, re.S) for p in (r"<\?xml.*?\?>\s*", r"<!DOCTYPE.*?>\s*",
                                         r"<metadata>.*?</metadata>\s*",
                                         r'\s+xmlns(:\w+)?="[^"]*"')]


def svg_text(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    with rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    for p in _STRIP:
        text = p.sub("", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{title}" ', 1)


def _pct(v: str | Decimal) -> float:
    return float(Decimal(v) * 100)  # a plotting coordinate only


def ratio_chart(report: dict[str, Any]) -> str | None:
    series = report["exposure"]["series"]
    if not series:
        return None
    with rc_context(_RC):
        fig = Figure(figsize=(9, 3.2))
        ax = fig.add_subplot()
        t = [datetime.fromisoformat(p["start"]) for p in series]
        # matplotlib's stubs leave out datetime x values (its date units convert them)
        ax.fill_between(t,  # type: ignore[arg-type]
                        [_pct(p["min"]) for p in series], [_pct(p["max"]) for p in series],
                        color="#3a6ea5", alpha=0.25, linewidth=0, step="post", label="range")
        ax.plot(t, [_pct(p["last"]) for p in series], color="#3a6ea5", linewidth=1,  # type: ignore[arg-type]
                drawstyle="steps-post", label="hot ratio")
        limits = report["limits"]["hot_ratio"] or {}
        for level, color in (("warning", "#f0ad4e"), ("critical", "#d9534f")):
            if limits.get(level) is not None:
                ax.axhline(_pct(limits[level]), color=color, linestyle="--", linewidth=1,
                           label=f"{level} {_pct(limits[level]):g}%")
        ax.set_ylabel("% of customer crypto online")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        fig.autofmt_xdate()
        return svg_text(fig, "Hot ratio over time against the warning and critical limits")


def holdings_chart(report: dict[str, Any]) -> str | None:
    """Per asset, the share of customer holdings in each tier (stacked to 100%)."""
    rows = [(s, a["latest"]) for s, a in report["exposure"]["assets"].items() if a["latest"]]
    rows = [(s, x) for s, x in rows if sum(Decimal(x[k] or 0) for k, _, _ in _TIERS) > 0]
    if not rows:
        return None
    with rc_context(_RC):
        fig = Figure(figsize=(9, 0.5 + 0.45 * len(rows)))
        ax = fig.add_subplot()
        left = [0.0] * len(rows)
        for key, tier, color in _TIERS:
            widths = []
            for _, x in rows:
                total = sum(Decimal(x[k] or 0) for k, _, _ in _TIERS)
                widths.append(_pct(Decimal(x[key] or 0) / total))
            ax.barh([s for s, _ in rows], widths, left=left, color=color, label=tier)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_xlabel("% of the asset's customer holdings (latest cycle)")
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.legend(loc="lower right", ncols=4, fontsize=8, frameon=False,
                  bbox_to_anchor=(1, 1))
        return svg_text(fig, "Customer holdings per asset by tier")


def coverage_chart(report: dict[str, Any]) -> str | None:
    """Per asset, guarantee coverage (G ÷ N) and reserve coverage ((O + C) ÷ L), latest."""
    rows = [(s, a["latest"]) for s, a in report["exposure"]["assets"].items() if a["latest"]]
    if not rows:
        return None
    with rc_context(_RC):
        fig = Figure(figsize=(9, 0.6 + 0.5 * len(rows)))
        ax = fig.add_subplot()
        ys = list(range(len(rows)))
        for key, off, color, label in (("guarantee_coverage", -0.2, "#5cb85c", "guarantee G ÷ N"),
                                       ("reserve_coverage", 0.2, "#3a6ea5", "reserves (O+C) ÷ L")):
            vals = [_pct(x[key]) if x[key] is not None else 0.0 for _, x in rows]
            ax.barh([y + off for y in ys], vals, height=0.38, color=color, label=label)
        ax.axvline(100, color="#d9534f", linestyle="--", linewidth=1, label="100%")
        ax.set_yticks(ys, [s for s, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel("% coverage (latest cycle; no bar: nothing to cover)")
        ax.legend(loc="lower right", ncols=3, fontsize=8, frameon=False, bbox_to_anchor=(1, 1))
        return svg_text(fig, "Coverage per asset")
