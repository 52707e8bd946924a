"""Builds the typed :class:`~phasegate.report_model.Report` of a run: the one
place that reads check metrics by name.

>>> from phasegate.gates.result import CheckResult
>>> from phasegate.report import Summary
>>> s = Summary("r1", "2026-11-25T16:00:00+00:00", "A", {},
...             (CheckResult("A", "friends", "counts", "fail", "1 missing"),))
>>> r = build(s)
>>> r.verdict, r.exit_code, r.phases[0].types[0].cell("counts").status
('fail', 1, 'fail')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from phasegate.gates.registry import order_of
from phasegate.gates.result import CheckResult
from phasegate.report_model import (
    Burst,
    Changes,
    Check,
    DiagnosisGroup,
    EndpointLoad,
    ErrorGroup,
    Load,
    LoadPoint,
    MetricDelta,
    PhaseReport,
    Plan,
    ReconcileReport,
    ReconcileRow,
    Report,
    TrendPoint,
    TypeRow,
    worst,
)

if TYPE_CHECKING:
    from phasegate.reconcile import Reconciled
    from phasegate.report import Summary

MAX_DELTAS = 50  # metric changes listed against the previous run
TREND_RUNS = 20  # runs in the trend


def build(summary: Summary, history: Sequence[Mapping[str, Any]] = ()) -> Report:
    """The report of one run; ``history`` is the earlier runs, oldest first."""
    results = summary.results
    same_phase = [h for h in history if h.get("phase") == summary.phase]
    return Report(
        run_id=summary.run_id,
        created_at=summary.created_at,
        phase=summary.phase,
        verdict=summary.verdict,
        context=dict(summary.context),
        phases=_phases(results),
        errors=tuple(ErrorGroup(m, tuple(t)) for m, t in summary.error_groups()),
        other_phase_skips=summary.phase_skips,
        plans=_plans(results),
        load=_load(results),
        bursts=_bursts(results),
        changes=_changes(results, same_phase[-1] if same_phase else None),
        trend=(
            *(TrendPoint(str(h.get("run_id")), str(h.get("verdict"))) for h in same_phase),
            TrendPoint("now", summary.verdict),
        )[-TREND_RUNS:],
    )


def reconcile_section(result: Reconciled) -> ReconcileReport:
    """One reconcile run, for any report that carries one."""
    return ReconcileReport(
        verdict=result.verdict(),
        closed=result.closed,
        dry_run=result.dry_run,
        seconds=result.seconds,
        journal_applied=len(result.journal_applied),
        journal_failed=tuple(result.journal_failed),
        rows=tuple(
            ReconcileRow(
                type_id=t,
                differed=result.differences_before.get(t, 0),
                repaired=tuple(result.repaired.get(t, ())),
                written_to_kv=tuple(result.written_to_kv.get(t, ())),
                pg_only=tuple(result.pg_only.get(t, ())),
                repair_failed=tuple(result.repair_failed.get(t, ())),
                still_different=tuple(result.still_different.get(t, ())),
                differences_after=result.differences_after.get(t, 0),
            )
            for t in result.types
        ),
    )


def _check(r: CheckResult) -> Check:
    groups = tuple(DiagnosisGroup(**g) for g in r.metrics.get("diagnosis", ()))
    return Check(
        r.phase, r.type_id, r.check, r.status, r.message, r.details, groups, r.metrics, r.thresholds
    )


def _phases(results: Sequence[CheckResult]) -> tuple[PhaseReport, ...]:
    grouped: dict[str, dict[str, list[Check]]] = {}
    for r in results:
        grouped.setdefault(r.phase, {}).setdefault(r.type_id, []).append(_check(r))
    out = []
    for phase, types in sorted(grouped.items()):
        rows = tuple(
            TypeRow(type_id, worst(c.status for c in checks), tuple(checks))
            for type_id, checks in types.items()
        )
        columns = tuple(sorted({c.name for t in rows for c in t.checks}, key=order_of))
        out.append(
            PhaseReport(phase, worst(c.status for t in rows for c in t.checks), columns, rows)
        )
    return tuple(out)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _plans(results: Sequence[CheckResult]) -> tuple[Plan, ...]:
    plans = sorted((r for r in results if "scans" in r.metrics), key=lambda r: (r.type_id, r.check))
    return tuple(
        Plan(
            type_id=r.type_id,
            mode=r.check.removeprefix("plan-"),
            forced=bool(r.metrics.get("forced_index_scan")),
            status=r.status,
            message=r.message,
            execution_ms=_number(r.metrics.get("execution_ms")),
            buffers=int(r.metrics.get("shared_hit_blocks", 0))
            + int(r.metrics.get("shared_read_blocks", 0)),
            scans=tuple(r.metrics["scans"]),
        )
        for r in plans
    )


def _load(results: Sequence[CheckResult]) -> Load | None:
    rows = sorted(
        (r for r in results if r.check == "load-p95" and "p95_ms" in r.metrics),
        key=lambda r: r.type_id,
    )
    if not rows:
        return None
    baselines = {
        r.type_id: r.metrics.get("baseline_p95_ms")
        for r in results
        if r.check == "load-baseline" and r.metrics
    }
    budget = float(rows[0].thresholds.get("p95_ms", 200))
    endpoints = tuple(
        EndpointLoad(
            name=r.type_id,
            status=r.status,
            requests=int(r.metrics.get("requests", 0)),
            failures=int(r.metrics.get("failures", 0)),
            p50_ms=_number(r.metrics.get("p50_ms")),
            p95_ms=_number(r.metrics.get("p95_ms")),
            p99_ms=_number(r.metrics.get("p99_ms")),
            baseline_p95_ms=_number(baselines.get(r.type_id)),
            budget_p95_ms=float(r.thresholds.get("p95_ms", budget)),
        )
        for r in rows
    )
    total = next((r.metrics for r in results if r.check == "throughput"), {})
    return Load(
        endpoints=endpoints,
        budget_p95_ms=budget,
        requests_per_minute=_number(total.get("requests_per_minute")),
        users=total.get("users"),
        duration_s=_number(total.get("duration_s")),
        cpu_percent=_number(total.get("cpu_percent")),
        artifacts=tuple(total.get("artifacts", ())),
        timeline=tuple(LoadPoint(**p) for p in total.get("timeline", ())),
    )


def _bursts(results: Sequence[CheckResult]) -> tuple[Burst, ...]:
    closed = {r.type_id: r.metrics for r in results if r.check == "reconciled" and r.metrics}
    out = []
    for r in sorted(results, key=lambda r: r.type_id):
        if r.check != "acked-durable" or not r.metrics:
            continue
        m, c = r.metrics, closed.get(r.type_id, {})
        out.append(
            Burst(
                type_id=r.type_id,
                writes=int(m["writes"]),
                acknowledged=int(m["acknowledged"]),
                journaled=int(m["journaled"]),
                journaled_pg_missed=int(m["journaled_pg_missed"]),
                journaled_kv_missed=int(m["journaled_kv_missed"]),
                write_alert=m.get("write_alert") or None,
                write_failure_percent=float(m["write_failure_percent"]),
                reconcile_seconds=_number(c.get("reconcile_seconds")),
                replayed=c.get("journal_replayed"),
                repaired=c.get("repaired"),
                differences_after=c.get("differences_after"),
                divergence_before_percent=_number(c.get("divergence_before_percent")),
                divergence_after_percent=_number(c.get("divergence_after_percent")),
            )
        )
    return tuple(out)


def _changes(results: Sequence[CheckResult], previous: Mapping[str, Any] | None) -> Changes | None:
    """New failures, fixed checks and numeric metric deltas against the previous run."""
    if previous is None:
        return None
    before: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (phase, type_id, check): c
        for phase, p in previous.get("phases", {}).items()
        for type_id, t in p.get("types", {}).items()
        for check, c in t.get("checks", {}).items()
    }
    new_failures, fixed, deltas = [], [], []
    for r in results:
        old = before.get((r.phase, r.type_id, r.check))
        if old is None:
            continue
        if r.status == "fail" and old["status"] != "fail":
            new_failures.append(f"{r.type_id}-{r.check}")
        if r.status == "pass" and old["status"] == "fail":
            fixed.append(f"{r.type_id}-{r.check}")
        for name, was in old.get("metrics", {}).items():
            now = r.metrics.get(name)
            if isinstance(now, int | float) and not isinstance(now, bool) and now != was:
                deltas.append(MetricDelta(f"{r.type_id} / {r.check}", name, was, now))
    return Changes(
        run_id=str(previous.get("run_id")),
        verdict=str(previous.get("verdict")),
        new_failures=tuple(new_failures),
        fixed=tuple(fixed),
        deltas=tuple(deltas[:MAX_DELTAS]),
        more_deltas=max(0, len(deltas) - MAX_DELTAS),
    )
