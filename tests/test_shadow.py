"""Shadow reads over real stores: divergence is measured, rechecked and alerted.

Primary: Postgres through the query catalog; secondary: KV through the
mappings; both on the ``now`` fixture backfilled. Divergence is made by
changing Postgres rows of some of the users read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate.app.reads import KvReads, PgReads, columns_of
from phasegate.backfill import backfill
from phasegate.endpoints import ENDPOINTS
from phasegate.faults import FaultProxy
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Column
from phasegate.queries import load_catalog
from phasegate.shadow import Shadow

Conn = psycopg.Connection[tuple[object, ...]]
USER = ENDPOINTS["user_by_handle"]


@pytest.fixture
def loaded(seeded_kv: redis.Redis, schema_pg: Conn) -> tuple[Conn, list[str]]:
    """The ``now`` fixture in both stores, and 100 handles to read."""
    backfill(seeded_kv, schema_pg)
    handles = [str(h) for (h,) in schema_pg.execute("SELECT handle FROM users ORDER BY handle")]
    assert len(handles) >= 100
    return schema_pg, handles[:100]


async def _shadow_reads(pg_url: str, kv_url: str, handles: list[str], **options: Any) -> Shadow:
    catalog = load_catalog()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    kv = aioredis.Redis.from_url(kv_url, socket_timeout=2)
    shadow = Shadow(PgReads(pool, catalog).read, KvReads(kv, catalog).read, **options)
    for h in handles:
        answer = await shadow.read(USER, {"handle": h})
        assert answer, h  # the caller always gets the primary's answer
    await shadow.settle()
    await kv.aclose()
    await pool.close()
    return shadow


def _diverge(pg: Conn, handles: list[str]) -> None:
    pg.execute(
        "UPDATE users SET building = 'changed in postgres only' WHERE handle = ANY(%s)", (handles,)
    )


@pytest.mark.parametrize(("changed", "alert"), [(6, True), (4, False)])
def test_divergence_over_the_budget_alerts_and_under_it_does_not(
    loaded: tuple[Conn, list[str]],
    scratch_pg_url: str,
    scratch_kv_url: str,
    changed: int,
    alert: bool,
) -> None:
    """6 of 100 reads diverging passes a 5% budget and alerts; 4 of 100 does not."""
    pg, handles = loaded
    _diverge(pg, handles[:changed])
    shadow = asyncio.run(
        _shadow_reads(scratch_pg_url, scratch_kv_url, handles, recheck_delay_s=0.05)
    )
    assert shadow.divergence_percent("user_by_handle") == pytest.approx(changed)
    assert bool(shadow.alerts()) is alert
    kept = shadow.mismatches["user_by_handle"]
    assert len(kept) == changed
    assert 'field building: primary "changed in postgres only"' in kept[0].diff


def test_a_difference_gone_by_the_recheck_is_not_divergence(
    loaded: tuple[Conn, list[str]], scratch_pg_url: str, scratch_kv_url: str
) -> None:
    """A write in flight: the stores differ at the first read and agree at the recheck."""
    pg, handles = loaded
    before = pg.execute(
        "SELECT handle, building FROM users WHERE handle = ANY(%s)", (handles[:10],)
    ).fetchall()
    _diverge(pg, handles[:10])

    async def run() -> Shadow:
        async def land_the_write() -> None:
            await asyncio.sleep(0.1)
            with psycopg.connect(scratch_pg_url, autocommit=True) as conn:
                for handle, building in before:
                    conn.execute(
                        "UPDATE users SET building = %s WHERE handle = %s", (building, handle)
                    )

        landing = asyncio.create_task(land_the_write())
        shadow = await _shadow_reads(scratch_pg_url, scratch_kv_url, handles, recheck_delay_s=1.0)
        await landing
        return shadow

    shadow = asyncio.run(run())
    assert shadow.settled_suspects == 10
    assert shadow.divergence_percent("user_by_handle") == 0
    assert shadow.mismatches == {}


def test_a_failing_secondary_never_reaches_the_caller(
    loaded: tuple[Conn, list[str]], scratch_pg_url: str, scratch_kv_url: str
) -> None:
    """With KV cut off, every caller still gets Postgres's answer; the errors are counted."""
    _pg, handles = loaded
    with FaultProxy.before(scratch_kv_url) as proxy:
        proxy.drop()
        shadow = asyncio.run(
            _shadow_reads(scratch_pg_url, proxy.url_for(scratch_kv_url), handles[:20])
        )
    assert shadow.secondary_errors["user_by_handle"] == 20
    assert shadow.alerts() == []


_CHANGED = {  # a value of each column kind that no fixture row holds
    "text": "'changed in postgres only'",
    "ts": "'2001-02-03T04:05:06.789Z'",
    "int": "424242",
    "bool": "NOT coalesce({col}, false)",
    "text[]": "ARRAY['changed']",
    "json": "'{{\"changed\": true}}'::jsonb",
}
# Every field the profile endpoint answers with (its catalogued query's columns).
_USER_COLUMNS = [
    c
    for c in MAPPINGS["users"].columns
    if c.name in columns_of(load_catalog()["user_by_handle"]) and c.name != "handle"
]


@pytest.mark.parametrize("column", _USER_COLUMNS, ids=[c.name for c in _USER_COLUMNS])
def test_a_change_in_any_field_is_divergence_naming_that_field(
    loaded: tuple[Conn, list[str]], scratch_pg_url: str, scratch_kv_url: str, column: Column
) -> None:
    """The comparison ignores no field the endpoint answers with: one column
    changed in Postgres for one user is a mismatch that names exactly that column."""
    pg, handles = loaded
    value = _CHANGED[column.kind].format(col=column.name)
    pg.execute(f"UPDATE users SET {column.name} = {value} WHERE handle = %s", (handles[0],))
    shadow = asyncio.run(
        _shadow_reads(scratch_pg_url, scratch_kv_url, handles[:1], recheck_delay_s=0.05)
    )
    (mismatch,) = shadow.mismatches["user_by_handle"]
    assert f"field {column.name}:" in mismatch.diff
