"""The run as Markdown (``report.md``, a PR comment, a GitHub job summary) and as
JSON (``summary.json``, documented in reports/README.md), both from the typed
:class:`~phasegate.report_model.Report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phasegate.report_model import (
    RECONCILE_SHOWN,
    Check,
    ErrorGroup,
    Load,
    Plan,
    ReconcileReport,
    Report,
)

SCHEMA_VERSION = 1
_MARK = {"pass": "pass", "fail": "**FAIL**", "skip": "skip", "inconclusive": "*inconclusive*"}


def render_json(report: Report) -> str:
    return json.dumps(as_dict(report), indent=2, sort_keys=False, default=str) + "\n"


def as_dict(report: Report) -> dict[str, Any]:
    """summary.json: every check complete (message, examples, metrics, thresholds)."""
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": report.run_id,
        "created_at": report.created_at,
        "phase": report.phase,
        "verdict": report.verdict,
        "context": dict(report.context),
        "phases": {
            p.phase: {
                "verdict": p.verdict,
                "types": {
                    t.type_id: {
                        "verdict": t.verdict,
                        "checks": {c.name: _check(c) for c in t.checks},
                    }
                    for t in p.types
                },
            }
            for p in report.phases
        },
        "skipped_other_phases": [{"test": t, "reason": r} for t, r in report.other_phase_skips],
        "errors": [{"test": t, "message": e.message} for e in report.errors for t in e.tests],
    }
    if report.reconcile is not None:
        out["reconcile"] = _reconcile_dict(report.reconcile)
    return out


def _check(c: Check) -> dict[str, Any]:
    return {
        "status": c.status,
        "message": c.message,
        "details": list(c.details),
        "metrics": dict(c.metrics),
        "thresholds": dict(c.thresholds),
    }


def _reconcile_dict(r: ReconcileReport) -> dict[str, Any]:
    return {
        "verdict": r.verdict,
        "closed": r.closed,
        "dry_run": r.dry_run,
        "seconds": round(r.seconds, 3),
        "journal_applied": r.journal_applied,
        "journal_failed": list(r.journal_failed),
        "types": {
            row.type_id: {
                "differed": row.differed,
                "differences_after": row.differences_after,
                "repaired": list(row.repaired),
                "written_to_kv": list(row.written_to_kv),
                "pg_only": list(row.pg_only),
                "repair_failed": list(row.repair_failed),
                "still_different": list(row.still_different),
            }
            for row in r.rows
        },
    }


def render_markdown(report: Report) -> str:
    """Verdict first, then a table per phase, the sections, then what failed."""
    lines = [
        f"# phasegate: {report.verdict.upper()}"
        + (f" (phase {report.phase})" if report.phase else ""),
        "",
        f"Run `{report.run_id}` at {report.created_at}. "
        + ", ".join(f"{k}: `{v}`" for k, v in report.context.items()),
        "",
    ]
    for p in report.phases:
        lines += [f"## Phase {p.phase}", "", "| type | " + " | ".join(p.columns) + " |"]
        lines.append("|---" * (len(p.columns) + 1) + "|")
        for t in p.types:
            cells = [_MARK[c.status] if (c := t.cell(name)) else "" for name in p.columns]
            lines.append(f"| {t.type_id} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += bursts_lines(report)
    if report.reconcile is not None:
        lines += reconcile_lines(report.reconcile)
    lines += _plans_lines(report.plans)
    if report.load is not None:
        lines += _load_lines(report.load)
    failed = report.checks("fail")
    if failed:
        lines += ["## What failed", ""]
        for c in failed:
            lines.append(f"- **{c.type_id} / {c.name}**: {c.message}")
            lines.extend(f"  - `{d}`" for d in c.details)  # the diagnosis lines lead them
        lines.append("")
    inconclusive = report.checks("inconclusive")
    if inconclusive:
        lines += ["## Inconclusive (nothing to judge)", ""]
        lines.extend(f"- **{c.type_id} / {c.name}**: {c.message}" for c in inconclusive)
        lines.append("")
    if report.errors:
        lines += ["## Errors (no verdict)", "", *error_lines(report.errors), ""]
    skipped = report.checks("skip")
    if skipped:
        lines += ["## Skipped checks", ""]
        lines.extend(f"- {c.type_id} / {c.name}: {c.message}" for c in skipped)
        lines.append("")
    if report.other_phase_skips:
        lines.append(f"{len(report.other_phase_skips)} checks of other phases were skipped.")
        lines.append("")
    return "\n".join(lines)


def error_lines(groups: tuple[ErrorGroup, ...]) -> list[str]:
    lines = []
    for e in groups:
        if len(e.tests) == 1:
            lines.append(f"- `{e.tests[0]}`: {e.message}")
        else:
            lines.append(f"- {len(e.tests)} checks (first `{e.tests[0]}`): {e.message}")
    return lines


def bursts_lines(report: Report) -> list[str]:
    """Phase B: per type, what the fault burst did and what reconcile closed."""
    if not report.bursts:
        return []
    lines = [
        "## Dual-write bursts",
        "",
        "| type | writes | acknowledged | journaled (Postgres / KV missed) | write alert | "
        "reconcile s | replayed | repaired | differences after | divergence before / after |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for b in report.bursts:
        alert = "fired" if b.write_alert else "-"
        lines.append(
            f"| {b.type_id} | {b.writes} | {b.acknowledged} | {b.journaled} "
            f"({b.journaled_pg_missed} / {b.journaled_kv_missed}) | {alert} "
            f"({b.write_failure_percent:.1f}% failed) | {_or_dash(b.reconcile_seconds)} | "
            f"{_or_dash(b.replayed)} | {_or_dash(b.repaired)} | {_or_dash(b.differences_after)} | "
            f"{_or_dash(b.divergence_before_percent)}% / {_or_dash(b.divergence_after_percent)}% |"
        )
    return [*lines, "", f"Why these figures are expected: {report.bursts[0].why}", ""]


def _or_dash(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


def reconcile_lines(r: ReconcileReport) -> list[str]:
    """The section: verdict, the table, and the first keys of each kind."""
    lines = [
        "## Reconcile",
        "",
        f"{r.verdict} ({r.seconds:.1f} s).",
        "",
        "| type | differed | repaired | to KV | Postgres-only | still differ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in r.rows:
        lines.append(
            f"| {row.type_id} | {row.differed} | {len(row.repaired)} | {len(row.written_to_kv)} | "
            f"{len(row.pg_only)} | {row.differences_after} |"
        )
    lines.append("")
    lines += reconcile_keys(r)
    return [*lines, ""]


def reconcile_keys(r: ReconcileReport) -> list[str]:
    """The first keys of each kind per type, and journal entries still failing."""
    lines = []
    for row in r.rows:
        for title, keys in row.kinds():
            more = f" and {len(keys) - RECONCILE_SHOWN} more" if len(keys) > RECONCILE_SHOWN else ""
            lines.append(f"- {title} ({row.type_id}): " + ", ".join(keys[:RECONCILE_SHOWN]) + more)
    lines.extend(f"- journal entry still failing: {f}" for f in r.journal_failed[:RECONCILE_SHOWN])
    return lines


def _plans_lines(plans: tuple[Plan, ...]) -> list[str]:
    """One row per EXPLAINed query: the time, buffers and scans of its plan."""
    if not plans:
        return []
    lines = [
        "## Query plans",
        "",
        "| query | plan | status | execution ms | buffers | scans |",
        "|---|---|---|---:|---:|---|",
    ]
    for p in plans:
        ms = "not run" if p.execution_ms is None else f"{p.execution_ms:.3f}"
        mode = p.mode + (" (forced)" if p.forced else "")
        scans = "; ".join(f"`{s}`" for s in p.scans)
        lines.append(f"| {p.type_id} | {mode} | {_MARK[p.status]} | {ms} | {p.buffers} | {scans} |")
    lines.append("")
    if any(p.forced for p in plans):
        lines += [
            "forced: the table is below the Seq Scan threshold, so the plan shown was "
            "made with enable_seqscan off to judge the index.",
            "",
        ]
    return lines


def _load_lines(load: Load) -> list[str]:
    """Latency per endpoint from the load checks, and the run's totals."""
    lines = [
        "## Load",
        "",
        "| endpoint | requests | failures | p50 ms | p95 ms | p99 ms | baseline p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in load.endpoints:
        lines.append(
            f"| {e.name} | {e.requests:,} | {e.failures:,} | {_or_dash(e.p50_ms)} | "
            f"{_or_dash(e.p95_ms)} | {_or_dash(e.p99_ms)} | {_or_dash(e.baseline_p95_ms)} |"
        )
    if load.requests_per_minute is not None:
        lines += [
            "",
            f"{load.requests_per_minute:,g} requests/min from {load.users} users over "
            f"{load.duration_s:g} s; load generator CPU {load.cpu_percent:g}% of one core. "
            "Locust's own report: " + ", ".join(f"`{Path(a).name}`" for a in load.artifacts),
        ]
    return [*lines, ""]
