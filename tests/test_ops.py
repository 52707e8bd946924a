"""The app's writes through the dual-writer on real stores loaded with every
legacy shape: each leaves both stores equal, and refuses what the app refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate.backfill import backfill
from phasegate.dualwrite.change import Change
from phasegate.dualwrite.requests import WriteError
from phasegate.dualwrite.writer import Writer
from phasegate.fk import add_foreign_keys
from phasegate.journal import Journal
from phasegate.mappings import MAPPINGS
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList

Conn = psycopg.Connection[tuple[object, ...]]


class Rig:
    def __init__(self, kv: redis.Redis, pg: Conn, pg_url: str, kv_url: str, folder: Path) -> None:
        self.kv, self.pg = kv, pg
        self.loop = asyncio.new_event_loop()
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            pg_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        )
        self.loop.run_until_complete(self.pool.open(wait=True))
        self.akv = aioredis.Redis.from_url(kv_url)
        self.writer = Writer(self.akv, self.pool, Journal(folder / "journal.jsonl"))

    def write(self, op: str, **body: Any) -> Change:
        return self.loop.run_until_complete(self.writer.write(op, "dual", body))

    def differences(self) -> dict[str, tuple[str, ...]]:
        scope = Scope(0, 100.0, datetime.now(UTC), AllowList())
        found = compare(self.kv, self.pg, MAPPINGS, scope)
        return {
            t: c.differences["full"].shown()
            for t, c in found.types.items()
            if c.differences["full"].count
        }

    def close(self) -> None:
        self.loop.run_until_complete(self.akv.aclose())
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


@pytest.fixture
def rig(
    seeded_kv: redis.Redis,
    schema_pg: Conn,
    scratch_pg_url: str,
    scratch_kv_url: str,
    tmp_path: Path,
) -> Iterator[Rig]:
    backfill(seeded_kv, schema_pg)
    add_foreign_keys(schema_pg, create_missing=True)
    r = Rig(seeded_kv, schema_pg, scratch_pg_url, scratch_kv_url, tmp_path)
    yield r
    r.close()


def _unconnected(pg: Conn) -> tuple[str, str]:
    row = pg.execute(
        "SELECT a.handle, b.handle FROM users a, users b WHERE a.handle < b.handle "
        "AND NOT EXISTS (SELECT 1 FROM connections c "
        "WHERE c.from_user = a.handle AND c.to_user = b.handle) LIMIT 1"
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def _one(pg: Conn, query: str, *params: object) -> Any:
    row = pg.execute(query, params).fetchone()
    return None if row is None else row[0]


def test_deleting_a_user_removes_it_and_its_rows_from_every_shape(rig: Rig) -> None:
    """The busiest sender's messages live in all three KV schemes, and it has board
    posts, invites, connections and friends: after the delete neither store has any
    of it and a full comparison finds the stores equal (nothing resurrected)."""
    handle = _one(
        rig.pg,
        "SELECT m.from_user FROM messages m JOIN users u ON u.handle = m.from_user "
        "WHERE NOT coalesce(u.is_agent, false) GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    schemes = _one(
        rig.pg,
        "SELECT count(DISTINCT s) FROM messages, jsonb_array_elements(metadata->'kv_schemes') s "
        "WHERE from_user = %s OR to_user = %s",
        handle,
        handle,
    )
    assert schemes == 3, "the fixture should give this user messages in every scheme"
    change = rig.write("user_delete", handle=handle)
    assert {s.type_id for s in change.steps} >= {"users", "messages"}
    for mapping in MAPPINGS.values():
        for column in mapping.handle_columns:
            left = _one(rig.pg, f"SELECT count(*) FROM {mapping.table} WHERE {column} = %s", handle)
            assert left == 0, (mapping.table, column)
    assert rig.differences() == {}


def test_seven_days_of_check_ins_earn_the_badge_in_both_stores(rig: Rig) -> None:
    """A new (JSON-shaped) streak counts each day once and unlocks verified_builder at 7."""
    handle = _one(
        rig.pg,
        "SELECT handle FROM users WHERE handle NOT IN (SELECT handle FROM streaks) "
        "ORDER BY 1 LIMIT 1",
    )
    for day in range(1, 8):
        rig.write("streak_checkin", handle=handle, day=f"2030-02-{day:02d}")
        assert not rig.write("streak_checkin", handle=handle, day=f"2030-02-{day:02d}").steps
    assert _one(rig.pg, "SELECT current_streak FROM streaks WHERE handle = %s", handle) == 7
    assert (
        _one(rig.pg, "SELECT badge FROM achievements WHERE handle = %s", handle)
        == "verified_builder"
    )
    assert b"verified_builder" in cast(bytes, rig.kv.get(f"streak:{handle}"))
    assert rig.differences() == {}


def test_a_hash_shaped_streak_keeps_its_shape_and_counts_total_days(rig: Rig) -> None:
    handle = _one(
        rig.pg, "SELECT handle FROM streaks WHERE total_days IS NOT NULL ORDER BY handle LIMIT 1"
    )
    total = _one(rig.pg, "SELECT total_days FROM streaks WHERE handle = %s", handle)
    rig.write("streak_checkin", handle=handle, day="2031-01-01")
    assert _one(rig.pg, "SELECT total_days FROM streaks WHERE handle = %s", handle) == total + 1
    assert rig.kv.type(f"streak:{handle}") == b"hash"
    assert rig.differences() == {}


def test_refused_writes_name_what_is_wrong_and_write_nothing(rig: Rig) -> None:
    code = _one(rig.pg, "SELECT code FROM invites WHERE status = 'used' ORDER BY 1 LIMIT 1")
    user = _one(rig.pg, "SELECT handle FROM users ORDER BY 1 LIMIT 1")
    with pytest.raises(WriteError, match=f"invite {code}: status is used, not available"):
        rig.write("invite_redeem", code=code, handle=user)
    a, b = _unconnected(rig.pg)
    with pytest.raises(WriteError, match=f"connection {a}->{b}: no pending request"):
        rig.write("connection_accept", **{"from": a, "to": b})
    before = rig.kv.dbsize()
    with pytest.raises(WriteError, match="Postgres refused the write"):
        rig.write("send_message", **{"from": "nobody-at-all", "to": user, "text": "hi"})
    assert rig.kv.dbsize() == before  # Postgres said no, so KV was not written either
    assert rig.differences() == {}


def test_a_request_then_accept_moves_the_pair_between_status_sets(rig: Rig) -> None:
    a, b = _unconnected(rig.pg)
    rig.write("connection_request", **{"from": a, "to": b})
    assert rig.kv.sismember(f"consent:pending:{b}", a)
    rig.write("connection_accept", **{"from": a, "to": b})
    assert not rig.kv.sismember(f"consent:pending:{b}", a)
    assert rig.kv.sismember(f"consent:accepted:{b}", a)
    assert (
        _one(rig.pg, "SELECT status FROM connections WHERE from_user = %s AND to_user = %s", a, b)
        == "accepted"
    )
    assert rig.differences() == {}
