"""Gate reports: one immutable summary, one renderer per format.

A run writes ``<reports_dir>/<run-id>/summary.json`` (for CI), ``report.md``
(for a PR comment), ``index.html`` (for a release manager,
:mod:`phasegate.report_html`) and ``junit.xml`` (for CI test views,
:mod:`phasegate.report_junit`), and points ``<reports_dir>/latest`` at it.
The fields of summary.json are documented in reports/README.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phasegate import report_history as history
from phasegate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_USAGE
from phasegate.gates.registry import order_of
from phasegate.gates.result import CheckResult
from phasegate.reconcile import Reconciled
from phasegate.report_html import render_html
from phasegate.report_junit import render_junit

SCHEMA_VERSION = 1
KEEP = 20  # run folders kept by default
# A run's exit code follows its verdict, for pytest and the CLI alike.
EXIT_BY_VERDICT = {
    "pass": EXIT_OK,
    "fail": EXIT_GATE_FAILED,
    "error": EXIT_USAGE,
    "inconclusive": EXIT_INCONCLUSIVE,
}
_MARK = {"pass": "pass", "fail": "**FAIL**", "skip": "skip", "inconclusive": "*inconclusive*"}


@dataclass(frozen=True)
class Summary:
    """Everything a report says, immutable."""

    run_id: str
    created_at: str
    phase: str | None
    context: Mapping[str, Any]
    results: tuple[CheckResult, ...]
    phase_skips: tuple[tuple[str, str], ...] = ()  # (test id, reason)
    errors: tuple[tuple[str, str], ...] = ()  # tests that broke without a result

    @property
    def verdict(self) -> str:
        """fail (a check failed), error (a check could not run: a store unreachable,
        a permission refused), inconclusive (a check had nothing to judge, or none
        ran), else pass. The exit code follows it."""
        statuses = {r.status for r in self.results}
        if "fail" in statuses:
            return "fail"
        if self.errors:
            return "error"
        if "inconclusive" in statuses or "pass" not in statuses:
            return "inconclusive"
        return "pass"

    def error_groups(self) -> list[tuple[str, list[str]]]:
        """One entry per cause with the tests it broke: a store that went away breaks
        every check the same way."""
        by_message: dict[str, list[str]] = {}
        for test, message in self.errors:
            by_message.setdefault(message, []).append(test)
        return list(by_message.items())

    def by_phase(self) -> dict[str, dict[str, dict[str, CheckResult]]]:
        out: dict[str, dict[str, dict[str, CheckResult]]] = {}
        for r in self.results:
            out.setdefault(r.phase, {}).setdefault(r.type_id, {})[r.check] = r
        return out

    def as_dict(self) -> dict[str, Any]:
        phases: dict[str, Any] = {}
        for phase, types in sorted(self.by_phase().items()):
            statuses = [r.status for checks in types.values() for r in checks.values()]
            phases[phase] = {
                "verdict": _verdict(statuses),
                "types": {
                    type_id: {
                        "verdict": _verdict([r.status for r in checks.values()]),
                        "checks": {c: _check_dict(r) for c, r in checks.items()},
                    }
                    for type_id, checks in types.items()
                },
            }
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "phase": self.phase,
            "verdict": self.verdict,
            "context": dict(self.context),
            "phases": phases,
            "skipped_other_phases": [{"test": t, "reason": r} for t, r in self.phase_skips],
            "errors": [{"test": t, "message": m} for t, m in self.errors],
        }


def _verdict(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    for worst in ("fail", "inconclusive", "pass"):
        if worst in seen:
            return worst
    return "skip"


def _check_dict(r: CheckResult) -> dict[str, Any]:
    data = r.as_dict()
    for name in ("phase", "type", "check"):
        del data[name]
    return data


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def render_json(summary: Summary) -> str:
    return json.dumps(summary.as_dict(), indent=2, sort_keys=False, default=str) + "\n"


def render_markdown(summary: Summary) -> str:
    """A report for a PR comment: verdict first, then a table, then what failed."""
    lines = [
        f"# phasegate: {summary.verdict.upper()}"
        + (f" (phase {summary.phase})" if summary.phase else ""),
        "",
        f"Run `{summary.run_id}` at {summary.created_at}. "
        + ", ".join(f"{k}: `{v}`" for k, v in summary.context.items()),
        "",
    ]
    for phase, types in sorted(summary.by_phase().items()):
        checks = sorted({c for t in types.values() for c in t}, key=order_of)
        lines += [f"## Phase {phase}", "", "| type | " + " | ".join(checks) + " |"]
        lines.append("|---" * (len(checks) + 1) + "|")
        for type_id, results in types.items():
            cells = [_MARK[results[c].status] if c in results else "" for c in checks]
            lines.append(f"| {type_id} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _bursts_section(summary.results)
    lines += _plans_section(summary.results)
    lines += _load_section(summary.results)
    failed = [r for r in summary.results if r.status == "fail"]
    if failed:
        lines += ["## What failed", ""]
        for r in failed:
            lines.append(f"- **{r.type_id} / {r.check}**: {r.message}")
            lines.extend(f"  - `{d}`" for d in r.details)
        lines.append("")
    inconclusive = [r for r in summary.results if r.status == "inconclusive"]
    if inconclusive:
        lines += ["## Inconclusive (nothing to judge)", ""]
        lines.extend(f"- **{r.type_id} / {r.check}**: {r.message}" for r in inconclusive)
        lines.append("")
    if summary.errors:
        lines += ["## Errors (no verdict)", ""]
        lines.extend(_error_lines(summary.error_groups()))
        lines.append("")
    skipped = [r for r in summary.results if r.status == "skip"]
    if skipped:
        lines += ["## Skipped checks", ""]
        lines.extend(f"- {r.type_id} / {r.check}: {r.message}" for r in skipped)
        lines.append("")
    if summary.phase_skips:
        lines.append(f"{len(summary.phase_skips)} checks of other phases were skipped.")
        lines.append("")
    return "\n".join(lines)


def _error_lines(groups: list[tuple[str, list[str]]]) -> list[str]:
    lines = []
    for message, tests in groups:
        if len(tests) == 1:
            lines.append(f"- `{tests[0]}`: {message}")
        else:
            lines.append(f"- {len(tests)} checks (first `{tests[0]}`): {message}")
    return lines


def _bursts_section(results: Iterable[CheckResult]) -> list[str]:
    """Phase B: per type, what the fault burst did and what reconcile closed."""
    results = list(results)
    durable = {r.type_id: r.metrics for r in results if r.check == "acked-durable" and r.metrics}
    if not durable:
        return []
    closed = {r.type_id: r.metrics for r in results if r.check == "reconciled" and r.metrics}
    lines = [
        "## Dual-write bursts",
        "",
        "| type | writes | acknowledged | journaled (Postgres / KV missed) | write alert | "
        "reconcile s | replayed | repaired | differences after | divergence before / after |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for type_id, m in sorted(durable.items()):
        c = closed.get(type_id, {})
        alert = "fired" if m.get("write_alert") else "-"
        lines.append(
            f"| {type_id} | {m['writes']} | {m['acknowledged']} | {m['journaled']} "
            f"({m['journaled_pg_missed']} / {m['journaled_kv_missed']}) | {alert} "
            f"({m['write_failure_percent']:.1f}% failed) | {c.get('reconcile_seconds', '-')} | "
            f"{c.get('journal_replayed', '-')} | {c.get('repaired', '-')} | "
            f"{c.get('differences_after', '-')} | {c.get('divergence_before_percent', '-')}% / "
            f"{c.get('divergence_after_percent', '-')}% |"
        )
    lines += [
        "",
        "Each burst sends the type's app writes through the reference service in dual "
        "mode, one window per fault (none, Postgres and KV dropped, stalled, paused, "
        "backends terminated, each server killed and restarted). The write alert fires "
        "above the budget by design there. Divergence is the share of the burst's read "
        "requests answered differently by KV and Postgres, before and after reconcile.",
        "",
    ]
    return lines


def _plans_section(results: Iterable[CheckResult]) -> list[str]:
    """One row per EXPLAINed query: the time, buffers and scans of its plan."""
    plans = [r for r in results if "scans" in r.metrics]
    if not plans:
        return []
    lines = [
        "## Query plans",
        "",
        "| query | plan | status | execution ms | buffers | scans |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in sorted(plans, key=lambda r: (r.type_id, r.check)):
        m = r.metrics
        ms = "not run" if m.get("execution_ms") is None else f"{m['execution_ms']:.3f}"
        mode = r.check.removeprefix("plan-") + (" (forced)" if m.get("forced_index_scan") else "")
        buffers = int(m.get("shared_hit_blocks", 0)) + int(m.get("shared_read_blocks", 0))
        scans = "; ".join(f"`{s}`" for s in m["scans"])
        lines.append(f"| {r.type_id} | {mode} | {_MARK[r.status]} | {ms} | {buffers} | {scans} |")
    lines += [
        "",
        "forced: the table is below the Seq Scan threshold, so the plan shown was "
        "made with enable_seqscan off to judge the index.",
        "",
    ]
    return lines


def _load_section(results: Iterable[CheckResult]) -> list[str]:
    """Latency per endpoint from the load checks, and the run's totals."""
    rows = {r.type_id: r for r in results if r.check == "load-p95" and "p95_ms" in r.metrics}
    if not rows:
        return []
    baselines = {
        r.type_id: r.metrics.get("baseline_p95_ms")
        for r in results
        if r.check == "load-baseline" and r.metrics
    }
    lines = [
        "## Load",
        "",
        "| endpoint | requests | failures | p50 ms | p95 ms | p99 ms | baseline p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in sorted(rows.items()):
        m = r.metrics
        base = baselines.get(name)
        lines.append(
            f"| {name} | {m['requests']:,} | {m['failures']:,} | {m['p50_ms']} | "
            f"{m['p95_ms']} | {m['p99_ms']} | {'-' if base is None else base} |"
        )
    total = next((r for r in results if r.check == "throughput"), None)
    if total is not None:
        m = total.metrics
        lines += [
            "",
            f"{m.get('requests_per_minute', 0):,} requests/min from {m.get('users')} users over "
            f"{m.get('duration_s')} s; load generator CPU {m.get('cpu_percent')}% of one core. "
            "Locust's own report: "
            + ", ".join(f"`{Path(a).name}`" for a in m.get("artifacts", [])),
        ]
    return [*lines, ""]


def write(summary: Summary, reports_dir: str | Path, *, keep: int = KEEP) -> Path:
    """Write the run's folder, repoint ``latest``, append the run to
    ``history.jsonl``, prune all but the last ``keep`` run folders, and add the
    Markdown to a GitHub job summary when there is one; returns the folder."""
    root = Path(reports_dir)
    folder = root / summary.run_id
    folder.mkdir(parents=True, exist_ok=True)
    _keep_artifacts(summary.results, folder)
    (folder / "summary.json").write_text(render_json(summary))
    (folder / "report.md").write_text(render_markdown(summary))
    (folder / "junit.xml").write_text(render_junit(summary))
    (folder / "index.html").write_text(render_html(summary, history.read(root)))
    history.append(root, history.entry(summary.as_dict()))
    latest = root / "latest"
    temporary = root / f".latest-{secrets.token_hex(4)}"
    temporary.symlink_to(summary.run_id, target_is_directory=True)
    os.replace(temporary, latest)  # atomic, so readers never see it missing
    history.prune(root, keep)
    history.job_summary(render_markdown(summary))
    return folder


def _keep_artifacts(results: Iterable[CheckResult], folder: Path) -> None:
    """Copy files a check produced (Locust's HTML report) into the run's folder."""
    for r in results:
        for path in r.metrics.get("artifacts", ()):
            source = Path(path)
            if source.is_file():
                shutil.copy2(source, folder / source.name)


@dataclass
class GateResults:
    """Results gathered from pytest reports (on the xdist controller too)."""

    results: list[CheckResult] = field(default_factory=list)
    phase_skips: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_gate_activity(self) -> bool:
        return bool(self.results or self.phase_skips or self.errors)


SHOWN = 5  # reconcile: keys listed per type and kind


def reconcile_lines(result: Reconciled) -> list[str]:
    """The markdown section: verdict, the table, and the first keys of each kind."""
    lines = [
        "## Reconcile",
        "",
        f"{result.verdict()} ({result.seconds:.1f} s).",
        "",
        "| type | differed | repaired | to KV | Postgres-only | still differ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in result.types:
        lines.append(
            f"| {t} | {result.differences_before.get(t, 0)} | {len(result.repaired.get(t, []))} | "
            f"{len(result.written_to_kv.get(t, []))} | {len(result.pg_only.get(t, []))} | "
            f"{result.differences_after.get(t, 0)} |"
        )
    lines.append("")
    kinds = (
        ("repaired in Postgres", result.repaired),
        ("written to KV", result.written_to_kv),
        ("Postgres-only, left alone", result.pg_only),
        ("could not repair", result.repair_failed),
        ("still different after repair", result.still_different),
    )
    for title, found in kinds:
        for t, names in found.items():
            if names:
                more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
                lines.append(f"- {title} ({t}): " + ", ".join(names[:SHOWN]) + more)
    lines.extend(f"- journal entry still failing: {f}" for f in result.journal_failed[:SHOWN])
    return [*lines, ""]


def write_reconcile_report(result: Reconciled, folder: Path) -> Path:
    """``<folder>/<UTC time>.md`` and ``.json`` of one reconcile run."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    (folder / f"{stamp}.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    path = folder / f"{stamp}.md"
    path.write_text("# phasegate reconcile\n\n" + "\n".join(reconcile_lines(result)[2:]))
    return path
