"""Load checks as gate results, one per endpoint and check (phase C).

Endpoints are named as their catalogued query (reads) or ``send_message`` /
``board_post`` (writes), and reported as ``<type>:<name>``, so a read path's
shape, plan and load verdicts share one row of the report.
"""

from __future__ import annotations

from typing import Any

from phasegate.endpoints import ENDPOINT_TYPES
from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, Status
from phasegate.load.stats import Budgets, EndpointStats, LoadResult, baseline_regressions

TYPES = ENDPOINT_TYPES
CHECKS = PHASE_CHECKS["C"][4:7]  # load-p95, load-errors, load-baseline


def row(name: str) -> str:
    return f"{TYPES.get(name, 'load')}:{name}"


def _metrics(e: EndpointStats | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    base: dict[str, Any] = (
        {}
        if e is None
        else {
            "requests": e.requests,
            "failures": e.failures,
            "p50_ms": e.p50,
            "p95_ms": e.p95,
            "p99_ms": e.p99,
            "max_ms": e.max_ms,
        }
    )
    return base | (extra or {})


def _unmeasured(name: str, check: str, thresholds: dict[str, float]) -> CheckResult:
    return CheckResult(
        "C",
        row(name),
        check,
        "inconclusive",
        f"{name}: no requests measured, so nothing to judge",
        thresholds=thresholds,
    )


def _too_few(name: str, check: str, e: EndpointStats, budgets: Budgets) -> CheckResult:
    return CheckResult(
        "C",
        row(name),
        check,
        "inconclusive",
        f"{name}: only {e.requests} requests, at least {budgets.min_requests} are needed to "
        "judge it (a longer run or more users)",
        metrics=_metrics(e),
        thresholds={"min_requests": budgets.min_requests},
    )


def p95_result(name: str, result: LoadResult, budgets: Budgets) -> CheckResult:
    e = result.endpoints.get(name)
    if e is None or e.p95 is None:
        return _unmeasured(name, "load-p95", {"p95_ms": budgets.p95_ms})
    ok = not e.p95_over(budgets.p95_ms)
    message = (
        f"{name}: p95 {e.p95} ms {'<' if ok else '>='} {budgets.p95_ms:g} ms "
        f"(p50 {e.p50}, p99 {e.p99}, {e.requests:,} requests, {result.users} users)"
    )
    thresholds = {"p95_ms": budgets.p95_ms}
    return _judged(
        name, "load-p95", e, ok=ok, message=message, thresholds=thresholds, budgets=budgets
    )


def errors_result(name: str, result: LoadResult, budgets: Budgets) -> CheckResult:
    e = result.endpoints.get(name)
    if e is None or not e.requests:
        return _unmeasured(name, "load-errors", {"error_percent": budgets.error_percent})
    ok = not e.errors_over(budgets.error_percent)
    message = (
        f"{name}: {e.failures} of {e.requests:,} failed ({e.error_percent:.2f}%, "
        f"budget {budgets.error_percent:g}%)"
    )
    thresholds = {"error_percent": budgets.error_percent}
    return _judged(
        name, "load-errors", e, ok=ok, message=message, thresholds=thresholds, budgets=budgets
    )


def _judged(
    name: str,
    check: str,
    e: EndpointStats,
    *,
    ok: bool,
    message: str,
    thresholds: dict[str, float],
    budgets: Budgets,
) -> CheckResult:
    """Fail when over budget, however few the requests; else pass only on enough."""
    if ok and e.requests < budgets.min_requests:
        return _too_few(name, check, e, budgets)
    status: Status = "pass" if ok else "fail"
    return CheckResult("C", row(name), check, status, message, (), _metrics(e), thresholds)


def baseline_result(
    name: str, result: LoadResult, baseline: dict[str, float] | None, budgets: Budgets, where: str
) -> CheckResult:
    tolerance = budgets.baseline_tolerance_percent
    if baseline is None or name not in baseline:
        return CheckResult(
            "C",
            row(name),
            "load-baseline",
            "skip",
            f"no baseline p95 for {name} in {where}: record one with `phasegate load baseline` "
            "(reads from KV, before dual-write)",
        )
    problems = baseline_regressions(result, {name: baseline[name]}, tolerance)
    e = result.endpoints.get(name)
    return CheckResult(
        "C",
        row(name),
        "load-baseline",
        "fail" if problems else "pass",
        problems[0]
        if problems
        else f"{name}: p95 {e.p95 if e else '-'} ms within "
        f"+{tolerance:g}% of the baseline {baseline[name]:g} ms",
        metrics=_metrics(e, {"baseline_p95_ms": baseline[name]}),
        thresholds={"tolerance_percent": tolerance},
    )


def run_result(result: LoadResult, budgets: Budgets, artifacts: list[str]) -> CheckResult:
    """The whole run: throughput over the floor, and a load generator that kept up."""
    problems, unjudged = [], []
    if result.rpm < budgets.throughput_rpm and result.requests:
        problems.append(
            f"throughput {result.rpm:,.0f} requests/min < {budgets.throughput_rpm:,.0f}"
        )
    if result.cpu_saturated:
        unjudged.append(
            f"the load generator used {result.cpu_percent:.0f}% CPU, so latencies "
            "measure it, not the service"
        )
    if not result.requests:
        unjudged.append("no requests were measured")
    status: Status = "fail" if problems else "inconclusive" if unjudged else "pass"
    return CheckResult(
        "C",
        "load:total",
        "throughput",
        status,
        "; ".join(problems + unjudged)
        if problems or unjudged
        else f"{result.rpm:,.0f} requests/min from {result.users} users over "
        f"{result.duration_s:.0f} s; load generator CPU {result.cpu_percent:.0f}% of one core",
        metrics={
            "requests": result.requests,
            "failures": result.failures,
            "requests_per_minute": round(result.rpm, 1),
            "users": result.users,
            "duration_s": round(result.duration_s, 1),
            "cpu_percent": result.cpu_percent,
            "locust_exit_code": result.exit_code,
            "artifacts": artifacts,
            "timeline": result.timeline,
        },
        thresholds={"throughput_rpm": budgets.throughput_rpm},
    )
