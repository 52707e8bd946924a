"""The spec's dual-write rules, and the write-failure rate.

``dual``: Postgres first (one transaction for the whole change), then KV. A
failed Postgres write still goes to KV, a failed KV write carries on; either
miss is recorded in the :class:`~phasegate.journal.Journal` (fsync'd) before the
write is acknowledged. When both sides fail nothing is acknowledged
(:class:`StoresDownError`, HTTP 503) and the caller keeps the write. ``kv`` and
``pg`` write one side only, and its failure is the caller's.

Every write counts in a sliding window; a write that missed a side (or was
refused) is a failed write, and more than ``failure_budget_percent`` (1%, the
spec's) of the window raises an alert.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from phasegate.app.modes import WriteMode
from phasegate.dualwrite import kvexec, kvplan
from phasegate.dualwrite.change import Change, pg_statements
from phasegate.dualwrite.ops import OPS, PG_TIMEOUT_S, State, StoresDownError, now_utc
from phasegate.journal import Entry, Journal, Side

Json = dict[str, Any]
WINDOW = 1000
MIN_WRITES = 100  # below this many writes a rate is not judged


@dataclass
class WriteStats:
    """Writes over a sliding window: how many missed a side, and the alert."""

    budget_percent: float = 1.0
    window: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    total: int = 0
    missed: dict[str, int] = field(default_factory=lambda: {"pg": 0, "kv": 0, "both": 0})

    def add(self, failed: str | None) -> None:
        self.total += 1
        self.window.append(failed is not None)
        if failed is not None:
            self.missed[failed] += 1

    def failure_percent(self) -> float:
        return 100.0 * sum(self.window) / len(self.window) if self.window else 0.0

    def alert(self) -> str | None:
        """``writes: 2.3% failed over the last 1000 (budget 1%)`` or None.

        >>> s = WriteStats()
        >>> for i in range(200): s.add("kv" if i % 40 == 0 else None)
        >>> s.alert()
        'writes: 2.5% failed over the last 200 (budget 1.0%): 5 missed KV, 0 missed Postgres'
        """
        rate = self.failure_percent()
        if len(self.window) < MIN_WRITES or rate <= self.budget_percent:
            return None
        return (
            f"writes: {rate:.1f}% failed over the last {len(self.window)} "
            f"(budget {self.budget_percent}%): {self.missed['kv']} missed KV, "
            f"{self.missed['pg']} missed Postgres"
            + (f", {self.missed['both']} refused" if self.missed["both"] else "")
        )

    def as_json(self) -> Json:
        return {
            "writes": self.total,
            "failure_percent": round(self.failure_percent(), 3),
            "missed": dict(self.missed),
            "alert": self.alert(),
        }


class Writer:
    """Runs app writes (:data:`~phasegate.dualwrite.ops.OPS`) through a write mode."""

    def __init__(
        self,
        kv: aioredis.Redis,
        pool: AsyncConnectionPool[Any],
        journal: Journal | None = None,
        *,
        failure_budget_percent: float = 1.0,
    ) -> None:
        self.kv = kv
        self.pool = pool
        self.state = State(pool)
        self.journal = journal
        self.stats = WriteStats(failure_budget_percent)

    async def write(self, op: str, mode: WriteMode, body: Json) -> Change:
        """Run one app write; returns its change (what was written)."""
        change = await OPS[op](self.state, body, now_utc(body))
        await self.apply(change, mode)
        return change

    async def apply(self, change: Change, mode: WriteMode) -> None:
        if not change.steps:
            return
        pg_error = kv_error = None
        if mode in ("pg", "dual"):
            try:
                await self._pg(change)
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                if mode == "pg":
                    raise
                pg_error = exc
        if mode in ("kv", "dual"):
            try:
                await kvexec.apply_async(self.kv, kvplan.commands(change))
            except (redis.RedisError, OSError) as exc:
                if mode == "kv":
                    raise
                kv_error = exc
        if pg_error is not None and kv_error is not None:
            self.stats.add("both")
            raise StoresDownError(f"both stores failed: Postgres {pg_error}; KV {kv_error}")
        misses: tuple[tuple[Side, Exception | None], ...] = (("pg", pg_error), ("kv", kv_error))
        failed = None
        for side, error in misses:
            if error is not None:
                failed = side
                if self.journal is None:
                    raise StoresDownError(f"{side} failed and no journal is configured: {error}")
                self.journal.record(change.to_json(), failed=side, error=str(error))
        self.stats.add(failed)

    async def _pg(self, change: Change) -> None:
        async with self.pool.connection(timeout=PG_TIMEOUT_S) as conn, conn.transaction():
            for statement, params in pg_statements(change):
                await conn.execute(statement, params)


@dataclass
class Replayed:
    """What a journal replay did: entries applied, and those still failing (with why)."""

    applied: list[Entry] = field(default_factory=list)
    failed: list[tuple[Entry, str]] = field(default_factory=list)


def replay_journal(
    journal: Journal,
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    *,
    types: set[str] | None = None,
    dry_run: bool = False,
) -> Replayed:
    """Write each pending entry to the side that missed it, then mark it done.

    Idempotent: a replayed write lands the same records again; an entry whose
    side is still down stays pending and is reported. ``types`` limits the
    replay to entries touching those data types.
    """
    out = Replayed()
    for entry in journal.pending():
        if types is not None and not types & set(entry.type_ids):
            continue
        if dry_run:
            out.applied.append(entry)
            continue
        change = Change.from_json(entry.change)
        try:
            if entry.failed == "pg":
                with pg.transaction():
                    for statement, params in pg_statements(change):
                        pg.execute(statement, params)
            else:
                kvexec.apply(kv, kvplan.commands(change))
        except (psycopg.Error, redis.RedisError, OSError) as exc:
            out.failed.append((entry, str(exc).strip()))
            continue
        journal.done(entry)
        out.applied.append(entry)
    return out
