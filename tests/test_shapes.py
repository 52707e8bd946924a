"""Static shape checks: each rule's titled cases, the catalog, schema sources, --app-src."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from phasegate.errors import UsageError
from phasegate.gates.phase_c_queries import fk_index_result
from phasegate.queries import load_catalog
from phasegate.schema import schema_sql
from phasegate.shapes import (
    SchemaModel,
    Statement,
    check_all,
    check_schema,
    check_statement,
    from_catalog,
)
from phasegate.shapes.extract import app_statements, extract, js_templates, python_sql
from phasegate.shapes.sqltext import parse_keys, parse_one, split_statements

CASES_DIR = Path(__file__).parent / "shape_cases"
SAMPLE_APP = Path(__file__).parent / "sample_app"
PROJECT = SchemaModel.project()
CATALOG = load_catalog()
THREAD_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_thread_idx\n"
    "    ON messages (LEAST(from_user, to_user), GREATEST(from_user, to_user), created_at DESC);"
)


@dataclass(frozen=True)
class Case:
    file: str
    title: str
    expect: frozenset[str]
    statement: Statement


SCHEMA_CASES = "fk_index.sql"  # cases that are whole schemas, not statements


def load_cases(name: str = "*.sql") -> list[Case]:
    """Titled cases from tests/shape_cases/*.sql (``-- title:``, ``-- expect:``,
    optionally ``-- index:`` and ``-- form:``, then the SQL)."""
    cases = []
    for path in sorted(CASES_DIR.glob(name)):
        if name == "*.sql" and path.name == SCHEMA_CASES:
            continue
        for block in re.split(r"\n(?=-- title:)", path.read_text())[1:]:
            head = dict(re.findall(r"^-- (title|expect|index|form): *(.*)$", block, re.M))
            sql = "\n".join(x for x in block.splitlines() if not x.startswith("--"))
            index, _, keys = head.get("index", "").partition(" (")
            expect = (
                frozenset()
                if head["expect"] == "nothing"
                else frozenset(head["expect"].split(", "))
            )
            statement = Statement(
                sql.strip().rstrip(";"),
                f"{path.name}: {head['title']}",
                head["title"],
                expected_index=index or None,
                expected_keys=parse_keys(keys.removesuffix(")")),
                form=head.get("form", "catalog"),
            )
            cases.append(Case(path.stem, head["title"], expect, statement))
    return cases


CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}: {c.title}" for c in CASES])
def test_each_titled_case_raises_exactly_its_rules(case: Case) -> None:
    """The rules a case expects fire, and no others."""
    findings = check_statement(case.statement, PROJECT)
    assert {f.rule for f in findings} == case.expect, "\n".join(map(str, findings))


SCHEMAS = load_cases(SCHEMA_CASES)


@pytest.mark.parametrize("case", SCHEMAS, ids=[c.title for c in SCHEMAS])
def test_each_schema_case_raises_exactly_its_rules(case: Case) -> None:
    """fk-index cases are whole schemas: the rule fires exactly where a key lacks an index."""
    findings = check_schema(SchemaModel.from_ddl(case.statement.sql, case.title))
    assert {f.rule for f in findings} == case.expect, "\n".join(map(str, findings))


def test_the_project_schema_indexes_every_foreign_key_fk_add_makes() -> None:
    """Every handle column fk add references has an index (games.winner needed one)."""
    assert check_schema(PROJECT) == []
    assert len(PROJECT.foreign_keys) == 12


def test_every_catalogued_query_passes_on_the_project_schema() -> None:
    """The catalog is clean against the schema phasegate applies."""
    assert check_all(from_catalog(CATALOG.values()), PROJECT) == []


def test_the_live_catalog_reads_the_same_indexes_as_the_ddl(
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """Indexes from pg_indexes equal those parsed from schema.sql (keys, method, predicate)."""
    live = SchemaModel.from_database(schema_pg)
    shape = {(i.name, i.table, i.keys, i.method, i.predicate) for i in live.indexes}
    assert shape == {(i.name, i.table, i.keys, i.method, i.predicate) for i in PROJECT.indexes}

    def columns(model: SchemaModel) -> dict[str, set[tuple[str, bool]]]:
        return {n: {(c, t.is_array(c)) for c in t.columns} for n, t in model.tables.items()}

    assert columns(live) == columns(PROJECT)


def _thread_with(ddl_change: tuple[str, str], tmp_path: Path) -> list[str]:
    text = schema_sql().replace(*ddl_change)
    assert text != schema_sql()
    path = tmp_path / "schema.sql"
    path.write_text(text)
    thread = [s for s in from_catalog(CATALOG.values()) if s.name == "thread"]
    return [str(f) for f in check_all(thread, SchemaModel.from_file(path))]


def test_a_dropped_thread_index_is_named(tmp_path: Path) -> None:
    """Without messages_thread_idx in the DDL, the thread query's finding names it."""
    found = _thread_with((THREAD_INDEX, ""), tmp_path)
    assert len(found) == 1
    assert "[index] thread: the index messages_thread_idx it relies on is not in" in found[0]


def test_a_thread_index_with_one_expression_fails(tmp_path: Path) -> None:
    """An index on LEAST alone serves half the thread key: GREATEST is named as lacking."""
    one = (
        "CREATE INDEX IF NOT EXISTS messages_thread_idx\n"
        "    ON messages (LEAST(from_user, to_user), created_at DESC);"
    )
    found = _thread_with((THREAD_INDEX, one), tmp_path)
    assert any("it has no key GREATEST(from_user, to_user)" in f for f in found), found


def test_swapped_least_arguments_name_index_and_key() -> None:
    """LEAST(to_user, from_user) is reported against messages_thread_idx, key by key."""
    thread = CATALOG["thread"]
    swapped = Statement(
        thread.sql.replace("LEAST(from_user, to_user)", "LEAST(to_user, from_user)"),
        "thread.sql:9",
        "thread",
        "messages",
        "messages_thread_idx",
        parse_keys(thread.keys),
    )
    messages = [f.message for f in check_statement(swapped, PROJECT)]
    assert any(
        "compares LEAST(to_user, from_user), not the index key LEAST(from_user, to_user)" in m
        for m in messages
    ), messages


def test_findings_say_query_expected_index_and_rewrite() -> None:
    """An OR-of-pairs finding carries the origin, the index it wanted and the rewrite."""
    (finding,) = check_statement(
        Statement(
            "SELECT id FROM messages WHERE (from_user = $1 AND to_user = $2) "
            "OR (from_user = $2 AND to_user = $1)",
            "app.js:4",
            "app.js:4",
        ),
        PROJECT,
    )
    text = str(finding)
    assert text.startswith("app.js:4 [or-pairs]")
    assert "expected index: messages_thread_idx" in text
    assert "fix: LEAST(from_user, to_user) = LEAST($1, $2) AND GREATEST" in text


def test_app_src_finds_every_statement_with_file_line_and_form() -> None:
    """Every form the sample app uses is found, each statement with its line; the
    calls whose SQL is built at run time are listed, not dropped."""
    found = extract(SAMPLE_APP)
    assert [(s.origin, s.form) for s in found.statements] == SAMPLE_STATEMENTS
    assert [str(u) for u in found.unread] == [
        "sample_app/api/threads.js:63 [js-call] not read: db.query(): the SQL comes from "
        "'buildSearch', built at run time",
        "sample_app/db/queries.py:54 [py-call] not read: execute(): the SQL comes from "
        "'query.upper()', built at run time",
    ]
    assert found.summary() == (
        "32 statements found (js-call 10, js-tagged 5, py-call 4, py-text 2, sql-file 11); "
        "2 calls not read"
    )


SAMPLE_STATEMENTS = [
    ("sample_app/api/games.ts:6", "js-tagged"),
    ("sample_app/api/games.ts:10", "js-tagged"),
    ("sample_app/api/games.ts:16", "js-call"),
    ("sample_app/api/games.ts:21", "js-call"),
    ("sample_app/api/games.ts:26", "js-call"),
    ("sample_app/api/messages.js:7", "js-tagged"),
    ("sample_app/api/messages.js:17", "js-tagged"),
    ("sample_app/api/messages.js:24", "js-tagged"),
    ("sample_app/api/threads.js:9", "js-call"),
    ("sample_app/api/threads.js:20", "js-call"),
    ("sample_app/api/threads.js:32", "js-call"),
    ("sample_app/api/threads.js:40", "js-call"),
    ("sample_app/api/threads.js:45", "js-call"),
    ("sample_app/api/threads.js:54", "js-call"),
    ("sample_app/api/threads.js:58", "js-call"),
    ("sample_app/db/queries.py:3", "py-call"),
    ("sample_app/db/queries.py:13", "py-call"),
    ("sample_app/db/queries.py:26", "py-call"),
    ("sample_app/db/queries.py:35", "py-text"),
    ("sample_app/db/queries.py:43", "py-text"),
    ("sample_app/db/queries.py:48", "py-call"),
    ("sample_app/sql/migrations/002_fks.sql:2", "sql-file"),
    ("sample_app/sql/migrations/002_fks.sql:5", "sql-file"),
    ("sample_app/sql/migrations/002_fks.sql:9", "sql-file"),
    ("sample_app/sql/migrations/002_fks.sql:11", "sql-file"),
    ("sample_app/sql/migrations/002_fks.sql:13", "sql-file"),
    ("sample_app/sql/reports.sql:2", "sql-file"),
    ("sample_app/sql/reports.sql:4", "sql-file"),
    ("sample_app/sql/reports.sql:6", "sql-file"),
    ("sample_app/sql/rollback/002_down.sql:2", "sql-file"),
    ("sample_app/sql/rollback/002_down.sql:3", "sql-file"),
    ("sample_app/sql/rollback/002_down.sql:4", "sql-file"),
]


def test_app_src_findings_on_the_sample_app_exactly() -> None:
    """The sample app's defects are found, each at its file and line, and nothing
    else: the correct statements (information_schema, a partial index implied,
    an ORDER BY on an aggregate, upserts, guarded DDL) raise nothing."""
    findings = check_all(app_statements(SAMPLE_APP), PROJECT)
    assert sorted((f.statement.origin, f.rule) for f in findings) == [
        ("sample_app/api/games.ts:21", "in-pairs"),
        ("sample_app/api/games.ts:6", "any-array"),
        ("sample_app/api/messages.js:17", "or-pairs"),
        ("sample_app/api/threads.js:32", "idempotent-write"),
        ("sample_app/api/threads.js:54", "unknown-name"),
        ("sample_app/api/threads.js:9", "read-path-shape"),
        ("sample_app/db/queries.py:13", "order-by"),
        ("sample_app/db/queries.py:13", "read-path-shape"),
        ("sample_app/db/queries.py:43", "idempotent-write"),
        ("sample_app/sql/migrations/002_fks.sql:2", "rerunnable-ddl"),
        ("sample_app/sql/migrations/002_fks.sql:9", "rerunnable-ddl"),
        ("sample_app/sql/migrations/002_fks.sql:9", "rerunnable-ddl"),
        ("sample_app/sql/reports.sql:6", "unknown-name"),
        ("sample_app/sql/rollback/002_down.sql:4", "parse"),
    ]


def test_the_cli_reports_a_bad_js_template_with_file_and_line() -> None:
    """`phasegate shapes check --app-src` exits 1 naming messages.js:17 and the rewrite."""
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "shapes", "check", "--app-src", str(SAMPLE_APP)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "sample_app/api/messages.js:17 [or-pairs]" in done.stdout
    assert "rewrite: LEAST(from_user, to_user) = LEAST($1, $2)" in done.stdout
    assert "32 statements checked" in done.stdout
    assert "32 statements found (js-call 10, js-tagged 5" in done.stdout
    assert "threads.js:63 [js-call] not read" in done.stdout


def test_the_cli_passes_the_catalog_against_a_schema_file(tmp_path: Path) -> None:
    """`phasegate shapes check --schema FILE` reads a user's DDL; the catalog is clean."""
    path = tmp_path / "schema.sql"
    path.write_text(schema_sql())
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "shapes", "check", "--schema", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"14 statements checked against the {path}" in " ".join(done.stdout.split())


def test_a_schema_file_without_tables_is_a_usage_error(tmp_path: Path) -> None:
    """A --schema file with no CREATE TABLE is refused with the path named."""
    path = tmp_path / "empty.sql"
    path.write_text("-- nothing here\n")
    with pytest.raises(UsageError, match=r"empty\.sql defines no tables"):
        SchemaModel.from_file(path)


def test_js_placeholders_number_by_expression() -> None:
    """The same ${expr} gets the same $n; nested templates and braces are skipped whole."""
    source = "q = sql`SELECT ${a} , ${b({x: `${c}`})} , ${a}`; // sql`not this`"
    assert list(js_templates(source)) == [(1, "SELECT $1 , $2 , $1")]


def test_python_placeholders_and_constants() -> None:
    """%s and %(name)s become $n; a module constant passed to execute is followed."""
    source = 'Q = "SELECT 1 FROM t WHERE a = %(a)s"\ncur.execute(Q)\ncur.execute("x = %s")\n'
    assert list(python_sql(source)) == [(1, "SELECT 1 FROM t WHERE a = $1")]


def test_split_statements_keeps_quoted_semicolons_and_lines() -> None:
    """Statements split at top-level ; with their first line; quotes and $$ kept whole."""
    text = "SELECT ';';\n/* ; */\nSELECT $$a;b$$;\n\n-- c;\nSELECT 3"
    assert list(split_statements(text)) == [
        (1, "SELECT ';'"),
        (3, "SELECT $$a;b$$"),
        (6, "SELECT 3"),
    ]


@given(
    count=st.integers(min_value=1, max_value=40),
    separators=st.lists(st.sampled_from([",", ", ", ",\n", " ,", ",\t", "\n,"]), min_size=40),
    tail=st.sampled_from(["", "\n", " ", ")", "::int", ";"]),
)
def test_any_number_of_parameters_in_any_layout_parses_whole(
    count: int, separators: list[str], tail: str
) -> None:
    """$1 ... $n, however separated and whatever follows the last, reach sqlglot as
    exactly the parameters written (no $11 read as $1 and 1)."""
    params = [f"${i}" for i in range(1, count + 1)]
    listed = params[0] + "".join(sep + p for sep, p in zip(separators, params[1:], strict=False))
    sql = f"SELECT id FROM users WHERE handle IN ({listed})" + (tail if tail != ")" else "")
    if tail == "::int":
        sql = f"SELECT {listed}::int FROM users"
    tree = parse_one(sql.rstrip(";"))
    found = sorted(int(p.this.this) for p in tree.find_all(exp.Parameter) if p.this)
    assert found == list(range(1, count + 1))


def test_the_catalog_maps_onto_an_app_schema_with_other_index_names(tmp_path: Path) -> None:
    """Every index renamed: the catalog still passes, each read path matched by keys;
    the finding for a missing one names the keys it looked for."""
    renamed = re.sub(r"(INDEX IF NOT EXISTS )(\w+)", r"\1app_\2", schema_sql())
    schema = SchemaModel.from_ddl(renamed, "app schema")
    assert not any(i.name.startswith("messages_") and "pkey" not in i.name for i in schema.indexes)
    assert check_all(from_catalog(CATALOG.values()), schema) == []
    thread = schema.find("messages_thread_idx", parse_keys(CATALOG["thread"].keys))
    assert thread is not None
    assert thread.name == "app_messages_thread_idx"
    without = SchemaModel.from_ddl(
        renamed.replace("app_messages_thread_idx", "x_idx").replace(
            "(LEAST(from_user, to_user), GREATEST(from_user, to_user), created_at DESC)",
            "(created_at DESC)",
        ),
        "app schema",
    )
    (finding,) = check_all(from_catalog([CATALOG["thread"]]), without)
    assert "no index has the keys (LEAST(from_user, to_user), GREATEST(from_user, to_user))" in (
        finding.message
    )


def test_one_thousand_statements_check_quickly() -> None:
    """Not a timed gate (benchmarks/shapes_check.py measures): a thousand statements run."""
    statements = list(app_statements(SAMPLE_APP)) * 32
    assert len(check_all(statements[:1000], PROJECT)) > 0


def test_the_fk_index_gate_check_fails_without_the_index_and_passes_with_it() -> None:
    """games.winner without games_winner_idx: the gate check fails naming the key and fix."""
    without = SchemaModel.from_ddl(
        schema_sql().replace("CREATE INDEX IF NOT EXISTS games_winner_idx ON games (winner);", "")
    )
    without.foreign_keys.extend(PROJECT.foreign_keys)
    failed = fk_index_result("games", "games", without)
    assert failed.status == "fail"
    assert "games (winner) REFERENCES users has no index on (winner)" in failed.explain()
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS games_winner_idx" in failed.explain()
    assert fk_index_result("games", "games", PROJECT).status == "pass"
