"""The run as one self-contained HTML page (``index.html``), for a release manager.

Rendered with Jinja2 from :mod:`phasegate.templates` (autoescaped; no network:
inline CSS, charts as inline SVG) from the typed
:class:`~phasegate.report_model.Report`. Verdict first, with the phase, the
stores (passwords masked already), seed and versions; then what changed since
the previous run of the same phase, a table of types by checks per phase, what
failed with its diagnosis groups and examples, load percentiles against the
budget as a bar chart and latency over the run, the EXPLAIN plans folded, the
dual-write bursts with why their alarming figures are expected, reconcile, and
the trend of the last runs.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2

from phasegate.report_model import Load, Report

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("phasegate").joinpath("templates", name).read_text()
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
BAR_WIDTH = 600  # px of the longest bar in the percentile chart
TIMELINE = (700, 160)  # px of the latency-over-the-run chart


def render_html(report: Report) -> str:
    return _ENV.get_template("report.html.j2").render(
        r=report,
        bars=_bars(report.load) if report.load else None,
        timeline=_timeline(report.load) if report.load else None,
    )


def _bars(load: Load) -> dict[str, Any]:
    """p50/p95/p99 per endpoint and the p95 budget, as bar lengths in px."""
    top = max([load.budget_p95_ms, *(e.p99_ms or 0 for e in load.endpoints)]) * 1.1
    scale = BAR_WIDTH / top
    return {
        "budget_x": load.budget_p95_ms * scale,
        "endpoints": [
            {
                "e": e,
                "bars": [
                    (label, ms or 0, (ms or 0) * scale)
                    for label, ms in (("p50", e.p50_ms), ("p95", e.p95_ms), ("p99", e.p99_ms))
                ],
            }
            for e in load.endpoints
        ],
    }


def _timeline(load: Load) -> dict[str, Any] | None:
    """The whole run's p50 and p95 over time as SVG polylines, with the budget line."""
    points = load.timeline
    if len(points) < 2:
        return None
    width, height = TIMELINE
    end = max(p.second for p in points) or 1.0
    top = max([load.budget_p95_ms, *(p.p95_ms for p in points)]) * 1.1

    def line(values: list[tuple[float, float]]) -> str:
        return " ".join(f"{x / end * width:.1f},{height - y / top * height:.1f}" for x, y in values)

    return {
        "width": width,
        "height": height,
        "end_s": end,
        "top_ms": top,
        "p50": line([(p.second, p.p50_ms) for p in points]),
        "p95": line([(p.second, p.p95_ms) for p in points]),
        "budget_y": height - load.budget_p95_ms / top * height,
    }
