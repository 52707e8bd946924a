"""The run as one self-contained HTML page (``index.html``), for a release manager.

Rendered with Jinja2 from :mod:`phasegate.templates` (autoescaped; no network:
inline CSS, charts as inline SVG). Verdict first, with the phase, the stores
(passwords masked already in the summary's context), seed and versions; then
what changed since the previous run of the same phase (from
``history.jsonl``), a table of types by checks per phase, what failed with its
examples, load percentiles against the budget as a bar chart, the EXPLAIN
plans folded, the dual-write bursts with why their alarming figures are
expected, and the trend of the last runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from phasegate.gates.registry import order_of
from phasegate.gates.result import CheckResult

if TYPE_CHECKING:  # report.py writes index.html with this module
    from phasegate.report import Summary

TREND_RUNS = 20
_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("phasegate").joinpath("templates", name).read_text()
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(summary: Summary, history: Sequence[dict[str, Any]] = ()) -> str:
    """The page; ``history`` is the earlier runs (oldest first), for changes and trend."""
    same_phase = [h for h in history if h.get("phase") == summary.phase]
    return _ENV.get_template("report.html.j2").render(
        s=summary,
        verdict=summary.verdict,
        phases=_phases(summary),
        failed=[r for r in summary.results if r.status == "fail"],
        inconclusive=[r for r in summary.results if r.status == "inconclusive"],
        skipped=[r for r in summary.results if r.status == "skip"],
        errors=summary.error_groups(),
        changes=_changes(summary, same_phase[-1] if same_phase else None),
        load=_load(summary.results),
        plans=sorted((r for r in summary.results if "scans" in r.metrics), key=_row),
        bursts=_bursts(summary.results),
        trend=[*same_phase[-(TREND_RUNS - 1) :], {"verdict": summary.verdict, "run_id": "now"}],
    )


def _row(r: CheckResult) -> tuple[str, str]:
    return (r.type_id, r.check)


def _phases(summary: Summary) -> list[dict[str, Any]]:
    out = []
    for phase, types in sorted(summary.by_phase().items()):
        checks = sorted({c for t in types.values() for c in t}, key=order_of)
        out.append({"phase": phase, "checks": checks, "types": types})
    return out


def _changes(summary: Summary, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """New failures, fixed checks and numeric metric deltas against the previous run."""
    if previous is None:
        return None
    before: dict[tuple[str, str, str], dict[str, Any]] = {
        (phase, type_id, check): c
        for phase, p in previous.get("phases", {}).items()
        for type_id, t in p.get("types", {}).items()
        for check, c in t.get("checks", {}).items()
    }
    new_failures, fixed, deltas = [], [], []
    for r in summary.results:
        old = before.get((r.phase, r.type_id, r.check))
        if old is None:
            continue
        if r.status == "fail" and old["status"] != "fail":
            new_failures.append(r)
        if r.status == "pass" and old["status"] == "fail":
            fixed.append(r)
        for name, was in old.get("metrics", {}).items():
            now = r.metrics.get(name)
            if isinstance(now, int | float) and not isinstance(now, bool) and now != was:
                deltas.append((f"{r.type_id} / {r.check}", name, was, now))
    return {
        "run_id": previous.get("run_id"),
        "verdict": previous.get("verdict"),
        "new_failures": new_failures,
        "fixed": fixed,
        "deltas": deltas[:50],
        "more_deltas": max(0, len(deltas) - 50),
    }


def _load(results: Sequence[CheckResult]) -> dict[str, Any] | None:
    """p50/p95/p99 per endpoint and the p95 budget, as bar lengths for the SVG."""
    rows = sorted((r for r in results if r.check == "load-p95" and "p95_ms" in r.metrics), key=_row)
    if not rows:
        return None
    budget = float(rows[0].thresholds.get("p95_ms", 200))
    top = max([budget, *(float(r.metrics["p99_ms"] or 0) for r in rows)]) * 1.1
    scale = 600 / top
    endpoints = [
        {
            "name": r.type_id,
            "status": r.status,
            "requests": r.metrics.get("requests", 0),
            "bars": [
                (
                    label,
                    float(r.metrics[f"{label}_ms"] or 0),
                    float(r.metrics[f"{label}_ms"] or 0) * scale,
                )
                for label in ("p50", "p95", "p99")
            ],
        }
        for r in rows
    ]
    return {"budget": budget, "budget_x": budget * scale, "endpoints": endpoints}


def _percentiles(r: CheckResult) -> list[tuple[str, float]]:
    return [(label, float(r.metrics.get(f"{label}_ms") or 0)) for label in ("p50", "p95", "p99")]


def _bursts(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    closed = {r.type_id: r.metrics for r in results if r.check == "reconciled" and r.metrics}
    return [
        {"type": r.type_id, "m": r.metrics, "c": closed.get(r.type_id, {})}
        for r in sorted(results, key=_row)
        if r.check == "acked-durable" and r.metrics
    ]
