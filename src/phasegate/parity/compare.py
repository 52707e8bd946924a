"""The comparison pass: both stores compared record by record, bucketed by key hash.

1. Read: the keyspace streams once (SCAN, batched reads), noting what every key
   is (mapped variant, KV-only, unmapped, wrong TYPE) and splitting each mapped
   entry by record key (:mod:`phasegate.parity.buckets`) into one of
   :data:`~phasegate.parity.digest.DIGEST_BUCKETS` buckets, spilled to one file
   per work bucket. Meanwhile Postgres digests its own rows per bucket,
   server-side (:mod:`phasegate.parity.digest`): no row crosses the wire.
2. Digest: worker processes (the second core; the decoders are the mappings'
   own) decode a work bucket at a time and digest its records the same way.
   A bucket whose digests agree holds the same records on both sides: its
   records are counted as compared (sample, last 24 hours, everything). The
   records of the other buckets are kept for step 3. With decode memos
   (:mod:`phasegate.parity.memo`), a bucket whose KV entries are byte for byte
   those of a run that decoded it, and whose digest Postgres still matches, is
   counted from its memo without being decoded.
3. Diff: only the rows of buckets whose digests differ are fetched, and the
   workers compare those buckets field by field: what is missing, extra or
   different, with the first examples and the diagnosis groups.

Memory is one work bucket per worker plus a read batch; the spill folder is
removed at the end. Equal stores cost a Redis read and a server-side scan; each
difference costs the fetch of its bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis

from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping
from phasegate.parity.buckets import WHOLE, Share, row_bucket
from phasegate.parity.decode import RECENT, PgDigests, Scope, in_sample
from phasegate.parity.digest import DIGEST_BUCKETS, differing, digest_query, rows_query
from phasegate.parity.judge import run_job
from phasegate.parity.memo import Memos, memos_for
from phasegate.parity.read import read_kv
from phasegate.parity.spill import Folder, Spill, work_buckets
from phasegate.parity.tally import Comparison, KeyspaceFacts, TypeComparison
from phasegate.parity.workers import run_jobs
from phasegate.servers.process import Workspace
from phasegate.stores import DEFAULT_TIMEOUT_S, Watchdog, kv_errors, kv_params

__all__ = ["RECENT", "Scope", "compare", "in_sample"]

# A slow server's digest rate, for the watchdog's allowance (this 2-core VM digests
# about 56 MB/s idle: 1.3 GB of messages at 10x 12mo in 23 s).
DIGEST_BYTES_PER_S = 10e6


def compare(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: Iterable[str],
    scope: Scope,
    *,
    buckets: int | None = None,
    workers: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    share: Share = WHOLE,
    memo_dir: Path | None = None,
) -> Comparison:
    """Compare every record of ``types`` in both stores, ``buckets`` work buckets at a time
    (by default as many as the keyspace's size needs, :func:`work_buckets_for`);
    with ``share``, only the records, rows and keys of that share (see :class:`Share`).

    ``workers`` processes read and judge the work buckets; 0: this process does.

    Each Postgres query runs under a :class:`~phasegate.stores.Watchdog`: a
    table that answers nothing for ``timeout_s`` (plus the time its digest
    needs) fails the pass naming it. With ``memo_dir``, the decode memos there
    skip decoding the buckets that are unchanged and equal (:mod:`.memo`).
    """
    types = tuple(types)
    # A workspace (not a bare temp dir) so a run killed with -9 is swept by the next.
    workspace = Workspace.create("compare", None)
    try:
        if buckets is None:
            buckets = work_buckets_for(kv)
        memos = None if memo_dir is None else memos_for(memo_dir, kv, buckets, share)
        folder = spill_folder(workspace.path, buckets, workers, kv, memos)
        facts, pg_digests = read_both(
            kv, pg, types, folder, timeout_s, share=share, hashing=memos is not None
        )
        memos = None if memos is None else memos.with_raw(facts.raw)
        totals = {t: TypeComparison(t) for t in types}
        kv_digests: dict[str, dict[int, tuple[int, int, int]]] = {t: {} for t in types}
        # workers=0: this process reads and judges (a list of one job, run here).
        run = run_jobs if workers else (lambda jobs: [run_job(job) for job in jobs])
        lanes = max(1, workers)
        shares = [list(range(buckets))[w::lanes] for w in range(lanes)]
        digesting = [("digest", folder, mine, types, scope, pg_digests, memos) for mine in shares]
        for part, digests in run(digesting):
            for type_id, comparison in part.items():
                totals[type_id].add(comparison)
                kv_digests[type_id].update(digests[type_id])
        if any(totals[t].findings["misrouted"] for t in types):
            folder.drop_route_memos()  # a wrong route is not kept for the next pass
        wanted = {t: differing(kv_digests[t], pg_digests[t]) for t in types}
        for type_id in types:
            _count_equal_rows(totals[type_id], kv_digests[type_id], pg_digests[type_id], wanted)
        pg_spill = Spill([folder.pg(w) for w in range(buckets)])
        _spill_tables(pg, {t: b for t, b in wanted.items() if b}, pg_spill, timeout_s, share)
        to_diff = [
            w
            for w in range(buckets)
            if any(p.exists() and p.stat().st_size for p in (folder.kept(w), folder.pg(w)))
        ]
        diffing = [("diff", folder, to_diff[w::lanes], types, scope) for w in range(lanes)]
        for part in run([job for job in diffing if job[2]]):
            for type_id, comparison in part.items():
                totals[type_id].add(comparison)
    finally:
        workspace.remove()
    return Comparison(facts, totals)


def spill_folder(
    path: Path, work: int, workers: int, kv: redis.Redis, memos: Memos | None
) -> Folder:
    """The pass's spill folder. Where an earlier run left memos for every work bucket,
    the readers spill where each entry is, not its value, and the workers read
    again the keys of the few buckets the memos do not answer (unless the client
    cannot be opened in another process): writing values nobody reads was a third
    of a memoized pass. With memos, the readers keep route memos beside them
    (:mod:`.routes`)."""
    reread = kv_params(kv) if memos is not None and memos.complete(work) else None
    routes = None if memos is None else memos.folder / f"routes-{memos.tag}"
    return Folder(path, work, workers, reread, routes)


def work_buckets_for(kv: redis.Redis) -> int:
    """The work buckets for this keyspace's size (:func:`work_buckets` of DBSIZE)."""
    with kv_errors(kv, "DBSIZE"):  # a store that stops answering: the project's error
        size = kv.dbsize()
    return work_buckets(size if isinstance(size, int) else 0)


def _count_equal_rows(
    total: TypeComparison,
    kv: dict[int, tuple[int, int, int]],
    pg: dict[int, tuple[int, int, int]] | None,
    wanted: dict[str, set[int]],
) -> None:
    """Rows of the buckets that agree (never fetched) count from their digests."""
    total.digest_buckets = len(kv.keys() | (pg or {}).keys())
    total.fetched_buckets = len(wanted[total.type_id])
    if pg is not None:
        total.pg_rows += sum(v[0] for b, v in pg.items() if b not in wanted[total.type_id])


def read_both(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: tuple[str, ...],
    folder: Folder,
    timeout_s: float,
    *,
    on_keys: Callable[[int], None] | None = None,
    share: Share = WHOLE,
    hashing: bool = False,
) -> tuple[KeyspaceFacts, PgDigests]:
    """Step 1: the keyspace read and spilled into ``folder`` while Postgres digests
    its own tables (on its own CPU, beside the read)."""
    with ThreadPoolExecutor(max_workers=1) as side:
        pg_done = side.submit(_pg_digests, pg, types, timeout_s, share)
        try:
            facts = read_kv(kv, types, folder, on_keys, share, hashing=hashing)
        finally:
            pg_digests = pg_done.result()
    return facts, pg_digests


def _pg_digests(
    pg: psycopg.Connection[tuple[object, ...]],
    types: tuple[str, ...],
    timeout_s: float,
    share: Share,
) -> PgDigests:
    """Each table's bucket digests (of ``share``), made by Postgres (None where it
    cannot make them)."""
    out: PgDigests = {}
    for type_id in types:
        mapping = MAPPINGS[type_id]
        query = digest_query(mapping, DIGEST_BUCKETS, (share.index, share.count))
        if query is None:
            out[type_id] = None
            continue
        what = f"streaming the rows of {mapping.table} as bucket digests"
        with Watchdog(pg, timeout_s, what) as watchdog, pg.transaction():
            # The digest answers only when the whole table is read: allow for its size,
            # from its bytes on disk (reltuples is -1 until the table is first analyzed:
            # a freshly loaded 5-million-row table then got no allowance and timed out).
            row = pg.execute("SELECT pg_relation_size(%s::regclass)", (mapping.table,)).fetchone()
            size = float(str(row[0])) if row else 0.0
            watchdog.timeout_s = timeout_s + size / DIGEST_BYTES_PER_S
            digests = {}
            for bucket, rows, first, second in pg.execute(query):
                digests[int(str(bucket))] = (int(str(rows)), int(str(first)), int(str(second)))
                watchdog.kick()
        out[type_id] = digests
    return out


def _spill_tables(
    pg: psycopg.Connection[tuple[object, ...]],
    wanted: dict[str, set[int]],
    spill: Spill,
    timeout_s: float,
    share: Share,
) -> None:
    """The rows of the buckets whose digests differ, spilled by work bucket."""
    try:
        for type_id, buckets in wanted.items():
            mapping = MAPPINGS[type_id]
            with Watchdog(pg, timeout_s, f"streaming the rows of {mapping.table}") as watchdog:
                _spill_pg(pg, mapping, buckets, spill, watchdog, share=share)
    finally:
        spill.close()


def _spill_pg(
    pg: psycopg.Connection[tuple[object, ...]],
    mapping: Mapping,
    buckets: set[int],
    spill: Spill,
    watchdog: Watchdog,
    *,
    share: Share,
) -> None:
    """Without buckets in SQL every row is read: only the share's are kept."""
    names = mapping.column_names
    positions = [names.index(c) for c in mapping.bucket_on]
    work = len(spill.paths)
    query = rows_query(mapping, DIGEST_BUCKETS, buckets)
    with pg.transaction(), pg.cursor(name=f"phasegate_full_{mapping.table}", binary=True) as cur:
        cur.itersize = 5000
        for row in cur.execute(query):
            bucket = row_bucket(positions, row, DIGEST_BUCKETS)
            if share.owns(bucket):
                spill.put(bucket % work, ("pg", mapping.type_id, tuple(row)))
            watchdog.kick()
