"""The Postgres target schema: tables and indexes for the nine data types.

``apply`` is idempotent (every statement is ``IF NOT EXISTS``) and runs in one
transaction. Foreign keys to ``users(handle)`` are a separate, later step.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

import psycopg

from phasegate.errors import ServerError
from phasegate.mappings import MAPPINGS

SCHEMA_FILE = "schema.sql"
# Column kind (mappings) -> Postgres type name (information_schema udt_name).
UDT = {
    "text": "text",
    "int": "int4",
    "bool": "bool",
    "ts": "timestamptz",
    "date": "date",
    "json": "jsonb",
    "text[]": "_text",
    "date[]": "_date",
}


def schema_sql() -> str:
    """The DDL: the package's schema, then the DDL of any mapping that brings its own."""
    shipped = resources.files("phasegate").joinpath("sql", SCHEMA_FILE).read_text()
    extra = [m.ddl.strip() for m in MAPPINGS.values() if m.ddl.strip()]
    return "\n\n".join([shipped.rstrip(), *extra]) + "\n" if extra else shipped


def apply(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create every table and index that does not exist yet, atomically, then
    check that the tables (new or already there) are the ones the mappings need."""
    with conn.transaction():
        conn.execute(schema_sql().encode())
    problems = verify(conn)
    if problems:
        raise ServerError(
            "the target schema differs from the mappings:\n  " + "\n  ".join(problems),
            hint="an older or hand-made table is in the way: migrate or drop it, then apply",
        )


def require(conn: psycopg.Connection[tuple[object, ...]], types: Iterable[str]) -> None:
    """Raise, naming every table, unless the tables of ``types`` are there and match
    their mappings (a load into a database without the schema stops here, clearly)."""
    tables = {MAPPINGS[t].table for t in types}
    missing = sorted(
        table
        for table in tables
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() in (None, (None,))
    )
    if not conn.autocommit:
        conn.rollback()
    if missing:
        raise ServerError(
            f"the target Postgres has no table {', '.join(missing)}: "
            "the schema has not been applied to this database",
            hint="apply it first: phasegate schema apply --pg-url URL (idempotent)",
        )
    problems = [p for p in verify(conn) if p.split(":")[0].split(".")[0] in tables]
    if not conn.autocommit:
        conn.rollback()
    if problems:
        raise ServerError(
            "the target schema differs from the mappings:\n  " + "\n  ".join(problems),
            hint="an older or hand-made table is in the way: migrate or drop it, then apply",
        )


def verify(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Differences between the live tables and the mappings' columns and keys."""
    problems = []
    for mapping in MAPPINGS.values():
        live: dict[str, str] = {
            str(name): str(udt)
            for name, udt in conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (mapping.table,),
            ).fetchall()
        }
        for column in mapping.columns:
            found = live.get(column.name)
            if found is None:
                problems.append(f"{mapping.table}.{column.name}: missing")
            elif found != UDT[column.kind]:
                problems.append(
                    f"{mapping.table}.{column.name}: {found}, expected {UDT[column.kind]}"
                )
        keys = {
            str(name)
            for (name,) in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indisprimary "
                "AND i.indrelid = to_regclass(%s)",
                (mapping.table,),
            ).fetchall()
        }
        if live and keys != set(mapping.key_columns):
            problems.append(
                f"{mapping.table}: primary key ({', '.join(sorted(keys)) or 'none'}), "
                f"expected ({', '.join(mapping.key_columns)})"
            )
    return problems


def catalog_snapshot(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Tables, columns and index definitions of the public schema, for comparison."""
    columns = conn.execute(
        """SELECT table_name, column_name, data_type, udt_name
           FROM information_schema.columns WHERE table_schema = 'public'
           ORDER BY table_name, ordinal_position"""
    ).fetchall()
    indexes = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' ORDER BY indexname"
    ).fetchall()
    return [*columns, *indexes]
