"""The report model: what a run says, typed and immutable.

:func:`phasegate.report_build.build` makes a :class:`Report` of the run's
collected results (:class:`~phasegate.report.Summary`, whose checks travel
through pytest-xdist as plain dicts) and the earlier runs of
``history.jsonl``; it is the only reader of check metrics by name. The
renderers (Markdown and JSON :mod:`~phasegate.report_md`, HTML
:mod:`~phasegate.report_html`, JUnit XML :mod:`~phasegate.report_junit`) read
typed fields only. :func:`~phasegate.report_build.reconcile_section` does the
same for one reconcile run, so ``phasegate reconcile``, the Phase B burst and
the demo report it the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from phasegate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_USAGE

# A run's exit code follows its verdict, for pytest and the CLI alike.
EXIT_BY_VERDICT = {
    "pass": EXIT_OK,
    "fail": EXIT_GATE_FAILED,
    "error": EXIT_USAGE,
    "inconclusive": EXIT_INCONCLUSIVE,
}
RECONCILE_SHOWN = 5  # keys listed per type and kind

BURST_WHY = (
    "each burst sends the type's app writes through the reference service in dual "
    "mode, one window per fault (none, Postgres and KV dropped, stalled, paused, "
    "backends terminated, each server killed and restarted), so a high share of "
    "failed writes and the write-failure alert are the faults working as injected. "
    "Divergence before reconcile is the share of the burst's read requests the two "
    "stores answered differently while they were apart. What the gate judges is that "
    "every acknowledged write is durable and divergence after reconcile is zero."
)


def worst(statuses: Iterable[str]) -> str:
    """fail, then inconclusive, then pass; ``skip`` when only skips (or nothing)."""
    seen = set(statuses)
    for status in ("fail", "inconclusive", "pass"):
        if status in seen:
            return status
    return "skip"


@dataclass(frozen=True)
class DiagnosisGroup:
    """Differences of one kind: a KV variant, a field (empty for whole records), a cause."""

    variant: str
    field: str
    cause: str
    count: int
    of_variant: int
    share_percent: float | None


@dataclass(frozen=True)
class Check:
    """One check of one data type in one phase, with its diagnosis groups."""

    phase: str
    type_id: str
    name: str
    status: str
    message: str
    details: tuple[str, ...]
    diagnosis: tuple[DiagnosisGroup, ...]
    metrics: Mapping[str, Any]  # complete, for summary.json and history only
    thresholds: Mapping[str, Any]

    @property
    def test_id(self) -> str:
        """What ``pytest -k`` selects and JUnit names the test case."""
        return f"{self.type_id}-{self.name}"


@dataclass(frozen=True)
class TypeRow:
    """One data type's checks in one phase."""

    type_id: str
    verdict: str
    checks: tuple[Check, ...]

    def cell(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass(frozen=True)
class PhaseReport:
    phase: str
    verdict: str
    columns: tuple[str, ...]  # the checks that ran, in the registry's order
    types: tuple[TypeRow, ...]


@dataclass(frozen=True)
class Plan:
    """One EXPLAINed query (``<type>:<query>``) in one mode."""

    type_id: str
    mode: str
    forced: bool
    status: str
    message: str
    execution_ms: float | None
    buffers: int
    scans: tuple[str, ...]


@dataclass(frozen=True)
class EndpointLoad:
    """Latency percentiles of one endpoint against the p95 budget."""

    name: str
    status: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    baseline_p95_ms: float | None
    budget_p95_ms: float


@dataclass(frozen=True)
class LoadPoint:
    """The whole run's latency at one moment (Locust's 5-second history)."""

    second: float
    p50_ms: float
    p95_ms: float
    rps: float
    users: int


@dataclass(frozen=True)
class Load:
    endpoints: tuple[EndpointLoad, ...]
    budget_p95_ms: float
    requests_per_minute: float | None
    users: int | None
    duration_s: float | None
    cpu_percent: float | None
    artifacts: tuple[str, ...]
    timeline: tuple[LoadPoint, ...]


@dataclass(frozen=True)
class Burst:
    """One type's Phase B fault burst and the reconcile that closed it."""

    type_id: str
    writes: int
    acknowledged: int
    journaled: int
    journaled_pg_missed: int
    journaled_kv_missed: int
    write_alert: str | None
    write_failure_percent: float
    reconcile_seconds: float | None
    replayed: int | None
    repaired: int | None
    differences_after: int | None
    divergence_before_percent: float | None
    divergence_after_percent: float | None
    why: str = BURST_WHY


@dataclass(frozen=True)
class ReconcileRow:
    """One type of one reconcile run: counts, and every key by what happened to it."""

    type_id: str
    differed: int
    repaired: tuple[str, ...]
    written_to_kv: tuple[str, ...]
    pg_only: tuple[str, ...]
    repair_failed: tuple[str, ...]
    still_different: tuple[str, ...]
    differences_after: int

    def kinds(self) -> list[tuple[str, tuple[str, ...]]]:
        """(what happened, keys) for every kind with keys, in reading order."""
        kinds = (
            ("repaired in Postgres", self.repaired),
            ("written to KV", self.written_to_kv),
            ("Postgres-only, left alone", self.pg_only),
            ("could not repair", self.repair_failed),
            ("still different after repair", self.still_different),
        )
        return [(title, keys) for title, keys in kinds if keys]


@dataclass(frozen=True)
class ReconcileReport:
    verdict: str
    closed: bool
    dry_run: bool
    seconds: float
    journal_applied: int
    journal_failed: tuple[str, ...]
    rows: tuple[ReconcileRow, ...]


@dataclass(frozen=True)
class ErrorGroup:
    """One cause and every test it broke (a store that went away breaks them all)."""

    message: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class MetricDelta:
    check: str
    metric: str
    before: float
    now: float


@dataclass(frozen=True)
class Changes:
    """Against the previous run of the same phase (from history.jsonl)."""

    run_id: str
    verdict: str
    new_failures: tuple[str, ...]  # test ids
    fixed: tuple[str, ...]
    deltas: tuple[MetricDelta, ...]
    more_deltas: int


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    verdict: str


@dataclass(frozen=True)
class Report:
    """Everything a report says, in the order a reader wants it."""

    run_id: str
    created_at: str
    phase: str | None
    verdict: str
    context: Mapping[str, Any]
    phases: tuple[PhaseReport, ...]
    errors: tuple[ErrorGroup, ...] = ()
    other_phase_skips: tuple[tuple[str, str], ...] = ()  # (test id, reason)
    plans: tuple[Plan, ...] = ()
    load: Load | None = None
    bursts: tuple[Burst, ...] = ()
    reconcile: ReconcileReport | None = None
    changes: Changes | None = None
    trend: tuple[TrendPoint, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_BY_VERDICT[self.verdict]

    def checks(self, status: str) -> list[Check]:
        return [c for p in self.phases for t in p.types for c in t.checks if c.status == status]

    @property
    def first_failure(self) -> Check | None:
        failed = self.checks("fail")
        return failed[0] if failed else None
