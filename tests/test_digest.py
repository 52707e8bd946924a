"""Bucket digests: Postgres and Python write every row the same way, equal buckets are
never fetched, and a one-field change in any type is still found and named."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from fixtures.migration import make
from fixtures.strategies import KEYSPACES
from phasegate import schema
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import Column, Mapping
from phasegate.parity.buckets import record_bucket
from phasegate.parity.compare import compare
from phasegate.parity.diff import show_key
from phasegate.parity.digest import DIGEST_BUCKETS, bucket_sql, record_text, row_text_sql
from phasegate.servers import Sandbox, scratch_database
from phasegate.stores import connect_pg
from tests.test_compare import SCOPE


@pytest.fixture(scope="module")
def tables(sandbox: Sandbox) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The schema's tables, empty, without foreign keys."""
    with scratch_database(sandbox.pg_url) as url, connect_pg(url) as pg:
        schema.apply(pg)
        pg.autocommit = True
        yield pg


@pytest.mark.parametrize("type_id", sorted(KEYSPACES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_postgres_writes_each_row_and_its_bucket_as_python_does(
    tables: psycopg.Connection[tuple[object, ...]], type_id: str, data: st.DataObject
) -> None:
    """Every decoded record of drawn (messy) keyspaces: written as the backfill writes
    it, Postgres's canonical text and bucket of the row equal Python's."""
    mapping = MAPPINGS[type_id]
    records = list(mapping.decode(data.draw(KEYSPACES[type_id])).records.values())
    table = sql.Identifier(mapping.table)
    cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    bucket = bucket_sql(mapping, DIGEST_BUCKETS)
    assert bucket is not None
    with tables.transaction(force_rollback=True), tables.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(table))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)) as copy:
            for record in records:
                copy.write_row(mapping.to_row(record))
        cur.execute(sql.SQL("SELECT {}, {} FROM {}").format(row_text_sql(mapping), bucket, table))
        theirs = sorted((str(text), int(str(b))) for text, b in cur.fetchall())
    mine = sorted(
        (text, record_bucket(mapping, r, DIGEST_BUCKETS))
        for r in records
        if (text := record_text(mapping, r)) is not None
    )
    assert len(mine) == len(records), "a canonical record with no canonical text"
    assert mine == theirs


def test_a_clean_migration_is_judged_by_its_digests_alone(sandbox: Sandbox) -> None:
    """No bucket is fetched but those of the allowed Postgres-only rows (stub users),
    and every record still counts as compared, in every subset."""
    for m in make(sandbox):
        result = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=3)
        for type_id in TYPE_IDS:
            c = result.types[type_id]
            assert c.digest_buckets > 0, type_id
            assert c.fetched_buckets == (c.pg_only_allowed if type_id == "users" else 0), type_id
            assert c.pg_rows == c.kv_records + c.pg_only_allowed, type_id
            assert c.compared["full"] == c.kv_records, type_id
            assert 0 < c.compared["sample"] < c.kv_records, type_id
            assert c.differences["full"].count == 0, c.differences["full"].examples


_TAMPER = {
    "text": "coalesce({c}, '') || ' (tampered)'",
    "int": "coalesce({c}, 0) + 1",
    "bool": "NOT coalesce({c}, false)",
    "ts": "coalesce({c}, now()) + interval '1 second'",
    "date": "coalesce({c}, current_date) + 1",
    "json": "'{{\"tampered\": true}}'::jsonb",
    "text[]": "coalesce({c}, '{{}}') || 'tampered'::text",
    "date[]": "coalesce({c}, '{{}}') || current_date",
}


def _field(mapping: Mapping) -> Column:
    """The first column that is neither key nor handle (else the last key column)."""
    free = [c for c in mapping.columns if not c.key and not c.handle]
    return free[0] if free else [c for c in mapping.columns if c.key][-1]


def test_a_one_field_change_in_each_type_is_found_through_its_bucket(sandbox: Sandbox) -> None:
    """One row of every type changed in one field: that bucket alone is fetched, and the
    difference names the type, the key and the field (a key field: missing and extra)."""
    for m in make(sandbox):
        before = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=3).types
        changed = {}
        m.pg.execute("SET session_replication_role = replica")  # no FK triggers
        for type_id in TYPE_IDS:
            mapping = MAPPINGS[type_id]
            column = _field(mapping)
            keys = sql.SQL(", ").join(map(sql.Identifier, mapping.key_columns))
            table = sql.Identifier(mapping.table)
            real = "metadata->>'stub' IS NULL" if type_id == "users" else "true"  # not a stub
            row = m.pg.execute(
                sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1").format(
                    keys, table, sql.SQL(real), keys
                )
            ).fetchone()
            assert row is not None, type_id
            match = sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(k)) for k in mapping.key_columns
            )
            change = sql.SQL(_TAMPER[column.kind]).format(c=sql.Identifier(column.name))
            m.pg.execute(
                sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(
                    table, sql.Identifier(column.name), change, match
                ),
                row,
            )
            changed[type_id] = (show_key(tuple(row)), column)
        m.pg.commit()
        after = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=3).types
        for type_id, (key, column) in changed.items():
            c = after[type_id]
            assert 1 <= c.fetched_buckets - before[type_id].fetched_buckets <= 2, type_id
            shown = "\n".join(c.differences["full"].examples)
            assert f"{type_id} {key} (" in shown, (type_id, shown)
            if column.key:
                assert c.missing.count == 1, (type_id, shown)
                assert c.extra.count == 1, (type_id, shown)
            else:
                assert c.differences["full"].count == 1, (type_id, shown)
                assert f"field {column.name}:" in shown, (type_id, shown)
