"""What the locustfiles share: exact 1 ms buckets, the budget arguments, parameters,
and the ``quitting`` hook that judges the run and sets the exit code.

Imported by the locustfiles (after ``locust``, so gevent has patched first).
"""

from __future__ import annotations

import json
import random
import resource
import time
from pathlib import Path
from typing import Any

import locust.stats
from locust.env import Environment

from phasegate.load.stats import (
    Budgets,
    LoadResult,
    bucket_ms,
    endpoint_stats,
    judge,
    timeline,
)

locust.stats.bucket_response_time = bucket_ms  # 195 ms stays 195, not 200

_started: dict[str, float] = {}


def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("phasegate gate")
    group.add_argument(
        "--params-file",
        env_var="PHASEGATE_LOAD_PARAMS",
        default="",
        help="JSON of real request parameters (phasegate.load.params)",
    )
    group.add_argument(
        "--p95-budget-ms", type=float, env_var="PHASEGATE_P95_BUDGET_MS", default=200.0
    )
    group.add_argument(
        "--error-budget-percent", type=float, env_var="PHASEGATE_ERROR_BUDGET_PERCENT", default=0.1
    )
    group.add_argument(
        "--throughput-floor-rpm",
        type=float,
        env_var="PHASEGATE_THROUGHPUT_FLOOR_RPM",
        default=1000.0,
    )
    group.add_argument(
        "--load-min-requests", type=int, env_var="PHASEGATE_LOAD_MIN_REQUESTS", default=10
    )
    group.add_argument(
        "--result-file",
        env_var="PHASEGATE_LOAD_RESULT",
        default="",
        help="where the quitting hook writes its JSON result",
    )


def load_params(environment: Environment) -> dict[str, list[dict[str, Any]]]:
    path = environment.parsed_options.params_file if environment.parsed_options else ""
    if not path:
        raise SystemExit("phasegate: --params-file (PHASEGATE_LOAD_PARAMS) is required")
    return json.loads(Path(path).read_text())  # type: ignore[no-any-return]


def pick(params: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any] | None:
    """A random real parameter set of an endpoint (see :mod:`phasegate.load.params`);
    None when the data has none (the task then sends nothing)."""
    sets = params.get(name)
    return random.choice(sets) if sets else None


def on_test_start() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _started.update(wall=time.monotonic(), cpu=usage.ru_utime + usage.ru_stime)


def on_quitting(environment: Environment) -> None:
    """Judge the run from Locust's own stats; write the result; set the exit code."""
    options = environment.parsed_options
    assert options is not None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - _started.get("wall", time.monotonic())
    cpu = 100.0 * (usage.ru_utime + usage.ru_stime - _started.get("cpu", 0.0)) / max(wall, 1e-6)
    stats = environment.stats
    endpoints = {
        e.name: endpoint_stats(
            e.name,
            e.num_requests,
            e.num_failures,
            e.response_times,
            e.max_response_time if e.num_requests else None,
        )
        for e in stats.entries.values()
    }
    duration = (stats.total.last_request_timestamp or 0) - (stats.total.start_time or 0)
    runner = environment.runner
    saturated = bool(getattr(runner, "cpu_warning_emitted", False)) or cpu >= 90.0
    result = LoadResult(
        users=int(getattr(options, "num_users", 0) or (runner.user_count if runner else 0)),
        duration_s=max(duration, 0.0),
        endpoints=endpoints,
        cpu_percent=round(cpu, 1),
        cpu_saturated=saturated,
        timeline=timeline(list(getattr(stats, "history", []))),
    )
    budgets = Budgets(
        options.p95_budget_ms,
        options.error_budget_percent,
        options.throughput_floor_rpm,
        min_requests=options.load_min_requests,
    )
    code, reasons = judge(result, budgets)
    result = LoadResult(**{**result.__dict__, "exit_code": code, "reasons": reasons})
    if options.result_file:
        Path(options.result_file).write_text(result.to_json())
    environment.process_exit_code = code
