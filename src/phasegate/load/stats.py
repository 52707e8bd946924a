"""Load results: exact percentiles from 1 ms buckets, the budgets, and the verdict.

Locust rounds response times between 100 and 999 ms to 10 ms (195 becomes
200), so the locustfiles replace its bucket function with :func:`bucket_ms`
and percentiles here are exact nearest-rank over 1 ms buckets.

>>> percentile({10: 95, 250: 5}, 0.95)
10
>>> percentile({10: 94, 250: 6}, 0.95)
250
>>> percentile({"10": 90, "199": 5, "250": 5}, 0.95)
199
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Exit codes the locustfiles' quitting hook sets (distinct, so CI can tell why).
EXIT_PASS = 0
EXIT_NO_SAMPLES = 10
EXIT_P95 = 11
EXIT_ERRORS = 12
EXIT_THROUGHPUT = 13
EXIT_CPU_SATURATED = 14  # inconclusive: the load generator, not the service, was the limit
EXIT_TOO_FEW = 15  # inconclusive: an endpoint got too few requests to judge its p95
INCONCLUSIVE_CODES = (EXIT_NO_SAMPLES, EXIT_CPU_SATURATED, EXIT_TOO_FEW)
EXIT_MEANING = {
    EXIT_PASS: "pass",
    EXIT_NO_SAMPLES: "no samples: nothing was measured",
    EXIT_P95: "p95 over budget",
    EXIT_ERRORS: "error ratio over budget",
    EXIT_THROUGHPUT: "throughput under the floor",
    EXIT_CPU_SATURATED: "inconclusive: the load generator's CPU was saturated",
    EXIT_TOO_FEW: "inconclusive: an endpoint got too few requests to judge",
}


def bucket_ms(response_time: float) -> int:
    """Round a response time to whole milliseconds (Locust's key in response_times)."""
    return round(response_time)


def percentile(buckets: Mapping[int | str, int], q: float) -> int | None:
    """Nearest-rank percentile: the smallest time with at least ``ceil(q*n)`` samples at
    or below it."""
    counts = sorted((int(k), v) for k, v in buckets.items())
    total = sum(v for _, v in counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, count in counts:
        seen += count
        if seen >= rank:
            return value
    return counts[-1][0]


@dataclass(frozen=True)
class Budgets:
    p95_ms: float = 200.0
    error_percent: float = 0.1
    throughput_rpm: float = 1000.0
    baseline_tolerance_percent: float = 20.0
    min_requests: int = 10  # fewer requests to an endpoint: its p95 is not judged

    @classmethod
    def of(cls, settings: Any) -> Budgets:
        """The budgets of resolved :class:`~phasegate.settings.Settings`."""
        return cls(
            settings.p95_budget_ms,
            settings.error_budget_percent,
            settings.throughput_floor_rpm,
            settings.baseline_tolerance_percent,
            settings.load_min_requests,
        )


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    p50: int | None
    p95: int | None
    p99: int | None
    max_ms: float | None
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def error_percent(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    def p95_over(self, budget_ms: float) -> bool:
        """p95 must be *under* the budget: reaching it fails."""
        return self.p95 is not None and self.p95 >= budget_ms

    def errors_over(self, budget_percent: float) -> bool:
        return self.error_percent > budget_percent


@dataclass(frozen=True)
class LoadResult:
    """What one Locust run measured (written by the quitting hook as JSON)."""

    users: int
    duration_s: float
    endpoints: dict[str, EndpointStats]
    cpu_percent: float  # the load generator's CPU time over wall time (100 = one core)
    cpu_saturated: bool
    exit_code: int = 0
    reasons: list[str] = field(default_factory=list)
    # the whole run's latency every 5 s (Locust's history): second, p50_ms, p95_ms, rps, users
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.endpoints.values())

    @property
    def failures(self) -> int:
        return sum(e.failures for e in self.endpoints.values())

    @property
    def rpm(self) -> float:
        return 60.0 * self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        data = json.loads(text)
        data["endpoints"] = {k: EndpointStats(**v) for k, v in data["endpoints"].items()}
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> LoadResult:
        return cls.from_json(path.read_text())


def timeline(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Locust's stats history (one entry per 5 s, timestamps to the second) as points
    from the first entry on.

    >>> timeline([{"time": "2026-12-03T12:00:00Z", "response_time_percentile_0.5": ["", 4],
    ...   "response_time_percentile_0.95": ["", 9], "current_rps": ["", 50.0],
    ...   "user_count": ["", 10]}])
    [{'second': 0.0, 'p50_ms': 4.0, 'p95_ms': 9.0, 'rps': 50.0, 'users': 10}]
    """
    points: list[dict[str, float]] = []
    start: datetime | None = None
    for entry in history:
        at = datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))
        start = start or at
        points.append(
            {
                "second": (at - start).total_seconds(),
                "p50_ms": float(entry["response_time_percentile_0.5"][1] or 0),
                "p95_ms": float(entry["response_time_percentile_0.95"][1] or 0),
                "rps": round(float(entry["current_rps"][1] or 0), 1),
                "users": int(entry["user_count"][1] or 0),
            }
        )
    return points


def endpoint_stats(
    name: str, requests: int, failures: int, buckets: Mapping[Any, int], max_ms: float | None
) -> EndpointStats:
    return EndpointStats(
        name,
        requests,
        failures,
        percentile(buckets, 0.50),
        percentile(buckets, 0.95),
        percentile(buckets, 0.99),
        max_ms,
        {str(k): v for k, v in sorted(buckets.items(), key=lambda i: int(i[0]))},
    )


def judge(result: LoadResult, budgets: Budgets) -> tuple[int, list[str]]:
    """The exit code and the reasons, most fundamental first, each naming the endpoint."""
    if result.requests == 0:
        return EXIT_NO_SAMPLES, ["no requests were measured"]
    if result.cpu_saturated:
        return EXIT_CPU_SATURATED, [
            f"the load generator used {result.cpu_percent:.0f}% CPU: latencies measure it, "
            "not the service; use fewer users or more Locust workers (--processes)"
        ]
    slow = [
        f"{e.name}: p95 {e.p95} ms > {budgets.p95_ms:g} ms (p50 {e.p50}, p99 {e.p99})"
        for e in result.endpoints.values()
        if e.p95_over(budgets.p95_ms)
    ]
    if slow:
        return EXIT_P95, slow
    failing = [
        f"{e.name}: {e.failures} of {e.requests} failed ({e.error_percent:.2f}% > "
        f"{budgets.error_percent:g}%)"
        for e in result.endpoints.values()
        if e.errors_over(budgets.error_percent)
    ]
    if failing:
        return EXIT_ERRORS, failing
    if result.rpm < budgets.throughput_rpm:
        return EXIT_THROUGHPUT, [
            f"throughput {result.rpm:,.0f} requests/min < {budgets.throughput_rpm:,.0f}"
        ]
    few = [
        f"{e.name}: only {e.requests} requests (at least {budgets.min_requests} to judge)"
        for e in result.endpoints.values()
        if e.requests < budgets.min_requests
    ]
    if few:
        return EXIT_TOO_FEW, few
    return EXIT_PASS, []


def baseline_regressions(
    result: LoadResult, baseline: Mapping[str, float], tolerance_percent: float
) -> list[str]:
    """Endpoints whose p95 grew more than ``tolerance_percent`` over the baseline's.

    >>> r = LoadResult(1, 60, {"inbox": EndpointStats("inbox", 9, 0, 5, 125, 130, 130)}, 5, False)
    >>> baseline_regressions(r, {"inbox": 100}, 20)
    ['inbox: p95 125 ms is +25% over the baseline 100 ms (allowed +20%)']
    >>> baseline_regressions(r, {"inbox": 114}, 20)
    []
    """
    out = []
    for name, before in sorted(baseline.items()):
        now = result.endpoints.get(name)
        if now is None or now.p95 is None or before <= 0:
            continue
        growth = 100.0 * (now.p95 - before) / before
        if growth > tolerance_percent:
            out.append(
                f"{name}: p95 {now.p95} ms is +{growth:.0f}% over the baseline {before:g} ms "
                f"(allowed +{tolerance_percent:g}%)"
            )
    return out


def baseline_of(result: LoadResult) -> dict[str, float]:
    return {n: float(e.p95) for n, e in result.endpoints.items() if e.p95 is not None}
