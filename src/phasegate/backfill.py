"""``phasegate backfill``: KV -> Postgres through the mappings, idempotent and resumable.

The backfill is the comparison pass with a load at its end, bucket by bucket:

1. Read: the keyspace streams once into spill files by work bucket (reader
   processes, :mod:`phasegate.parity.read`) while Postgres digests its own
   tables per bucket, server-side (:mod:`phasegate.parity.digest`).
2. Decode: worker processes decode a work bucket at a time and digest its
   records as Postgres digests its rows. A bucket whose digests agree is
   skipped: Postgres already holds exactly those rows (a re-run of an unchanged
   keyspace writes nothing). The rows of every other bucket are written as
   COPY text (:mod:`phasegate.parity.copytext`), sorted by record key.
3. Load, in transactions of ``batch_rows`` rows. With no foreign key between
   the tables (before ``phasegate fk add``), a work bucket is loaded as soon as
   its worker has written it, while the workers decode the rest; with them,
   type by type once every bucket is decoded, users first. Into a table empty
   at the start, ``COPY`` straight in; otherwise
   ``COPY`` into a temporary staging table, then

   * ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: new rows (exact count);
   * ``UPDATE ... FROM staging WHERE (row) IS DISTINCT FROM (staging row)``:
     changed rows only (exact count);

   and the checkpoint row of the batch. Unchanged rows of a differing bucket
   are neither locked nor rewritten.

Memory is a work bucket per worker; the parent holds bucket digests and
findings only. A run killed at any point is resumed by running it again: the
buckets it committed now agree with KV and are skipped, the rest are merged,
so the result equals an uninterrupted run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import redis

from phasegate import schema
from phasegate.backfill_load import (
    BackfillBlockedError,
    Change,
    Load,
    PgConn,
    Progress,
    TypeResult,
    gather,
    is_empty,
    load_as_decoded,
    ordered,
)
from phasegate.findings import Finding
from phasegate.findings_table import store_findings
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.parity.buckets import WHOLE
from phasegate.parity.compare import Scope, read_both, spill_folder, work_buckets_for
from phasegate.parity.judge import run_job
from phasegate.parity.memo import memos_for
from phasegate.parity.tally import KeyspaceFacts
from phasegate.parity.workers import run_jobs
from phasegate.servers.process import Workspace
from phasegate.stores import DEFAULT_TIMEOUT_S

__all__ = [
    "BackfillBlockedError",
    "BackfillResult",
    "Change",
    "Progress",
    "TypeResult",
    "backfill",
]

BATCH_ROWS = 50_000
WORKERS = 2  # reader and decoder processes; 0 reads and decodes in this process


@dataclass
class BackfillResult:
    run_id: str
    resumed: bool
    types: dict[str, TypeResult]
    keyspace: KeyspaceFacts

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.types.values())

    @property
    def findings(self) -> list[Finding]:
        """Every finding of the run: the keyspace's, then each type's."""
        out = [f for f in self.keyspace.findings if f.type_id not in self.types]
        for result in self.types.values():
            out.extend(result.findings)
        return out


def backfill(
    kv: redis.Redis,
    pg: PgConn,
    types: Iterable[str] = TYPE_IDS,
    *,
    batch_rows: int = BATCH_ROWS,
    restart: bool = False,
    progress: Progress | None = None,
    buckets: int | None = None,
    workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memo_dir: Path | None = None,
    memo_scope: Scope | None = None,
) -> BackfillResult:
    """Load ``types`` from ``kv`` into ``pg`` (schema applied); resume an unfinished run.
    ``workers`` processes read and decode (:data:`WORKERS`); 0: this process does.
    With ``memo_dir``, the decode memos there skip decoding the buckets that are
    unchanged in KV and equal in Postgres (:mod:`phasegate.parity.memo`); the memos
    it writes carry ``memo_scope``'s counts, so the Phase A gate run next with that
    seed, sample rate and allow list decodes nothing that is equal."""
    types = tuple(types)
    unknown = set(types) - set(MAPPINGS)
    if unknown:
        raise ValueError(f"unknown data types: {sorted(unknown)}")
    progress = progress or Progress()
    workers = WORKERS if workers is None else workers
    if not pg.autocommit:
        pg.commit()
        pg.autocommit = True  # each batch is its own explicit transaction
    schema.require(pg, types)
    with pg.transaction():
        pg.execute(resources.files("phasegate").joinpath("sql", "backfill_state.sql").read_bytes())
    run_id, resumed = _open_run(pg, types, restart)
    # A workspace (not a bare temp dir) so a run killed with -9 is swept by the next.
    workspace = Workspace.create("backfill", None)
    try:
        if buckets is None:
            buckets = work_buckets_for(kv)
        memos = None if memo_dir is None else memos_for(memo_dir, kv, buckets, WHOLE)
        folder = spill_folder(workspace.path, buckets, workers, kv, memos)
        facts, pg_digests = read_both(
            kv, pg, types, folder, timeout_s, on_keys=progress.keys, hashing=memos is not None
        )
        memos = None if memos is None else memos.with_raw(facts.raw)
        progress.decoding()
        shares = [list(range(buckets))[w :: max(1, workers)] for w in range(max(1, workers))]
        jobs = [("load", folder, mine, types, memo_scope, pg_digests, memos) for mine in shares]
        loads = {
            t: Load(pg, run_id, MAPPINGS[t], TypeResult(t), progress, is_empty(pg, MAPPINGS[t]))
            for t in types
        }
        if workers and not ordered(pg, types):
            parts = load_as_decoded(jobs, folder, loads, batch_rows, progress)
        else:
            parts = gather(run_jobs(jobs) if workers else map(run_job, jobs), types)
            progress.decoded()
            for type_id, load in loads.items():
                load.total = parts[type_id].written
                for w in range(buckets):
                    load.file(folder.rows(type_id, w), batch_rows)
        if any(f.kind == "misrouted" for part in parts.values() for f in part.findings):
            folder.drop_route_memos()  # a wrong route is not kept for the next run
        result = BackfillResult(run_id, resumed, {}, facts)
        for type_id, load in loads.items():
            part = parts[type_id]
            typed = result.types[type_id] = load.result
            typed.records = part.records
            typed.findings = [f for f in facts.findings if f.type_id == type_id] + part.findings
            typed.skipped_rows = part.unchanged
            typed.unchanged += part.unchanged
            store_findings(pg, run_id, type_id, typed.findings)
    finally:
        workspace.remove()
    store_findings(pg, run_id, "keyspace", [f for f in facts.findings if f.type_id not in types])
    with pg.transaction():
        pg.execute(
            "UPDATE phasegate_backfill_runs SET finished_at = %s WHERE run_id = %s",
            (datetime.now(UTC), run_id),
        )
    return result


def _open_run(pg: PgConn, types: Sequence[str], restart: bool) -> tuple[str, bool]:
    """The unfinished run for the same types, or a new one."""
    with pg.transaction():
        row = pg.execute(
            "SELECT run_id FROM phasegate_backfill_runs WHERE finished_at IS NULL "
            "AND types = %s ORDER BY started_at DESC LIMIT 1",
            (list(types),),
        ).fetchone()
        if row is not None and not restart:
            return str(row[0]), True
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
        pg.execute(
            "INSERT INTO phasegate_backfill_runs (run_id, types) VALUES (%s, %s)",
            (run_id, list(types)),
        )
    return run_id, False
