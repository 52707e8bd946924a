"""The read paths, answered from Postgres (the query catalog) or from KV.

Both answers are lists of JSON objects with the catalogued query's columns, in
its order, values made JSON the same way (timestamps ISO-8601 UTC with
milliseconds, dates ``YYYY-MM-DD``). From KV, a read path reads the keys the
app reads for that request (its mapping's ``fetch``), decodes them with the
type's mapping (every variant, merged copies, scheme-3 read state), then keeps
the records it wants, sorts and limits like the SQL does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS, classify
from phasegate.mappings.declare import Params, ReadPath
from phasegate.queries import Query
from phasegate.shapes.sqltext import parse_one

Json = dict[str, Any]


def jsonable(value: Any) -> Any:
    """One value as JSON: timestamps to ISO UTC ms, dates to ISO, lists element-wise."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def columns_of(query: Query) -> list[str]:
    """The output column names of a catalogued SELECT."""
    return [e.alias_or_name for e in parse_one(query.sql).expressions]


class PgReads:
    """Reads through the query catalog on a connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], catalog: dict[str, Query]) -> None:
        self.pool = pool
        self.catalog = catalog

    async def read(self, endpoint: ReadPath, params: Params) -> list[Json]:
        query = self.catalog[endpoint.query]
        values = [params[p.name] for p in query.params]
        async with self.pool.connection() as conn:
            cur = psycopg.AsyncRawCursor(conn)
            await cur.execute(query.sql, values)
            names = [d.name for d in cur.description or ()]
            rows = await cur.fetchall()
        return [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in rows]


class KvStore:
    """The KV side a read path's fetch uses (:class:`~phasegate.mappings.declare.KvSource`)."""

    def __init__(self, kv: aioredis.Redis) -> None:
        self.kv = kv
        self.memo: dict[str, Any] = {}
        self.lock = asyncio.Lock()

    async def entries(self, keys: Sequence[str]) -> list[KvEntry]:
        """Each existing key with its TYPE and value (two round trips)."""
        async with self.kv.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            types = [t.decode() if isinstance(t, bytes) else str(t) for t in await pipe.execute()]
        present = [(k, t) for k, t in zip(keys, types, strict=True) if t != "none"]
        async with self.kv.pipeline(transaction=False) as pipe:
            for key, rtype in present:
                if rtype == "string":
                    pipe.get(key)
                elif rtype == "hash":
                    pipe.hgetall(key)
                elif rtype == "list":
                    pipe.lrange(key, 0, -1)
                elif rtype == "set":
                    pipe.smembers(key)
                else:
                    pipe.zrange(key, 0, -1, withscores=True)
            values = await pipe.execute()
        return [KvEntry(k, t, v) for (k, t), v in zip(present, values, strict=True)]

    async def scan(self, pattern: str) -> list[str]:
        return sorted({k.decode(errors="replace") async for k in self.kv.scan_iter(pattern, 5000)})


class KvReads:
    """Reads the keys the app reads (each read path's fetch), decoded by the mappings."""

    def __init__(self, kv: aioredis.Redis, catalog: dict[str, Query]) -> None:
        self.source = KvStore(kv)
        self.catalog = catalog
        self.columns = {name: columns_of(q) for name, q in catalog.items()}

    async def read(self, endpoint: ReadPath, params: Params) -> list[Json]:
        if endpoint.fetch is None:
            raise ValueError(f"read path {endpoint.name} declares no KV read (fetch)")
        entries = await endpoint.fetch(self.source, params)
        mapping = MAPPINGS[endpoint.type_id]
        variants = []
        for entry in entries:
            where = classify(entry.key, entry.rtype)
            if where.type_id == endpoint.type_id and where.variant is not None:
                variants.append((where.variant, entry))
        records = [
            r for r in mapping.decode(variants).records.values() if endpoint.wanted(r, params)
        ]
        records.sort(key=mapping.record_key)
        for column, descending in reversed(endpoint.order):
            records.sort(key=lambda r: _sort_key(r[column]), reverse=descending)
        if "limit" in params:
            records = records[: int(params["limit"])]
        columns = self.columns[endpoint.query]
        return [{c: jsonable(r.get(c)) for c in columns} for r in records]


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Postgres order: NULLS LAST ascending, NULLS FIRST descending (with reverse)."""
    return (value is None, 0 if value is None else value)
