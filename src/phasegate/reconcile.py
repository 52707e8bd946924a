"""``phasegate reconcile``: close every gap between the stores, then prove it closed.

1. Replay the dual-write journal (each pending entry to the side that missed it).
2. A full comparison pass (the Phase A engine, :func:`~phasegate.parity.compare.compare`)
   collecting every record that differs.
3. Repair: a KV record missing or different in Postgres is upserted through the
   mapping (``INSERT ... ON CONFLICT DO UPDATE``), users first so references hold.
   A Postgres-only row is reported; if the journal shows KV missed a write of
   it, it is written to KV through :mod:`~phasegate.dualwrite.kvplan`.
4. Re-verify: a second pass; every key touched must now agree.

Idempotent: a second run finds nothing and says so. ``dry_run`` replays and
repairs nothing, and says what it would do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from phasegate.dualwrite import kvexec, kvplan
from phasegate.dualwrite.change import Change, key_where, label, select_sql, upsert_sql
from phasegate.dualwrite.writer import replay_journal
from phasegate.journal import Journal
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import RecordKey
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList
from phasegate.parity.tally import Comparison

PgConn = psycopg.Connection[tuple[object, ...]]
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Reconciled:
    """What one reconcile run found and did, per data type."""

    types: tuple[str, ...]
    dry_run: bool
    journal_applied: list[str] = field(default_factory=list)  # entry ids
    journal_failed: list[str] = field(default_factory=list)  # "entry id: why"
    repaired: dict[str, list[str]] = field(default_factory=dict)  # KV -> Postgres
    repair_failed: dict[str, list[str]] = field(default_factory=dict)
    written_to_kv: dict[str, list[str]] = field(default_factory=dict)  # Postgres -> KV
    pg_only: dict[str, list[str]] = field(default_factory=dict)  # reported, left alone
    still_different: dict[str, list[str]] = field(default_factory=dict)  # after re-verify
    differences_before: dict[str, int] = field(default_factory=dict)
    differences_after: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def touched(self) -> int:
        return (
            len(self.journal_applied)
            + sum(map(len, self.repaired.values()))
            + sum(map(len, self.written_to_kv.values()))
        )

    @property
    def closed(self) -> bool:
        """Every gap it could close is closed: nothing failed, nothing still differs."""
        return not (
            self.journal_failed
            or any(self.repair_failed.values())
            or any(self.still_different.values())
        )

    def verdict(self) -> str:
        if self.dry_run:
            return f"dry run: would replay {len(self.journal_applied)} journal entries, " + (
                f"repair {sum(map(len, self.repaired.values()))} records in Postgres, "
                f"write {sum(map(len, self.written_to_kv.values()))} to KV"
            )
        left = sum(map(len, self.pg_only.values()))
        if self.touched == 0 and self.closed:
            if left:
                return f"nothing to repair; {left} Postgres-only rows reported, left alone"
            return "nothing to repair: the stores agree"
        return (
            f"replayed {len(self.journal_applied)} journal entries, repaired "
            f"{sum(map(len, self.repaired.values()))} records in Postgres, wrote "
            f"{sum(map(len, self.written_to_kv.values()))} to KV; "
            + ("every touched key now agrees" if self.closed else "NOT closed (see below)")
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "types": list(self.types),
            "dry_run": self.dry_run,
            "verdict": self.verdict(),
            "closed": self.closed,
            "seconds": round(self.seconds, 3),
            "journal_applied": len(self.journal_applied),
            "journal_failed": self.journal_failed,
            "differences_before": self.differences_before,
            "differences_after": self.differences_after,
            "repaired": self.repaired,
            "repair_failed": self.repair_failed,
            "written_to_kv": self.written_to_kv,
            "pg_only": self.pg_only,
            "still_different": self.still_different,
        }


def _differences(comparison: Comparison) -> dict[str, int]:
    return {t: c.differences["full"].count for t, c in comparison.types.items()}


def reconcile(
    kv: redis.Redis,
    pg: PgConn,
    journal: Journal | None,
    types: Iterable[str] = tuple(MAPPINGS),
    *,
    dry_run: bool = False,
    allow: AllowList | None = None,
    progress: Progress | None = None,
) -> Reconciled:
    started = time.monotonic()
    types = tuple(t for t in MAPPINGS if t in set(types))
    out = Reconciled(types, dry_run)
    note = progress or (lambda stage, done, total: None)
    allow = allow or AllowList()
    kv_missed: set[str] = set()
    if journal is not None:
        pending = [e for e in journal.pending() if set(e.type_ids) & set(types)]
        note("journal", 0, len(pending))
        replayed = replay_journal(journal, kv, pg, types=set(types), dry_run=dry_run)
        out.journal_applied = [e.id for e in replayed.applied]
        out.journal_failed = [
            f"{e.id} ({e.op}, {e.failed} missed): {why}" for e, why in replayed.failed
        ]
        note("journal", len(pending), len(pending))
        kv_missed = {lab for e in journal.entries() if e.failed == "kv" for lab in e.labels}
    note("compare", 0, 1)
    scope = Scope(0, 100.0, datetime.now(UTC), allow, collect=True)
    before = compare(kv, pg, types, scope)
    note("compare", 1, 1)
    out.differences_before = _differences(before)
    todo = sum(len(c.repairs) + len(c.pg_only) for c in before.types.values())
    done = 0
    note("repair", 0, todo)
    for type_id in types:
        mapping = MAPPINGS[type_id]
        found = before.types[type_id]
        repaired = out.repaired.setdefault(type_id, [])
        failed = out.repair_failed.setdefault(type_id, [])
        # By name: the report lists them (and they are written) in one order, whatever
        # order the pass's buckets found them in.
        named = sorted(
            (label(type_id, mapping.record_key(r)), i) for i, r in enumerate(found.repairs)
        )
        for name, i in named:
            record = found.repairs[i]
            done += 1
            if dry_run:
                repaired.append(name)
                continue
            try:
                with pg.transaction():
                    pg.execute(upsert_sql(mapping), mapping.to_row(record))
            except psycopg.Error as exc:
                failed.append(f"{name}: {str(exc).strip().splitlines()[0]}")
            else:
                repaired.append(name)
            note("repair", done, todo)
        for name, key in sorted((label(type_id, k), k) for k in found.pg_only):
            done += 1
            if name in kv_missed:
                if not dry_run:
                    kvexec.apply(kv, kvplan.commands(_rows_change(pg, type_id, key)))
                out.written_to_kv.setdefault(type_id, []).append(name)
            else:
                out.pg_only.setdefault(type_id, []).append(name)
            note("repair", done, todo)
    if dry_run or out.touched == 0:
        out.differences_after = out.differences_before
    else:
        note("re-verify", 0, 1)
        after = compare(kv, pg, types, scope)
        note("re-verify", 1, 1)
        out.differences_after = _differences(after)
        touched = {
            n for names in (*out.repaired.values(), *out.written_to_kv.values()) for n in names
        }
        for type_id, found in after.types.items():
            left = [label(type_id, MAPPINGS[type_id].record_key(r)) for r in found.repairs]
            left += [label(type_id, k) for k in found.pg_only]
            still = sorted(n for n in left if n in touched)
            if still:
                out.still_different[type_id] = still
    out.seconds = time.monotonic() - started
    return out


def _rows_change(pg: PgConn, type_id: str, key: RecordKey) -> Change:
    """A Postgres row as a KV put; a badge goes with its streak (they share a key)."""
    change = Change("reconcile")
    if type_id == "achievements":
        for t, where in (("streaks", "handle = %s"), ("achievements", "handle = %s")):
            for record in _select(pg, t, where, (key[0],)):
                change.put(t, record)
        return change
    for record in _select(pg, type_id, key_where(MAPPINGS[type_id]), tuple(key)):
        change.put(type_id, record)
    if type_id == "streaks":
        for record in _select(pg, "achievements", "handle = %s", (key[0],)):
            change.put("achievements", record)
    return change


def _select(pg: PgConn, type_id: str, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    mapping = MAPPINGS[type_id]
    return [mapping.from_row(row) for row in pg.execute(select_sql(mapping, where), params)]
