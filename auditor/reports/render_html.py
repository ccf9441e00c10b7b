"""The HTML form: one self-contained page (inline CSS, inline SVG charts) that a
compliance officer can read without help, rendered from the report's JSON data
with a Jinja2 template (auditor/reports/templates/report.html.j2). Nothing is
loaded from the network: the page holds no URL."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .charts import coverage_chart, holdings_chart, ratio_chart
from .summary import pct, summary_lines, verdict

__all__ = ["render_html"]

_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV  # built once: loading and compiling the template is the slow part
    if _ENV is None:
        env = Environment(loader=PackageLoader("auditor.reports", "templates"),
                          autoescape=select_autoescape(["html", "j2"]),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["pct"] = pct
        env.filters["dash"] = lambda v: "–" if v is None else v
        _ENV = env
    return _ENV


def _chart(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)  # our own matplotlib output, not user text


def render_html(report: dict[str, Any]) -> str:
    charts = {"ratio": _chart(ratio_chart(report)), "holdings": _chart(holdings_chart(report)),
              "coverage": _chart(coverage_chart(report))}
    open_alerts = [a for a in report["alerts"] if a["state_at_end"] == "firing"]
    return _env().get_template("report.html.j2").render(
        r=report, summary=summary_lines(report), verdict=verdict(report), charts=charts,
        open_alerts=open_alerts)
