"""The query catalog: every read path, parsed by sqlglot, run on the real schema."""

from __future__ import annotations

import psycopg
import pytest
import redis
import sqlglot
from sqlglot.errors import TokenError

from phasegate.backfill import backfill
from phasegate.errors import UsageError
from phasegate.plans import sample_params
from phasegate.queries import for_sqlglot, load_catalog, parse_query

# The read paths the query-shape issue names, by catalog name.
READ_PATHS = {
    "inbox",
    "thread",
    "unread_count",
    "mark_thread_read",
    "board_feed",
    "board_by_category",
    "streak_of_handle",
    "streak_leaderboard",
    "invites_by_creator",
    "invite_by_code",
    "pending_connections",
    "friends_of_handle",
    "games_by_player",
    "user_by_handle",
}
CATALOG = load_catalog()


def test_every_read_path_is_catalogued() -> None:
    """One file per read path, each with its data type and index."""
    assert set(CATALOG) >= READ_PATHS


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_query_parses_as_postgres(name: str) -> None:
    """sqlglot reads every catalogued query (with the $n spacing workaround)."""
    tree = sqlglot.parse_one(for_sqlglot(CATALOG[name].sql), read="postgres")
    assert tree is not None


def test_sqlglot_needs_the_placeholder_workaround() -> None:
    """sqlglot 30 mis-reads `$1,$2` as a dollar-quoted string; the spacing fixes it."""
    with pytest.raises(TokenError):
        sqlglot.parse_one("SELECT LEAST($1,$2)", read="postgres")
    tree = sqlglot.parse_one(for_sqlglot("SELECT LEAST($1,$2)"), read="postgres")
    assert "LEAST" in tree.sql(dialect="postgres")


def test_each_header_names_an_index_of_the_schema(
    schema_pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    """The index a query relies on exists in the target schema."""
    indexes = {str(name) for (name,) in schema_pg.execute("SELECT indexname FROM pg_indexes")}
    assert {q.name: q.index for q in CATALOG.values() if q.index not in indexes} == {}


def test_every_query_runs_on_the_seeded_schema(
    seeded_kv: redis.Redis, schema_pg: psycopg.Connection[tuple[object, ...]]
) -> None:
    """Each query executes with its sample header's parameters, and the reads find rows."""
    backfill(seeded_kv, schema_pg)
    found = {}
    with psycopg.RawCursor(schema_pg) as cur:
        for query in CATALOG.values():
            cur.execute(query.sql, sample_params(schema_pg, query))
            found[query.name] = cur.rowcount
    assert found["inbox"] > 0
    assert found["thread"] > 0
    assert found["invite_by_code"] == 1
    assert found["games_by_player"] > 0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("-- name: x\n-- type: messages\n-- index: i\nSELECT 1", "header lacks params"),
        ("-- name: x\n-- type: cats\n-- params:\n-- index: i\nSELECT 1", "'cats' is not one of"),
        (
            "-- name: x\n-- type: users\n-- params: $1 h text\n-- index: i\nSELECT $2",
            "declared [1] but the SQL uses [2]",
        ),
        (
            "-- name: x\n-- type: users\n-- params: h text\n-- index: i\nSELECT 1",
            "is not '$n name type'",
        ),
    ],
)
def test_a_malformed_header_names_the_file(text: str, error: str) -> None:
    """Bad catalog files fail loudly with the file named."""
    with pytest.raises(UsageError) as info:
        parse_query(text, "q.sql")
    assert error in str(info.value)
    assert "q.sql" in str(info.value)
