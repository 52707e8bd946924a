"""The target schema: matches the mappings, applies idempotently, stores records exactly."""

from __future__ import annotations

import psycopg
import pytest
import redis
from psycopg import sql

from phasegate import schema
from phasegate.cli import main
from phasegate.inventory import take_inventory
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.schema import UDT
from phasegate.stores import connect_pg


def test_schema_columns_match_the_mappings(
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """Every mapping's columns exist with the right type, in order, and nothing else."""
    for mapping in MAPPINGS.values():
        rows = schema_pg.execute(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (mapping.table,),
        ).fetchall()
        assert rows == [(c.name, UDT[c.kind]) for c in mapping.columns], mapping.type_id
        keys = schema_pg.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            (mapping.table,),
        ).fetchall()
        assert {k for (k,) in keys} == set(mapping.key_columns), mapping.type_id


def test_applying_twice_changes_nothing(
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """Idempotent: the catalog is identical after a second apply."""
    before = schema.catalog_snapshot(schema_pg)
    schema.apply(schema_pg)
    assert schema.catalog_snapshot(schema_pg) == before
    names = {row[1] for row in before if len(row) == 3}
    assert {
        "messages_thread_idx",
        "messages_inbox_idx",
        "messages_unread_idx",
        "games_players_idx",
        "board_entries_category_idx",
        "invites_created_by_idx",
        "connections_to_status_idx",
    } <= names


def test_thread_index_keys_are_least_then_greatest(
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """The thread index is on LEAST, GREATEST, created_at DESC, in that order."""
    (definition,) = schema_pg.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_thread_idx'"
    ).fetchone() or ("",)
    assert "(LEAST(from_user, to_user), GREATEST(from_user, to_user), created_at DESC)" in str(
        definition
    )
    (unread,) = schema_pg.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_unread_idx'"
    ).fetchone() or ("",)
    assert "WHERE (NOT read)" in str(unread)


@pytest.mark.parametrize("type_id", TYPE_IDS)
def test_seeded_records_round_trip_through_postgres(
    type_id: str,
    seeded_kv: redis.Redis,
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """Decoded records written to the real table read back identical, field by field."""
    mapping = MAPPINGS[type_id]
    decoded = take_inventory(seeded_kv, [type_id]).types[type_id].decoded
    assert decoded.records, f"the now fixture has no {type_id}"
    columns = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    table = sql.Identifier(mapping.table)
    with schema_pg.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
            for record in decoded.records.values():
                copy.write_row(mapping.to_row(record))
        rows = cur.execute(sql.SQL("SELECT {} FROM {}").format(columns, table)).fetchall()
    back = {mapping.record_key(r): r for r in map(mapping.from_row, rows)}
    assert len(back) == len(decoded.records)
    for key, record in decoded.records.items():
        assert back[key] == record, f"{type_id} {key} changed in Postgres"


@pytest.mark.parametrize(
    ("ddl", "named"),
    [
        (
            "CREATE TABLE users (handle int)",
            ["users.handle: int4, expected text", "users.metadata: missing"],
        ),
        (
            "CREATE TABLE friends (handle text, friend text)",
            ["friends: primary key (none), expected (handle, friend)"],
        ),
    ],
    ids=["wrong-columns", "no-primary-key"],
)
def test_schema_apply_names_a_table_of_another_shape(
    capsys: pytest.CaptureFixture[str], scratch_pg_url: str, ddl: str, named: list[str]
) -> None:
    """A table in the way is named with what differs (exit 2), not silently kept."""
    with connect_pg(scratch_pg_url) as conn:
        conn.execute(ddl)
    assert main(["schema", "apply", "--pg-url", scratch_pg_url]) == 2
    err = capsys.readouterr().err
    for line in named:
        assert line in err
