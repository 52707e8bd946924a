"""The write endpoints: send a message, post to the board.

A write builds the KV value the app writes today (``msg:{id}`` with its
inbox/outbox/thread lists; ``board:entry:{id}`` with its index lists), and the
Postgres row is that value decoded by the type's mapping, so both stores hold
the same record. Both sides are idempotent: Postgres upserts, and KV list
pushes remove the id first, so a replayed write changes nothing more.

``dual`` mode follows the spec's rules: Postgres first, then KV; a failed
Postgres write still goes to KV, a failed KV write carries on; either miss is
recorded in the :class:`~phasegate.journal.Journal` before the write is
acknowledged. When both sides fail, the write is refused (HTTP 503) and the
caller keeps it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import redis
import redis.asyncio as aioredis
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from phasegate.app.modes import WriteMode
from phasegate.app.reads import Json, jsonable
from phasegate.journal import Entry, Journal, Side
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


class StoresDownError(RuntimeError):
    """Neither store took the write: nothing was acknowledged."""


def kv_commands(pipe: Any, type_id: str, record: Record, key: str, value: bytes) -> None:
    """Queue the app's KV writes for one record on a (sync or async) pipeline;
    idempotent, so a journal replay may run them again."""
    pipe.set(key, value)
    rid = record["id"].encode()
    if type_id == "messages":
        lists = [
            f"inbox:{record['to_user']}",
            f"outbox:{record['from_user']}",
            thread_key(record["from_user"], record["to_user"]),
        ]
        for name in lists:
            pipe.lrem(name, 0, rid)
            pipe.rpush(name, rid)
    elif type_id == "board":
        for name in (
            "board:entries",
            f"board:category:{record['category']}",
            f"board:user:{record['author']}",
        ):
            pipe.lrem(name, 0, rid)
            pipe.lpush(name, rid)
        pipe.ltrim("board:entries", 0, 99)
    else:
        raise ValueError(f"no KV writer for {type_id}")


VARIANTS = {"messages": "scheme2", "board": "entry"}
PG_TIMEOUT_S = 2.0  # wait this long for a Postgres connection before counting it failed


class Writes:
    """Writes through the modes: KV, Postgres, or Postgres then KV with a journal."""

    def __init__(
        self, kv: aioredis.Redis, pool: AsyncConnectionPool[Any], journal: Journal | None = None
    ) -> None:
        self.kv = kv
        self.pool = pool
        self.journal = journal

    async def send_message(self, mode: WriteMode, body: Json) -> Json:
        sender, to = str(body.get("from", "")), str(body.get("to", ""))
        key, value = new_message(sender, to, body.get("text", ""))
        return await self._write(mode, "messages", key, value)

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
        return await self._write(mode, "board", key, value)

    async def _write(self, mode: WriteMode, type_id: str, key: str, value: bytes) -> Json:
        record = decode_one(type_id, VARIANTS[type_id], key, value)
        pg_error = kv_error = None
        if mode in ("pg", "dual"):
            try:
                mapping = MAPPINGS[type_id]
                async with self.pool.connection(timeout=PG_TIMEOUT_S) as conn:
                    await conn.execute(upsert_sql(mapping), mapping.to_row(record))
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                if mode == "pg":
                    raise
                pg_error = exc
        if mode in ("kv", "dual"):
            try:
                async with self.kv.pipeline(transaction=True) as pipe:
                    kv_commands(pipe, type_id, record, key, value)
                    await pipe.execute()
            except (redis.RedisError, OSError) as exc:
                if mode == "kv":
                    raise
                kv_error = exc
        if pg_error is not None and kv_error is not None:
            raise StoresDownError(f"both stores failed: Postgres {pg_error}; KV {kv_error}")
        misses: tuple[tuple[Side, Exception | None], ...] = (("pg", pg_error), ("kv", kv_error))
        for side, error in misses:
            if error is not None:
                if self.journal is None:
                    raise StoresDownError(f"{side} failed and no journal is configured: {error}")
                self.journal.record(
                    type_id, VARIANTS[type_id], key, value, failed=side, error=str(error)
                )
        return {k: jsonable(v) for k, v in record.items()}


@dataclass
class Replayed:
    """What a journal replay did: entries applied, and those still failing (with why)."""

    applied: list[Entry] = field(default_factory=list)
    failed: list[tuple[Entry, str]] = field(default_factory=list)


def replay_journal(
    journal: Journal, kv: redis.Redis, pg: psycopg.Connection[tuple[object, ...]]
) -> Replayed:
    """Write each pending entry to the side that missed it, then mark it done.

    Idempotent: a replayed write lands the same record again; an entry whose side
    is still down stays pending and is reported.
    """
    out = Replayed()
    for entry in journal.pending():
        value = entry.value.encode()
        try:
            record = decode_one(entry.type_id, entry.variant, entry.key, value)
            if entry.failed == "pg":
                mapping = MAPPINGS[entry.type_id]
                with pg.transaction():
                    pg.execute(upsert_sql(mapping), mapping.to_row(record))
            else:
                with kv.pipeline(transaction=True) as pipe:
                    kv_commands(pipe, entry.type_id, record, entry.key, value)
                    pipe.execute()
        except (psycopg.Error, redis.RedisError, OSError, WriteError) as exc:
            out.failed.append((entry, str(exc)))
            continue
        journal.done(entry)
        out.applied.append(entry)
    return out
