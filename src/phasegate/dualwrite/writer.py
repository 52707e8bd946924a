"""The spec's dual-write rules, and the write-failure rate.

``dual``: Postgres first (one transaction for the whole change), then KV. A
failed Postgres write still goes to KV, a failed KV write carries on; either
miss is recorded in the :class:`~phasegate.journal.Journal` (fsync'd) before the
write is acknowledged. When both sides fail nothing is acknowledged
(:class:`StoresDownError`, HTTP 503) and the caller keeps the write. ``kv`` and
``pg`` write one side only, and its failure is the caller's.

Order is kept per side. While a side has journaled writes it has not received,
it is *behind*: later writes do not go to it directly (they are journaled behind
the others), and before the next write the writer replays the journal to it in
order (at most every :data:`CATCH_UP_EVERY_S`). An update that reads current
state is refused while Postgres is behind, since that state is stale. Without
this a write could reach Postgres before an earlier one it missed, and the
replay would then put the older record back (the Phase B gate caught exactly
that: redeemed invites turned available again).

``defects`` break a rule on purpose, for the tests that prove the Phase B gate
catches it: ``kv-skipped-when-pg-fails`` acknowledges a write Postgres refused
without writing KV or the journal (the write is lost); ``new-id-on-retry``
ignores the request's ``id`` and ``at``, so a retried write is a second record;
``replay-out-of-order`` writes each side directly even while it is behind the
journal (no catch-up, no fence), so a later replay puts older records back.

Every write counts in a sliding window; a write that missed a side (or was
refused) is a failed write, and more than ``failure_budget_percent`` (1%, the
spec's) of the window raises an alert.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from phasegate.app.modes import WriteMode
from phasegate.deadline import within
from phasegate.dualwrite import kvexec, kvplan
from phasegate.dualwrite.change import Change, pg_statements
from phasegate.dualwrite.requests import State, StoresDownError, WriteError, now_utc
from phasegate.endpoints import WRITES
from phasegate.journal import Entry, Journal, Side

Json = dict[str, Any]
WINDOW = 1000
CATCH_UP_EVERY_S = 0.25
# Rules broken on purpose, to prove the gates catch them: three dual-write rules
# (Phase B), and a Postgres read path that still touches KV (Phase D's kv-free-reads).
DEFECTS = (
    "kv-skipped-when-pg-fails",
    "new-id-on-retry",
    "replay-out-of-order",
    "pg-read-touches-kv",
)
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
    """Runs app writes (:data:`~phasegate.endpoints.WRITES`) through a write mode."""

    def __init__(
        self,
        kv: aioredis.Redis,
        pool: AsyncConnectionPool[Any],
        journal: Journal | None = None,
        *,
        failure_budget_percent: float = 1.0,
        timeout_s: float = 2.0,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.timeout_s = timeout_s
        self.defects = defects
        self.kv = kv
        self.pool = pool
        self.state = State(pool, timeout_s)
        self.journal = journal
        self.stats = WriteStats(failure_budget_percent)
        self.behind: set[Side] = (
            {e.failed for e in journal.pending()} if journal is not None else set()
        )
        self._lock = asyncio.Lock()
        self._next_catch_up = 0.0

    async def write(self, op: str, mode: WriteMode, body: Json) -> Change:
        """Run one app write; returns its change (what was written)."""
        if "new-id-on-retry" in self.defects:
            body = {k: v for k, v in body.items() if k not in ("id", "at")}
        if not self.behind or "replay-out-of-order" in self.defects:
            return await self._write(op, mode, body)
        async with self._lock:  # behind: one write at a time, after the journal
            await self.catch_up()
            return await self._write(op, mode, body)

    async def _write(self, op: str, mode: WriteMode, body: Json) -> Change:
        self.state.behind = "pg" in self.behind and "replay-out-of-order" not in self.defects
        change: Change = await WRITES[op].function()(self.state, body, now_utc(body))
        await self.apply(change, mode)
        return change

    async def catch_up(self, *, force: bool = False) -> int:
        """Replay the journal to each side that is behind, in order, stopping a side
        at its first failure; returns the entries applied."""
        if self.journal is None or not self.behind:
            return 0
        now = asyncio.get_running_loop().time()
        if now < self._next_catch_up and not force:
            return 0
        self._next_catch_up = now + CATCH_UP_EVERY_S
        applied = 0
        pending = self.journal.pending()
        for side in ("pg", "kv"):
            for entry in (e for e in pending if e.failed == side):
                change = Change.from_json(entry.change)
                try:
                    if side == "pg":
                        try:
                            await within(self._pg(change), self.timeout_s, "Postgres")
                        except psycopg.errors.IntegrityError as exc:
                            # it can never land: set aside (reconcile reports the gap)
                            self.journal.done(entry, refused=str(exc).strip())
                            continue
                    else:
                        await within(
                            kvexec.apply_async(self.kv, kvplan.commands(change)),
                            self.timeout_s,
                            "KV",
                        )
                except (psycopg.Error, PoolTimeout, OSError, TimeoutError, redis.RedisError):
                    break
                self.journal.done(entry)
                applied += 1
            else:
                self.behind.discard(side)
        return applied

    async def apply(self, change: Change, mode: WriteMode) -> None:
        if not change.steps:
            return
        pg_error: Exception | None = None
        kv_error: Exception | None = None
        committing: list[bool] = []  # set once COMMIT is on its way
        fenced = set() if "replay-out-of-order" in self.defects else self.behind
        if mode == "dual" and "pg" in fenced:
            pg_error = StoresDownError("Postgres is behind the journal; queued after it")
        elif mode in ("pg", "dual"):
            try:
                await within(self._pg(change, committing), self.timeout_s, "Postgres")
            except psycopg.errors.IntegrityError as exc:
                # Postgres refused the data (a handle that is not a user, say): the
                # source of truth said no, so KV is not written either.
                raise WriteError(f"Postgres refused the write: {str(exc).strip()}") from exc
            except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
                if mode == "pg":
                    raise
                pg_error = exc
                if "kv-skipped-when-pg-fails" in self.defects:
                    self.stats.add(None)
                    return
        if mode == "dual" and "kv" in fenced:
            kv_error = StoresDownError("KV is behind the journal; queued after it")
        elif mode in ("kv", "dual"):
            try:
                await within(
                    kvexec.apply_async(self.kv, kvplan.commands(change)), self.timeout_s, "KV"
                )
            except (redis.RedisError, OSError, TimeoutError) as exc:
                if mode == "kv":
                    raise
                kv_error = exc
        if pg_error is not None and kv_error is not None:
            self.stats.add("both")
            if committing and self.journal is not None:
                # Postgres failed while committing, so it may hold the write (a
                # lost reply hides a commit): KV must get it too. Both sides go to
                # the journal; the caller's retry (same id) finds the work done.
                for side in ("pg", "kv"):
                    self.journal.record(change.to_json(), failed=side, error="both failed")
                    self.behind.add(side)
            raise StoresDownError(f"both stores failed: Postgres {pg_error}; KV {kv_error}")
        misses: tuple[tuple[Side, Exception | None], ...] = (("pg", pg_error), ("kv", kv_error))
        failed = None
        for side, error in misses:
            if error is not None:
                failed = side
                if self.journal is None:
                    raise StoresDownError(f"{side} failed and no journal is configured: {error}")
                self.journal.record(change.to_json(), failed=side, error=str(error))
                self.behind.add(side)
        self.stats.add(failed)

    async def _pg(self, change: Change, committing: list[bool] | None = None) -> None:
        async with self.pool.connection(timeout=self.timeout_s) as conn, conn.transaction():
            for statement, params in pg_statements(change):
                await conn.execute(statement, params)
            if committing is not None:
                committing.append(True)  # leaving the block sends COMMIT


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

    In journal order per side; a side stops at its first failure (a later entry
    must not land before an earlier one). Idempotent: a replayed write lands the
    same records again; an entry whose side is still down stays pending. ``types`` limits the
    replay to entries touching those data types.
    """
    out = Replayed()
    stuck: set[str] = set()  # a side stops at its first failure, so order holds
    for entry in journal.pending():
        if types is not None and not types & set(entry.type_ids):
            continue
        if entry.failed in stuck:
            out.failed.append((entry, f"after an earlier {entry.failed} entry that failed"))
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
            stuck.add(entry.failed)
            continue
        journal.done(entry)
        out.applied.append(entry)
    return out
