"""Load gate (phase C): Locust headless in a subprocess, 100 users, judged per endpoint.

Ids ``<type>-<endpoint>-<check>``: ``pytest load -k messages``. Checks: p95 under the
budget, errors under the budget, p95 within the tolerance of the baseline when
``--baseline-file`` exists, and the run's throughput over the floor with a load
generator that kept up. Locust's HTML report goes into the run's report folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phasegate.endpoints import LOADED_READS, LOADED_WRITES
from phasegate.gates import phase_c_load as gate
from phasegate.gates.result import CheckResult
from phasegate.load.runner import Run, read_baseline
from phasegate.load.stats import Budgets
from phasegate.plugin import conclude
from phasegate.settings import Settings

pytestmark = pytest.mark.phase("C")

NAMES = [*LOADED_READS, *LOADED_WRITES]


CHECKS = ("p95", "errors", "baseline")
CASES = [(n, c) for n in NAMES for c in CHECKS]


@pytest.mark.parametrize(
    ("name", "check"), CASES, ids=[f"{gate.TYPES[n]}-{n}-{c}" for n, c in CASES]
)
def test_endpoint(
    name: str,
    check: str,
    load_run: Run,
    phasegate_settings: Settings,
    record_check: Callable[[CheckResult], None],
) -> None:
    """The endpoint's p95 (exact, 1 ms buckets) is under the budget, its errors under
    theirs, and, when a baseline taken before dual-write exists, its p95 grew at most
    the tolerance."""
    s = phasegate_settings
    if name in LOADED_WRITES and (s.pg_url or s.load_host):
        pytest.skip("write endpoints are not loaded against given servers")
    budgets = Budgets.of(s)
    if check == "p95":
        result = gate.p95_result(name, load_run.result, budgets)
    elif check == "errors":
        result = gate.errors_result(name, load_run.result, budgets)
    else:
        baseline = read_baseline(Path(s.baseline_file))
        result = gate.baseline_result(name, load_run.result, baseline, budgets, s.baseline_file)
    record_check(result)
    conclude(result)


def test_throughput_and_load_generator(
    load_run: Run, phasegate_settings: Settings, record_check: Callable[[CheckResult], None]
) -> None:
    """The run made over 1,000 requests/min, and the load generator was not the bottleneck."""
    result = gate.run_result(load_run.result, Budgets.of(phasegate_settings), [str(load_run.html)])
    record_check(result)
    assert result.passed, result.explain()
