"""The load gate fails on what it guards against, with the endpoint named.

Real service, real Locust (in a subprocess), real stores: the ``now`` fixture
backfilled into a scratch database. A slow path, a failing endpoint, exact
percentiles at the budget's edge, the baseline at +25% and +10%.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from fixtures.migration import Migration
from phasegate.app.reads import KvReads, PgReads
from phasegate.backfill import backfill
from phasegate.endpoints import ENDPOINTS
from phasegate.gates.phase_c_load import p95_result
from phasegate.load import params, runner
from phasegate.load.stats import (
    EXIT_ERRORS,
    EXIT_P95,
    EXIT_PASS,
    EXIT_TOO_FEW,
    Budgets,
    LoadResult,
    baseline_regressions,
    endpoint_stats,
    judge,
)
from phasegate.queries import load_catalog

# Short proof runs of one mechanism: no throughput floor and no minimum sample (an
# endpoint of low weight may get no request in 7 s); the gate's own runs keep both.
QUIET = Budgets(p95_ms=200, error_percent=0.1, throughput_rpm=0, min_requests=0)


@pytest.fixture
def small(
    seeded_kv: redis.Redis,
    schema_pg: psycopg.Connection[tuple[object, ...]],
    scratch_kv_url: str,
    scratch_pg_url: str,
    tmp_path: Path,
) -> tuple[str, str, Path]:
    """The ``now`` fixture in KV and backfilled into Postgres; (kv_url, pg_url, params)."""
    backfill(seeded_kv, schema_pg)
    return (
        scratch_kv_url,
        scratch_pg_url,
        params.write(params.sample(schema_pg), tmp_path / "p.json"),
    )


def _run(
    small: tuple[str, str, Path], tmp_path: Path, extra: list[str], tags: list[str]
) -> runner.Run:
    kv_url, pg_url, params_file = small
    with runner.service(kv_url, pg_url, read="pg", write="pg", extra=extra, folder=tmp_path) as svc:
        return runner.run_locust(
            svc.url,
            params_file,
            users=20,
            run_time="12s",
            budgets=QUIET,
            folder=tmp_path,
            tags=tags,
            name="proof",
        )


def test_a_slow_endpoint_fails_the_p95_gate_by_name(
    small: tuple[str, str, Path], tmp_path: Path
) -> None:
    """An injected 250 ms on the thread endpoint: exit code 11, the thread p95 named."""
    run = _run(small, tmp_path, ["--inject-delay", "thread=250"], ["messages"])
    assert run.exit_code == EXIT_P95, run.output[-2000:]
    thread = run.result.endpoints["thread"]
    assert thread.p95 is not None
    assert thread.p95 >= 250
    assert any(r.startswith(f"thread: p95 {thread.p95} ms > 200 ms") for r in run.result.reasons)
    inbox = run.result.endpoints["inbox"].p95
    assert inbox is not None
    assert inbox < thread.p95  # the slow path is the one named, not the whole service
    assert run.html.is_file()


def test_an_endpoint_returning_errors_fails_the_error_gate(
    small: tuple[str, str, Path], tmp_path: Path
) -> None:
    """A fifth of board feed requests fail with HTTP 500: exit code 12, board_feed named."""
    run = _run(small, tmp_path, ["--inject-errors", "board_feed=20"], ["board"])
    assert run.exit_code == EXIT_ERRORS, run.output[-2000:]
    assert any(r.startswith("board_feed: ") for r in run.result.reasons), run.result.reasons
    feed = run.result.endpoints["board_feed"]
    assert feed.failures >= 1
    assert run.result.endpoints["board_by_category"].failures == 0


def test_a_clean_short_run_passes_and_times_every_endpoint(
    small: tuple[str, str, Path], tmp_path: Path
) -> None:
    """Without faults the same run passes, with a p95 for every endpoint of the profile."""
    run = _run(small, tmp_path, [], [])
    assert run.exit_code == EXIT_PASS, (run.result.reasons, run.output[-2000:])
    assert set(run.result.endpoints) >= {"inbox", "thread", "board_feed", "user_by_handle"}


def test_the_db_profile_times_the_catalogued_queries(
    small: tuple[str, str, Path], tmp_path: Path
) -> None:
    """load/locust_db.py runs the catalog's SQL under gevent and names requests by query."""
    _kv, pg_url, params_file = small
    run = runner.run_locust(
        pg_url,
        params_file,
        users=20,
        run_time="12s",
        budgets=QUIET,
        folder=tmp_path,
        profile="db",
        name="db",
    )
    assert run.exit_code == EXIT_PASS, (run.result.reasons, run.output[-2000:])
    assert {"inbox", "thread"} <= set(run.result.endpoints)
    assert set(run.result.endpoints) <= set(load_catalog())
    assert run.result.failures == 0


_BUCKETS = """
import json, sys
{patch}
import locust.stats
entry = locust.stats.StatsEntry(locust.stats.RequestStats(), "thread", "GET")
for t in json.loads(sys.argv[1]):
    entry.log(t, 100)
print(json.dumps(entry.response_times))
"""


def _locust_buckets(times: list[float], *, ours: bool = True) -> dict[int, int]:
    """Response-time buckets of a real Locust StatsEntry fed ``times``, in a subprocess
    (importing Locust patches the process with gevent), with the locustfiles' patch."""
    patch = "import phasegate.load.hooks" if ours else ""
    done = subprocess.run(
        [sys.executable, "-c", _BUCKETS.format(patch=patch), json.dumps(times)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(k): v for k, v in json.loads(done.stdout).items()}


def _result(times: list[float]) -> LoadResult:
    buckets = _locust_buckets(times)
    stats = endpoint_stats("thread", len(times), 0, buckets, max(times))
    return LoadResult(100, 60.0, {"thread": stats}, 10.0, False)


def test_p95_just_under_the_budget_passes_and_just_over_fails() -> None:
    """195 ms at p95 is under 200 (Locust's own rounding would say 200); 201 is over."""
    under = _result([10.0] * 94 + [195.2] * 6)
    over = _result([10.0] * 94 + [201.0] * 6)
    assert under.endpoints["thread"].p95 == 195
    assert over.endpoints["thread"].p95 == 201
    assert p95_result("thread", under, QUIET).passed
    failed = p95_result("thread", over, QUIET)
    assert not failed.passed
    assert failed.message.startswith("thread: p95 201 ms >= 200 ms")


def test_locust_default_buckets_round_195_to_200() -> None:
    """Why the locustfiles replace Locust's bucket function."""
    assert _locust_buckets([195.2], ours=False) == {200: 1}
    assert _locust_buckets([195.2]) == {195: 1}


@pytest.mark.parametrize(("growth", "fails"), [(25, True), (10, False)])
def test_the_baseline_comparison_fails_at_25_percent_and_passes_at_10(
    growth: int, fails: bool
) -> None:
    """p95 100 ms in the baseline; +25% (125 ms) fails the 20% tolerance, +10% passes."""
    now = _result([20.0] * 90 + [100.0 + growth] * 10)
    assert now.endpoints["thread"].p95 == 100 + growth
    problems = baseline_regressions(now, {"thread": 100.0}, 20.0)
    assert bool(problems) is fails
    if fails:
        assert problems[0].startswith("thread: p95 125 ms is +25% over the baseline 100 ms")


def test_reads_from_kv_answer_the_same_json_as_postgres(realistic: Migration) -> None:
    """On the 6mo fixture every read endpoint answers identically from both stores."""
    sample = params.sample(realistic.pg, 15)
    cases = [(name, p) for name in ENDPOINTS for p in sample[name]]
    assert {name for name, _ in cases} == set(ENDPOINTS)

    async def compare() -> list[str]:
        catalog = load_catalog()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            realistic.pg_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        )
        await pool.open()
        kv = aioredis.Redis.from_url(realistic.kv_url)
        pg_reads, kv_reads = PgReads(pool, catalog), KvReads(kv, catalog)
        differ = []
        for name, p in cases:
            from_pg = await pg_reads.read(ENDPOINTS[name], p)
            from_kv = await kv_reads.read(ENDPOINTS[name], p)
            if from_pg != from_kv:
                differ.append(f"{name} {p}: pg {from_pg[:1]} kv {from_kv[:1]}")
        await kv.aclose()
        await pool.close()
        return differ

    assert asyncio.run(compare()) == []
    assert len(cases) > 100


def test_serve_refuses_without_both_stores() -> None:
    """`phasegate serve` without --pg-url is a usage error (exit 2) that says so."""
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "serve", "--kv-url", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "serve needs --kv-url and --pg-url" in done.stderr


def test_too_few_requests_are_inconclusive_not_green() -> None:
    """Five fast requests to thread: its p95 is not judged (exit 15, inconclusive);
    slow ones still fail, however few."""
    few = _result([10.0] * 5)
    assert judge(few, Budgets(throughput_rpm=0))[0] == EXIT_TOO_FEW
    result = p95_result("thread", few, Budgets())
    assert result.status == "inconclusive"
    assert "only 5 requests, at least 10" in result.message
    slow = _result([250.0] * 5)
    assert p95_result("thread", slow, Budgets()).status == "fail"
    assert judge(_result([10.0] * 10), Budgets(throughput_rpm=0))[0] == EXIT_PASS


def test_the_cli_load_run_with_too_few_requests_exits_3(
    small: tuple[str, str, Path], tmp_path: Path
) -> None:
    """`phasegate load run` on a run too short to judge: exit 3 (inconclusive), saying why."""
    kv_url, pg_url, _params = small
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "phasegate.cli",
            "load",
            "run",
            "--kv-url",
            kv_url,
            "--pg-url",
            pg_url,
            "--load-users",
            "3",
            "--load-run-time",
            "7s",
            "--throughput-floor-rpm",
            "1",
            f"--reports-dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "too few requests" in done.stdout
