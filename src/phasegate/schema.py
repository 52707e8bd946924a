"""The Postgres target schema: tables and indexes for the nine data types.

``apply`` is idempotent (every statement is ``IF NOT EXISTS``) and runs in one
transaction. Foreign keys to ``users(handle)`` are a separate, later step.
"""

from __future__ import annotations

from importlib import resources

import psycopg

SCHEMA_FILE = "schema.sql"


def schema_sql() -> str:
    """The DDL text shipped with the package."""
    return resources.files("phasegate").joinpath("sql", SCHEMA_FILE).read_text()


def apply(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create every table and index that does not exist yet, atomically."""
    with conn.transaction():
        conn.execute(schema_sql().encode())


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
