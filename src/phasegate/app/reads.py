"""The read endpoints, answered from Postgres (the query catalog) or from KV.

Both answers are lists of JSON objects with the catalogued query's columns, in
its order, values made JSON the same way (timestamps ISO-8601 UTC with
milliseconds, dates ``YYYY-MM-DD``). From KV, an endpoint reads the keys the
app reads for that request, decodes them with the type's mapping (every
variant, merged copies, scheme-3 read state), then filters, sorts and limits
like the SQL does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate.handles import canonical_handle, spellings
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS, classify
from phasegate.mappings.base import Record
from phasegate.mappings.messages import thread_key
from phasegate.queries import Query
from phasegate.shapes.sqltext import parse_one

Json = dict[str, Any]
Params = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """A read path, named as its catalogued query: its data type and its sort in KV."""

    name: str
    type_id: str
    order: tuple[tuple[str, bool], ...]  # (column, descending), as the SQL orders

    @property
    def query(self) -> str:
        return self.name


ENDPOINTS = {
    e.name: e
    for e in (
        Endpoint("inbox", "messages", (("created_at", True),)),
        Endpoint("thread", "messages", (("created_at", True),)),
        Endpoint("board_feed", "board", (("created_at", True),)),
        Endpoint("board_by_category", "board", (("created_at", True),)),
        Endpoint("streak_of_handle", "streaks", ()),
        Endpoint("streak_leaderboard", "streaks", (("current_streak", True), ("handle", False))),
        Endpoint("invites_by_creator", "invites", (("created_at", True),)),
        Endpoint("pending_connections", "connections", (("requested_at", True),)),
        Endpoint("friends_of_handle", "friends", (("friend", False),)),
        Endpoint("games_by_player", "games", (("created_at", True),)),
        Endpoint("user_by_handle", "users", ()),
    )
}
# The write endpoints and their data types (names used in load stats and reports).
WRITE_ENDPOINTS = {"send_message": "messages", "board_post": "board"}


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

    async def read(self, endpoint: Endpoint, params: Params) -> list[Json]:
        query = self.catalog[endpoint.query]
        values = [params[p.name] for p in query.params]
        async with self.pool.connection() as conn:
            cur = psycopg.AsyncRawCursor(conn)
            await cur.execute(query.sql, values)
            names = [d.name for d in cur.description or ()]
            rows = await cur.fetchall()
        return [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in rows]


class KvReads:
    """Reads the keys the app reads, decoded by the mappings."""

    def __init__(self, kv: aioredis.Redis, catalog: dict[str, Query]) -> None:
        self.kv = kv
        self.catalog = catalog
        self.columns = {name: columns_of(q) for name, q in catalog.items()}
        self._scheme1: tuple[bytes, dict[str, list[Any]]] | None = None
        self._scheme1_lock = asyncio.Lock()
        self._fetch: dict[str, Callable[[Params], Awaitable[list[KvEntry]]]] = {
            "inbox": self._inbox,
            "thread": self._thread,
            "board_feed": lambda p: self._board("board:entries"),
            "board_by_category": lambda p: self._board(f"board:category:{p['category']}"),
            "streak_of_handle": self._streak,
            "streak_leaderboard": self._all_streaks,
            "invites_by_creator": self._invites,
            "pending_connections": self._pending,
            "friends_of_handle": lambda p: self._entries(
                [f"friends:{s}" for s in spellings(p["handle"])]
            ),
            "games_by_player": lambda p: self._entries(["vibe:games"]),
            "user_by_handle": self._user,
        }

    async def read(self, endpoint: Endpoint, params: Params) -> list[Json]:
        entries = await self._fetch[endpoint.name](params)
        mapping = MAPPINGS[endpoint.type_id]
        variants = []
        for entry in entries:
            where = classify(entry.key, entry.rtype)
            if where.type_id == endpoint.type_id and where.variant is not None:
                variants.append((where.variant, entry))
        records = [
            r for r in mapping.decode(variants).records.values() if _wanted(endpoint, r, params)
        ]
        records.sort(key=mapping.record_key)
        for column, descending in reversed(endpoint.order):
            records.sort(key=lambda r: _sort_key(r[column]), reverse=descending)
        if "limit" in params:
            records = records[: int(params["limit"])]
        columns = self.columns[endpoint.query]
        return [{c: jsonable(r.get(c)) for c in columns} for r in records]

    async def _entries(self, keys: Sequence[str]) -> list[KvEntry]:
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

    async def _scheme1_for(self, *handles: str) -> KvEntry | None:
        """``vibe:messages`` reduced to the messages of ``handles``; the parse is kept
        while the value's length and both ends are unchanged."""
        async with self.kv.pipeline(transaction=False) as pipe:
            pipe.strlen("vibe:messages")
            pipe.getrange("vibe:messages", 0, 127)
            pipe.getrange("vibe:messages", -128, -1)
            length, head, tail = await pipe.execute()
        if not length:
            return None
        stamp = b"%d:" % length + head + tail
        async with self._scheme1_lock:
            if self._scheme1 is None or self._scheme1[0] != stamp:
                raw = cast(bytes | None, await self.kv.get("vibe:messages"))
                by_handle: dict[str, list[Any]] = {}
                try:
                    items = orjson.loads(raw or b"[]")
                except orjson.JSONDecodeError:
                    items = None
                if not isinstance(items, list):  # undecodable: let the decoder report it
                    return KvEntry("vibe:messages", "string", raw)
                for item in items:
                    for side in ("from", "to"):
                        value = item.get(side) if isinstance(item, dict) else None
                        if isinstance(value, str):
                            by_handle.setdefault(_canon(value), []).append(item)
                self._scheme1 = (stamp, by_handle)
            by_handle = self._scheme1[1]
        picked = {id(m): m for h in handles for m in by_handle.get(h, [])}
        return KvEntry("vibe:messages", "string", orjson.dumps(list(picked.values())))

    async def _messages(self, keys: list[str], handles: tuple[str, ...]) -> list[KvEntry]:
        entries = await self._entries(keys)
        ids = {
            element.decode(errors="replace")
            for entry in entries
            if entry.rtype == "list" and entry.key.startswith(("inbox:", "thread:"))
            for element in entry.elements()
            if not element.lstrip().startswith(b"{")
        }
        entries += await self._entries([f"msg:{i}" for i in sorted(ids)])
        scheme1 = await self._scheme1_for(*handles)
        return entries + ([scheme1] if scheme1 else [])

    async def _inbox(self, p: Params) -> list[KvEntry]:
        h = p["handle"]
        return await self._messages([f"inbox:{h}", f"messages:{h}", f"unread:{h}"], (h,))

    async def _thread(self, p: Params) -> list[KvEntry]:
        h, o = p["handle"], p["other"]
        keys = [thread_key(h, o), f"unread:{h}", f"unread:{o}"]
        return await self._messages(keys, (h, o))

    async def _board(self, index: str) -> list[KvEntry]:
        ids = cast(list[bytes], await self.kv.lrange(index, 0, -1))
        return await self._entries([f"board:entry:{i.decode(errors='replace')}" for i in ids])

    async def _streak(self, p: Params) -> list[KvEntry]:
        return await self._entries([f"streak:{s}" for s in spellings(p["handle"])])

    async def _all_streaks(self, p: Params) -> list[KvEntry]:
        keys = sorted(
            {k.decode(errors="replace") async for k in self.kv.scan_iter("streak:*", 5000)}
        )
        return await self._entries(keys)

    async def _invites(self, p: Params) -> list[KvEntry]:
        codes = sorted(cast(set[bytes], await self.kv.smembers(f"vibe:invites:by:{p['handle']}")))
        if not codes:
            return []
        values = cast(list[bytes | None], await self.kv.hmget("vibe:invites", codes))
        fields = {c: v for c, v in zip(codes, values, strict=True) if v is not None}
        return [KvEntry("vibe:invites", "hash", fields)]

    async def _pending(self, p: Params) -> list[KvEntry]:
        """The pending set and every ``consent:{from}:{h}`` record: some requests were
        written as a record only, so the set alone misses them (a SCAN, as the
        Phase A gate found)."""
        h = p["handle"]
        keys = {k.decode(errors="replace") async for k in self.kv.scan_iter(f"consent:*:{h}", 5000)}
        return await self._entries(sorted(keys))

    async def _user(self, p: Params) -> list[KvEntry]:
        names = spellings(p["handle"])
        entries = await self._entries([f"user:{s}" for s in names])
        fields = [s.encode() for s in names]
        values = cast(list[bytes | None], await self.kv.hmget("vibe:handles", fields))
        registry = {f: v for f, v in zip(fields, values, strict=True) if v is not None}
        if registry:
            entries.append(KvEntry("vibe:handles", "hash", registry))
        return entries


def _canon(raw: str) -> str:
    try:
        return canonical_handle(raw)
    except Exception:
        return raw


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Postgres order: NULLS LAST ascending, NULLS FIRST descending (with reverse)."""
    return (value is None, 0 if value is None else value)


def _wanted(endpoint: Endpoint, r: Record, p: Params) -> bool:
    name = endpoint.name
    if name == "inbox":
        return bool(r["to_user"] == p["handle"])
    if name == "thread":
        return {r["from_user"], r["to_user"]} == {p["handle"], p["other"]}
    if name == "board_by_category":
        return bool(r["category"] == p["category"])
    if name in ("streak_of_handle", "user_by_handle", "friends_of_handle"):
        return bool(r["handle"] == p["handle"])
    if name == "invites_by_creator":
        return bool(r["created_by"] == p["handle"])
    if name == "pending_connections":
        return bool(r["to_user"] == p["handle"] and r["status"] == "pending")
    if name == "games_by_player":
        return p["handle"] in (r["players"] or [])
    return True
