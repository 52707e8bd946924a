"""What every app write needs: the request's fields, its moment, and the current
state in Postgres, plus the two ways a write is refused.

The writes themselves, one per app operation, are :mod:`phasegate.dualwrite.ops`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from phasegate.deadline import within
from phasegate.dualwrite.change import Change, select_sql
from phasegate.handles import canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Record
from phasegate.values import DecodeError

Json = dict[str, Any]
PG_TIMEOUT_S = 2.0  # wait this long for a Postgres connection before counting it failed


class WriteError(ValueError):
    """A write request the app would refuse (names the field)."""


class StoresDownError(RuntimeError):
    """Nothing was written and nothing acknowledged: the caller keeps the write."""


class State:
    """Current rows, read from Postgres."""

    def __init__(self, pool: AsyncConnectionPool[Any], timeout_s: float = PG_TIMEOUT_S) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self.behind = False  # Postgres has journaled writes it has not received

    async def rows(self, type_id: str, where: str, params: tuple[Any, ...]) -> list[Record]:
        if self.behind:
            raise StoresDownError(
                f"Postgres has journaled writes it has not received yet, so its {type_id} "
                "may be stale: nothing was written (retry)"
            )
        mapping = MAPPINGS[type_id]
        query = select_sql(mapping, where)

        async def fetch() -> list[Record]:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                cur = await conn.execute(query, params)
                return [mapping.from_row(row) for row in await cur.fetchall()]

        try:
            return await within(fetch(), self.timeout_s, "Postgres")
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            raise StoresDownError(
                f"Postgres is needed to read the current {type_id} and is unreachable: "
                f"nothing was written ({exc})"
            ) from exc

    async def one(self, type_id: str, where: str, params: tuple[Any, ...]) -> Record | None:
        found = await self.rows(type_id, where, params)
        return found[0] if found else None


Op = Callable[[State, Json, datetime], Awaitable[Change]]


def now_utc(body: Json) -> datetime:
    """The write's moment: the request's ``at`` (epoch ms, for exact retries) or now.

    >>> now_utc({"at": 1767801301123}).isoformat()
    '2026-01-07T15:55:01.123000+00:00'
    """
    at = body.get("at")
    ms = int(at) if isinstance(at, int) else int(time.time() * 1000)
    # whole milliseconds exactly (ms / 1000 as a float can land a microsecond off,
    # and KV keeps milliseconds)
    return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)


def handle(body: Json, name: str) -> str:
    raw = body.get(name)
    if not isinstance(raw, str) or not raw.strip():
        raise WriteError(f"{name} is required")
    try:
        return canonical_handle(raw)
    except DecodeError as exc:
        raise WriteError(f"{name}: {exc.reason}") from None


def text_field(body: Json, name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise WriteError(f"{name} must be 1 to {limit} characters")
    return value


def request_id(body: Json, made: str) -> str:
    given = body.get("id")
    if given is None:
        return made
    if not isinstance(given, str) or not 0 < len(given) <= 100:
        raise WriteError("id must be a string of 1 to 100 characters")
    return given


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def decode_value(type_id: str, variant: str, key: str, value: bytes) -> Record:
    """A KV value the writer built, decoded by the type's mapping (the Postgres row)."""
    decoded = MAPPINGS[type_id].decode([(variant, KvEntry(key, "string", value))])
    if len(decoded.records) != 1:
        problems = "; ".join(f.detail for f in decoded.findings) or "no record"
        raise WriteError(f"{key}: {problems}")
    return next(iter(decoded.records.values()))


async def create(state: State, op: str, type_id: str, record: Record, *, retried: bool) -> Change:
    """A create's change: the record, or nothing when the request named the record's
    key (so may be a retry) and Postgres already holds it (upserting it again would
    undo later updates, e.g. a read flag). While Postgres cannot say, the create
    goes ahead: its upsert is idempotent."""
    column = MAPPINGS[type_id].key_columns[0]
    change = Change(op)
    if retried:
        try:
            existing = await state.one(type_id, f"{column} = %s", (record[column],))
        except StoresDownError:
            existing = None
        if existing is not None:
            change.see(type_id, existing)
            return change
    change.put(type_id, record)
    return change
