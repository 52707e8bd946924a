"""Static shape checks: each rule's titled cases, the catalog, schema sources, --app-src."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from phasegate.errors import UsageError
from phasegate.queries import load_catalog
from phasegate.schema import schema_sql
from phasegate.shapes import SchemaModel, Statement, check_all, check_statement, from_catalog
from phasegate.shapes.extract import app_statements, js_templates, python_sql
from phasegate.shapes.sqltext import parse_keys, split_statements

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


def load_cases() -> list[Case]:
    """Titled cases from tests/shape_cases/*.sql (``-- title:``, ``-- expect:``, SQL)."""
    cases = []
    for path in sorted(CASES_DIR.glob("*.sql")):
        for block in re.split(r"\n(?=-- title:)", path.read_text())[1:]:
            head = dict(re.findall(r"^-- (title|expect|index): *(.*)$", block, re.M))
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
            )
            cases.append(Case(path.stem, head["title"], expect, statement))
    return cases


CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}: {c.title}" for c in CASES])
def test_each_titled_case_raises_exactly_its_rules(case: Case) -> None:
    """The rules a case expects fire, and no others."""
    findings = check_statement(case.statement, PROJECT)
    assert {f.rule for f in findings} == case.expect, "\n".join(map(str, findings))


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


def test_app_src_finds_every_statement_with_file_and_line() -> None:
    """Python execute strings, .sql statements and JS/TS templates, each with its line."""
    origins = [s.origin for s in app_statements(SAMPLE_APP)]
    assert origins == [
        "sample_app/api/games.ts:6",
        "sample_app/api/games.ts:10",
        "sample_app/api/messages.js:7",
        "sample_app/api/messages.js:17",
        "sample_app/api/messages.js:24",
        "sample_app/db/queries.py:3",
        "sample_app/db/queries.py:13",
        "sample_app/sql/reports.sql:2",
        "sample_app/sql/reports.sql:4",
        "sample_app/sql/reports.sql:6",
    ]


def test_app_src_findings_on_the_sample_app() -> None:
    """The sample app's four bad queries are found, each at its file and line."""
    findings = check_all(app_statements(SAMPLE_APP), PROJECT)
    assert sorted((f.statement.origin, f.rule) for f in findings) == [
        ("sample_app/api/games.ts:6", "any-array"),
        ("sample_app/api/messages.js:17", "or-pairs"),
        ("sample_app/db/queries.py:13", "order-by"),
        ("sample_app/sql/reports.sql:6", "unknown-name"),
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
    assert "10 statements checked" in done.stdout


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
