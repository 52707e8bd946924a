"""The backfill's COPY text: Postgres stores from each line exactly the row psycopg's
``write_row`` of the same record stores, for drawn (messy) keyspaces of every type."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from fixtures.strategies import KEYSPACES
from phasegate import schema
from phasegate.mappings import MAPPINGS
from phasegate.parity.copytext import copy_line
from phasegate.servers import Sandbox, scratch_database
from phasegate.stores import connect_pg

PgConn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(scope="module")
def tables(sandbox: Sandbox) -> Iterator[PgConn]:
    """The schema's tables, empty, without foreign keys."""
    with scratch_database(sandbox.pg_url) as url, connect_pg(url) as pg:
        schema.apply(pg)
        pg.autocommit = True
        yield pg


def _stored(cur: psycopg.Cursor[tuple[object, ...]], table: sql.Composable) -> list[str]:
    """The table's rows as Postgres prints them, sorted."""
    cur.execute(sql.SQL("SELECT t::text FROM {} AS t").format(table))
    return sorted(str(row[0]) for row in cur.fetchall())


@pytest.mark.parametrize("type_id", sorted(KEYSPACES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_copy_line_stores_the_row_write_row_stores(
    tables: PgConn, type_id: str, data: st.DataObject
) -> None:
    mapping = MAPPINGS[type_id]
    records = list(mapping.decode(data.draw(KEYSPACES[type_id])).records.values())
    table = sql.Identifier(mapping.table)
    cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)
    with tables.transaction(force_rollback=True), tables.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(table))
        with cur.copy(query) as copy:
            for record in records:
                copy.write_row(mapping.to_row(record))
        theirs = _stored(cur, table)
        cur.execute(sql.SQL("TRUNCATE {}").format(table))
        with cur.copy(query) as copy:
            copy.write("".join(copy_line(mapping, r) for r in records).encode())
        mine = _stored(cur, table)
    assert mine == theirs
