"""The full diff, bucketed by record key so memory stays bounded at any scale.

Pass 1 streams the keyspace (SCAN, batched reads) and every table (a
server-side cursor) once, splitting each KV entry by record key
(:mod:`phasegate.parity.buckets`) and spilling entries and rows to one file per
bucket. Pass 2 decodes and compares bucket by bucket, in worker processes (the
decoders are the mappings' own, unchanged), and keeps only counts and the
first differences. Memory is one bucket per worker plus a read batch; the
spill files live in a temporary folder removed at the end.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import redis
from psycopg import sql

from phasegate.keyspace import KvEntry, read_entries
from phasegate.mappings import MAPPINGS, classify
from phasegate.mappings.base import Mapping, VariantEntry
from phasegate.parity.buckets import bucket_of, split
from phasegate.parity.diff import diff_records, show_key
from phasegate.parity.postgres import AllowList

EXAMPLES = 10
_CHUNK = 1000


@dataclass
class TypeDiff:
    """The full diff of one type: sizes, the number of differences, the first few."""

    type_id: str
    kv_records: int = 0
    pg_rows: int = 0
    compared: int = 0
    differences: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: TypeDiff) -> None:
        self.kv_records += other.kv_records
        self.pg_rows += other.pg_rows
        self.compared += other.compared
        self.differences += other.differences
        self.examples.extend(other.examples[: max(0, EXAMPLES - len(self.examples))])


class _Spill:
    """Per-bucket files of pickled chunks: ("kv", type, variant, entry) / ("pg", type, row)."""

    def __init__(self, folder: Path, buckets: int, source: str) -> None:
        self.paths = [folder / f"{source}-{b:03d}.pickle" for b in range(buckets)]
        self.files: list[IO[bytes]] = [p.open("wb") for p in self.paths]
        self.pending: list[list[tuple[Any, ...]]] = [[] for _ in range(buckets)]

    def put(self, bucket: int, item: tuple[Any, ...]) -> None:
        pending = self.pending[bucket]
        pending.append(item)
        if len(pending) >= _CHUNK:
            pickle.dump(pending, self.files[bucket], protocol=pickle.HIGHEST_PROTOCOL)
            pending.clear()

    def close(self) -> None:
        for bucket, pending in enumerate(self.pending):
            if pending:
                pickle.dump(pending, self.files[bucket], protocol=pickle.HIGHEST_PROTOCOL)
            self.files[bucket].close()


def _read_chunks(path: Path) -> Iterator[tuple[Any, ...]]:
    with path.open("rb") as fh:
        while True:
            try:
                chunk: list[tuple[Any, ...]] = pickle.load(fh)
            except EOFError:
                return
            yield from chunk


def full_diff(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: Iterable[str],
    *,
    buckets: int = 16,
    workers: int = 2,
    allow: AllowList | None = None,
) -> dict[str, TypeDiff]:
    """Compare every record of ``types`` in both stores, a bucket at a time."""
    types = tuple(types)
    allow = allow or AllowList()
    with tempfile.TemporaryDirectory(prefix="phasegate-full-") as folder:
        kv_spill = _Spill(Path(folder), buckets, "kv")
        pg_spill = _Spill(Path(folder), buckets, "pg")
        # Postgres streams beside Redis: both mostly wait on their sockets.
        with ThreadPoolExecutor(max_workers=1) as side:
            pg_done = side.submit(_spill_tables, pg, types, buckets, pg_spill)
            try:
                _spill_kv(kv, types, buckets, kv_spill)
            finally:
                kv_spill.close()
                pg_done.result()
        totals = {t: TypeDiff(t) for t in types}
        paths = [f"{k}\t{p}" for k, p in zip(kv_spill.paths, pg_spill.paths, strict=True)]
        shares = [paths[w::workers] for w in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(lambda share: _worker(share, types, allow), shares):
                for type_id, diff in part.items():
                    totals[type_id].add(diff)
    return totals


def _worker(paths: list[str], types: tuple[str, ...], allow: AllowList) -> dict[str, TypeDiff]:
    """Compare some buckets in a child process (a real second core, no shared GIL)."""
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.parity.full_worker"],
        input=pickle.dumps((paths, types, allow)),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"full-diff worker failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    result: dict[str, TypeDiff] = pickle.loads(done.stdout)
    return result


def compare_buckets(
    paths: list[str], types: tuple[str, ...], allow: AllowList
) -> dict[str, TypeDiff]:
    """Compare several buckets and add their results up."""
    totals = {t: TypeDiff(t) for t in types}
    for path in paths:
        for type_id, diff in compare_bucket(path, types, allow).items():
            totals[type_id].add(diff)
    return totals


def _spill_kv(kv: redis.Redis, types: tuple[str, ...], buckets: int, spill: _Spill) -> None:
    wanted = set(types)
    for type_id in types:
        wanted.update(MAPPINGS[type_id].borrows)

    def want(key: str, rtype: str) -> bool:
        where = classify(key, rtype)
        return where.kind == "mapped" and where.type_id in wanted

    for entry in read_entries(kv, want=want):
        if entry.value is None:
            continue
        where = classify(entry.key, entry.rtype)
        assert where.type_id is not None
        assert where.variant is not None
        for bucket, part in split(where.type_id, where.variant, entry, buckets):
            spill.put(
                bucket, ("kv", where.type_id, where.variant, part.key, part.rtype, part.value)
            )


def _spill_tables(
    pg: psycopg.Connection[tuple[object, ...]],
    types: tuple[str, ...],
    buckets: int,
    spill: _Spill,
) -> None:
    try:
        for type_id in types:
            _spill_pg(pg, MAPPINGS[type_id], buckets, spill)
    finally:
        spill.close()


def _spill_pg(
    pg: psycopg.Connection[tuple[object, ...]], mapping: Mapping, buckets: int, spill: _Spill
) -> None:
    names = mapping.column_names
    if mapping.type_id == "messages":
        frm, to = names.index("from_user"), names.index("to_user")
    else:
        first = names.index(mapping.key_columns[0])
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    query = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(mapping.table))
    with pg.transaction(), pg.cursor(name=f"phasegate_full_{mapping.table}", binary=True) as cur:
        cur.itersize = 5000
        for row in cur.execute(query):
            if mapping.type_id == "messages":
                key = "\x1f".join(sorted((str(row[frm]), str(row[to]))))
            else:
                key = str(row[first])
            spill.put(bucket_of(key, buckets), ("pg", mapping.type_id, tuple(row)))


def compare_bucket(paths: str, types: tuple[str, ...], allow: AllowList) -> dict[str, TypeDiff]:
    """Decode and compare one bucket, given as "<kv file>\t<pg file>" (in a worker)."""
    entries: dict[str, list[VariantEntry]] = defaultdict(list)
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    kv_file, pg_file = paths.split("\t")
    for item in (*_read_chunks(Path(kv_file)), *_read_chunks(Path(pg_file))):
        if item[0] == "kv":
            _kind, type_id, variant, key, rtype, value = item
            entries[type_id].append((variant, KvEntry(key, rtype, value)))
        else:
            rows[item[1]].append(item[2])
    out: dict[str, TypeDiff] = {}
    for type_id in types:
        mapping = MAPPINGS[type_id]
        mine = list(entries.get(type_id, []))
        for borrowed in mapping.borrows:
            mine.extend(entries.get(borrowed, []))
        decoded = mapping.decode(mine)
        pg = {}
        for row in rows.get(type_id, []):
            record = mapping.from_row(row)
            pg[mapping.record_key(record)] = record
        keys = sorted(decoded.records.keys() | pg.keys(), key=show_key)
        allowed = allow.for_type(type_id, pg)
        result = TypeDiff(type_id, len(decoded.records), len(pg), len(keys))
        for diff in diff_records(
            type_id, decoded.records, pg, keys, sources=decoded.sources, allowed_pg_only=allowed
        ):
            result.differences += 1
            if len(result.examples) < EXAMPLES:
                result.examples.append(str(diff))
        out[type_id] = result
    return out
