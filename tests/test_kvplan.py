"""The writer's KV shapes decode back to the records it wrote.

Seeded KV (every legacy shape) is backfilled into Postgres; then KV is emptied
and every Postgres row is written back through :mod:`phasegate.dualwrite.kvplan`,
the way the dual-writer and reconcile write KV. The full comparison pass (the
Phase A engine, the mappings' own decoders) must find the two stores equal.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import redis
from psycopg import sql

from phasegate.backfill import backfill
from phasegate.dualwrite import kvexec, kvplan
from phasegate.dualwrite.change import Change
from phasegate.mappings import MAPPINGS
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList

Conn = psycopg.Connection[tuple[object, ...]]


def pg_records(pg: Conn, type_id: str) -> list[dict[str, object]]:
    mapping = MAPPINGS[type_id]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in mapping.column_names),
        sql.Identifier(mapping.table),
    )
    return [mapping.from_row(row) for row in pg.execute(query)]


def test_every_row_written_back_through_kvplan_decodes_to_itself(
    seeded_kv: redis.Redis, schema_pg: Conn
) -> None:
    backfill(seeded_kv, schema_pg)
    # Written as msg:{id}, every message lives in scheme 2 only.
    schema_pg.execute("UPDATE messages SET metadata = jsonb_set(metadata, '{kv_schemes}', '[2]')")
    seeded_kv.flushdb()
    change = Change("rewrite")
    for type_id in MAPPINGS:
        for record in pg_records(schema_pg, type_id):
            change.put(type_id, record)
    kvexec.apply(seeded_kv, kvplan.commands(change))
    scope = Scope(7, 100.0, datetime.now(UTC), AllowList())
    result = compare(seeded_kv, schema_pg, MAPPINGS, scope)
    problems = {
        t: c.differences["full"].shown()
        for t, c in result.types.items()
        if c.differences["full"].count
    }
    assert problems == {}
    assert all(c.kv_records == c.pg_rows for c in result.types.values())
