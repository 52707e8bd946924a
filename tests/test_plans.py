"""Plan checks fail on the defects they guard against, at the 6mo volume.

Each defect is seeded on the loaded sandbox database (index changes inside a
transaction that is rolled back), and the failure names the query, the index
and the key missing from its Index Cond.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from fixtures.migration import Migration
from phasegate.plans import MODES, Mode, check_plan
from phasegate.queries import Query, load_catalog
from phasegate.shapes import SchemaModel

CATALOG = load_catalog()
LEAST = "LEAST(from_user, to_user)"
Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def plan_sandbox(realistic: Migration) -> Conn:
    """The sandbox's 6mo database: library tests never plan on a target."""
    return realistic.pg


@pytest.fixture
def planned(plan_sandbox: Conn) -> Iterator[Conn]:
    """The loaded database, with whatever a test changes rolled back afterwards."""
    with plan_sandbox.transaction(force_rollback=True):
        yield plan_sandbox


def _problems(conn: Conn, query: Query, mode: Mode) -> list[str]:
    return check_plan(conn, query, SchemaModel.project(), mode, 10_000).problems


def _variant(name: str, old: str, new: str) -> Query:
    query = CATALOG[name]
    assert old in query.sql
    return dataclasses.replace(query, sql=query.sql.replace(old, new))


@pytest.mark.parametrize("mode", MODES)
def test_swapped_least_arguments_fail_the_plan(planned: Conn, mode: Mode) -> None:
    """LEAST(to_user, from_user): the thread index is not used with LEAST in its Index Cond."""
    query = _variant("thread", LEAST, "LEAST(to_user, from_user)")
    problems = _problems(planned, query, mode)
    assert problems, "the swapped thread query passed"
    assert any(
        f"lacks {LEAST}" in p or "does not use messages_thread_idx" in p for p in problems
    ), problems


@pytest.mark.parametrize("mode", MODES)
def test_the_or_of_pairs_thread_query_fails_the_plan(planned: Conn, mode: Mode) -> None:
    """The OR of (from, to) pairs is planned on other indexes, never the thread index."""
    query = _variant(
        "thread",
        "WHERE LEAST(from_user, to_user) = LEAST($1, $2)\n"
        "  AND GREATEST(from_user, to_user) = GREATEST($1, $2)",
        "WHERE (from_user = $1 AND to_user = $2) OR (from_user = $2 AND to_user = $1)",
    )
    problems = _problems(planned, query, mode)
    assert any(f"{mode} plan does not use messages_thread_idx" in p for p in problems), problems


def test_a_dropped_thread_index_fails_the_plan(planned: Conn) -> None:
    """Without the thread index the plan names it as unused."""
    planned.execute("DROP INDEX messages_thread_idx")
    problems = _problems(planned, CATALOG["thread"], "custom")
    assert any("does not use messages_thread_idx" in p for p in problems), problems


def test_a_thread_index_with_one_expression_fails_the_plan(planned: Conn) -> None:
    """An index on LEAST alone is used, but GREATEST is missing from its Index Cond."""
    planned.execute("DROP INDEX messages_thread_idx")
    planned.execute(f"CREATE INDEX messages_thread_idx ON messages ({LEAST}, created_at DESC)")
    planned.execute("ANALYZE messages")
    problems = _problems(planned, CATALOG["thread"], "generic")
    assert any("lacks GREATEST(from_user, to_user)" in p for p in problems), problems


@pytest.mark.parametrize("mode", MODES)
def test_an_app_index_named_otherwise_serves_the_catalog(planned: Conn, mode: Mode) -> None:
    """The app calls its thread index app_thread_pair: the read path maps onto it by
    keys, and the plan check judges that index."""
    planned.execute("ALTER INDEX messages_thread_idx RENAME TO app_thread_pair")
    check = check_plan(planned, CATALOG["thread"], SchemaModel.from_database(planned), mode, 10_000)
    assert check.problems == []
    assert check.index == "app_thread_pair"


def test_any_of_players_fails_the_plan(planned: Conn) -> None:
    """`$1 = ANY(players)` cannot use the GIN index, even with Seq Scans disabled."""
    query = _variant("games_by_player", "players @> ARRAY[$1]::text[]", "$1 = ANY(players)")
    problems = _problems(planned, query, "custom")
    assert any("does not use games_players_idx" in p for p in problems), problems


def test_a_seq_scan_on_a_large_table_fails(planned: Conn) -> None:
    """A filter no index serves reads all 50,000 messages: the Seq Scan is named with its size."""
    query = _variant("inbox", "WHERE to_user = $1", "WHERE text = $1")
    problems = _problems(planned, query, "custom")
    assert any("Seq Scan on messages (50,000 rows > 10,000)" in p for p in problems), problems


def test_every_catalogued_plan_passes_and_is_timed(plan_sandbox: Conn) -> None:
    """On the clean 6mo database every query passes in both modes, with a time and buffers."""
    schema = SchemaModel.from_database(plan_sandbox)
    for query in CATALOG.values():
        for mode in MODES:
            check = check_plan(plan_sandbox, query, schema, mode, 10_000)
            assert check.passed, (query.name, mode, check.problems)
            assert check.run.execution_ms is not None
            assert check.run.shared_hit + check.run.shared_read > 0 or not check.run.analyzed


def test_read_only_connections_explain_writes_without_running_them(plan_sandbox: Conn) -> None:
    """On a read-only connection mark_thread_read is planned, not executed; nothing is left."""
    before = plan_sandbox.execute("SELECT count(*) FROM messages WHERE NOT read").fetchone()
    plan_sandbox.read_only = True
    try:
        check = check_plan(
            plan_sandbox, CATALOG["mark_thread_read"], SchemaModel.project(), "custom", 0
        )
    finally:
        plan_sandbox.read_only = False
    assert check.passed, check.problems
    assert not check.run.analyzed
    assert check.run.execution_ms is None
    assert plan_sandbox.execute("SELECT count(*) FROM messages WHERE NOT read").fetchone() == before
    left = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'phasegate_plan_%'"
    assert plan_sandbox.execute(left).fetchone() == (0,)


def test_the_cli_prints_every_plan_against_a_given_database(plan_sandbox: Conn) -> None:
    """`phasegate shapes plans --pg-url` judges 28 plans, read only, and exits 0."""
    url = (
        f"postgresql://{plan_sandbox.info.user}@{plan_sandbox.info.host}:{plan_sandbox.info.port}/"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "phasegate.cli",
            "shapes",
            "plans",
            "--pg-url",
            url + plan_sandbox.info.dbname,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 28 plans, 0 failed" in done.stdout
