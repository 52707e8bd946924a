"""The write endpoints: send a message, post to the board.

A write builds the KV value the app writes today (``msg:{id}`` with its
inbox/outbox/thread lists; ``board:entry:{id}`` with its index lists), and the
Postgres row is that value decoded by the type's mapping, so both stores hold
the same record. Postgres writes are idempotent upserts. In ``dual`` mode
Postgres is written first, then KV (the dual-write rules of Phase B build on
this).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from phasegate.app.modes import WriteMode
from phasegate.app.reads import Json, jsonable
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping, Record
from phasegate.seed.shapes import base36, thread_key

TEXT_LIMIT = 2000


class WriteError(ValueError):
    """A write request the app would refuse (names the field)."""


def new_message(sender: str, to: str, text: str, now_ms: int | None = None) -> tuple[str, bytes]:
    """The ``msg:{id}`` key and value the app's current writer stores."""
    if not sender or not to:
        raise WriteError("from and to are required")
    if not isinstance(text, str) or not text or len(text) > TEXT_LIMIT:
        raise WriteError(f"text must be 1 to {TEXT_LIMIT} characters")
    ms = now_ms if now_ms is not None else int(time.time() * 1000)
    msg_id = f"msg_{base36(ms)}{secrets.token_hex(2)[:3]}"
    value = {
        "id": msg_id,
        "from": sender,
        "to": to,
        "text": text,
        "body": text,
        "payload": None,
        "v": 2,
        "signature": None,
        "signatureVerified": False,
        "createdAt": ms,
        "read": False,
        "consent": "accepted",
    }
    return f"msg:{msg_id}", orjson.dumps(value)


def new_board_entry(
    author: str, content: str, category: str, tags: list[str], now_ms: int | None = None
) -> tuple[str, bytes]:
    """The ``board:entry:{id}`` key and value of a new post."""
    if not author:
        raise WriteError("author is required")
    if not isinstance(content, str) or not content or len(content) > 500:
        raise WriteError("content must be 1 to 500 characters")
    ms = now_ms if now_ms is not None else int(time.time() * 1000)
    entry_id = f"entry_{ms}_{secrets.token_hex(4)}"
    value = {
        "id": entry_id,
        "author": author,
        "content": content,
        "category": category or "general",
        "tags": tags,
        "timestamp": ms,
        "reactions": {},
        "comments": [],
        "metadata": {},
    }
    return f"board:entry:{entry_id}", orjson.dumps(value)


def decode_one(type_id: str, variant: str, key: str, value: bytes) -> Record:
    decoded = MAPPINGS[type_id].decode([(variant, KvEntry(key, "string", value))])
    if len(decoded.records) != 1:
        problems = "; ".join(f.detail for f in decoded.findings) or "no record"
        raise WriteError(f"{key}: {problems}")
    return next(iter(decoded.records.values()))


def upsert_sql(mapping: Mapping) -> sql.Composed:
    """``INSERT ... ON CONFLICT (key) DO UPDATE``: a retried write changes nothing more."""
    names = [sql.Identifier(c) for c in mapping.column_names]
    keys = [sql.Identifier(c) for c in mapping.key_columns]
    others = [sql.Identifier(c) for c in mapping.column_names if c not in mapping.key_columns]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier(mapping.table),
        sql.SQL(", ").join(names),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sql.SQL(", ").join(keys),
        sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(n) for n in others),
    )


class Writes:
    """Writes through the modes: KV, Postgres, or Postgres then KV."""

    def __init__(self, kv: aioredis.Redis, pool: AsyncConnectionPool[Any]) -> None:
        self.kv = kv
        self.pool = pool

    async def send_message(self, mode: WriteMode, body: Json) -> Json:
        sender, to = str(body.get("from", "")), str(body.get("to", ""))
        key, value = new_message(sender, to, body.get("text", ""))
        record = decode_one("messages", "scheme2", key, value)

        async def to_kv() -> None:
            msg_id = record["id"].encode()
            async with self.kv.pipeline(transaction=True) as pipe:
                pipe.set(key, value)
                pipe.rpush(f"inbox:{record['to_user']}", msg_id)
                pipe.rpush(f"outbox:{record['from_user']}", msg_id)
                pipe.rpush(thread_key(record["from_user"], record["to_user"]), msg_id)
                await pipe.execute()

        await self._write(mode, "messages", record, to_kv)
        return {k: jsonable(v) for k, v in record.items()}

    async def post_board(self, mode: WriteMode, body: Json) -> Json:
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise WriteError("tags must be a list of strings")
        key, value = new_board_entry(
            str(body.get("author", "")),
            body.get("content", ""),
            str(body.get("category", "")),
            tags,
        )
        record = decode_one("board", "entry", key, value)

        async def to_kv() -> None:
            entry_id = record["id"].encode()
            async with self.kv.pipeline(transaction=True) as pipe:
                pipe.set(key, value)
                pipe.lpush("board:entries", entry_id)
                pipe.ltrim("board:entries", 0, 99)
                pipe.lpush(f"board:category:{record['category']}", entry_id)
                pipe.lpush(f"board:user:{record['author']}", entry_id)
                await pipe.execute()

        await self._write(mode, "board", record, to_kv)
        return {k: jsonable(v) for k, v in record.items()}

    async def _write(self, mode: WriteMode, type_id: str, record: Record, to_kv: Any) -> None:
        if mode in ("pg", "dual"):
            mapping = MAPPINGS[type_id]
            async with self.pool.connection() as conn:
                await conn.execute(upsert_sql(mapping), mapping.to_row(record))
        if mode in ("kv", "dual"):
            await to_kv()
