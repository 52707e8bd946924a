"""The comparison pass: both stores compared record by record, bucketed by key hash.

Pass 1 streams the keyspace (SCAN, batched reads) once, noting what every key
is (mapped variant, KV-only, unmapped, wrong TYPE) and splitting each mapped
entry by record key (:mod:`phasegate.parity.buckets`) into one spill file per
bucket; every table streams beside it (a binary server-side cursor) into spill
files of its own. Pass 2 decodes and compares bucket by bucket in worker
processes (the second core; the decoders are the mappings' own) and returns
only tallies: counts and the first examples of what is missing, extra or
different, for the sample, the last 24 hours and everything. Memory is one
bucket per worker plus a read batch; the spill folder is removed at the end.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
import redis
from psycopg import sql

from phasegate.findings import Severity
from phasegate.inventory import classified_entries, key_finding
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS, variant_name
from phasegate.mappings.base import (
    Decoded,
    Mapping,
    Record,
    RecordKey,
    VariantEntry,
    holds_records,
)
from phasegate.parity.buckets import row_bucket, split
from phasegate.parity.diff import (
    Diff,
    ExtraInPg,
    MissingInPg,
    diff_records,
    guess_cause,
    show_key,
)
from phasegate.parity.postgres import AllowList
from phasegate.parity.tally import Comparison, KeyspaceFacts, Tally, TypeComparison
from phasegate.servers.process import Workspace
from phasegate.show import shown
from phasegate.stores import DEFAULT_TIMEOUT_S, Watchdog

RECENT = timedelta(hours=24)
# Findings that stand for a KV record the backfill could not carry over.
LOST_KINDS = frozenset({"undecodable", "rejected_by_postgres"})
_CHUNK = 1000


@dataclass(frozen=True)
class Scope:
    """What the workers need to know besides the data."""

    seed: int
    sample_rate: float
    now: datetime
    allow: AllowList
    collect: bool = False  # keep every differing record and Postgres-only key (reconcile)


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


def compare(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: Iterable[str],
    scope: Scope,
    *,
    buckets: int = 16,
    workers: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Comparison:
    """Compare every record of ``types`` in both stores, a bucket at a time.

    Each Postgres stream runs under a :class:`~phasegate.stores.Watchdog`: a
    table that sends no row for ``timeout_s`` fails the pass naming it.
    """
    types = tuple(types)
    facts = KeyspaceFacts()
    # A workspace (not a bare temp dir) so a run killed with -9 is swept by the next.
    workspace = Workspace.create("compare", None)
    try:
        folder = workspace.path
        kv_spill = _Spill(folder, buckets, "kv")
        pg_spill = _Spill(folder, buckets, "pg")
        # Postgres streams beside Redis: both mostly wait on their sockets.
        with ThreadPoolExecutor(max_workers=1) as side:
            pg_done = side.submit(_spill_tables, pg, types, buckets, pg_spill, timeout_s)
            try:
                _spill_kv(kv, types, buckets, kv_spill, facts)
            finally:
                kv_spill.close()
                pg_done.result()
        totals = {t: TypeComparison(t) for t in types}
        paths = [f"{k}\t{p}" for k, p in zip(kv_spill.paths, pg_spill.paths, strict=True)]
        shares = [paths[w::workers] for w in range(workers)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(lambda share: _worker(share, types, scope), shares):
                for type_id, comparison in part.items():
                    totals[type_id].add(comparison)
    finally:
        workspace.remove()
    return Comparison(facts, totals)


def _worker(paths: list[str], types: tuple[str, ...], scope: Scope) -> dict[str, TypeComparison]:
    """Compare some buckets in a child process (a real second core, no shared GIL)."""
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.parity.compare_worker"],
        input=pickle.dumps((paths, types, scope)),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"comparison worker failed ({done.returncode}): {lines[-1]}")
    result: dict[str, TypeComparison] = pickle.loads(done.stdout)
    return result


def compare_buckets(
    paths: list[str], types: tuple[str, ...], scope: Scope
) -> dict[str, TypeComparison]:
    """Compare several buckets and add their results up."""
    totals = {t: TypeComparison(t) for t in types}
    for path in paths:
        for type_id, comparison in compare_bucket(path, types, scope).items():
            totals[type_id].add(comparison)
    return totals


def _spill_kv(
    kv: redis.Redis, types: tuple[str, ...], buckets: int, spill: _Spill, facts: KeyspaceFacts
) -> None:
    wanted = set(types)
    for type_id in types:
        wanted.update(MAPPINGS[type_id].borrows)
    for entry, where in classified_entries(kv, wanted):
        facts.total_keys += 1
        finding = key_finding(entry, where)
        if where.kind == "kv_only":
            facts.kv_only[entry.key.split(":", 1)[0]] += 1
        elif finding is not None and where.kind == "unmapped":
            facts.unmapped.note(f"{finding.key}: {finding.detail}")
        elif finding is not None:
            facts.wrong_type.setdefault(finding.type_id, Tally()).note(str(finding))
        else:
            assert where.type_id is not None
            assert where.variant is not None
            facts.keys.setdefault(where.type_id, Counter())[where.variant] += 1
            if entry.value is None:
                continue
            for bucket, part in split(MAPPINGS[where.type_id], where.variant, entry, buckets):
                spill.put(
                    bucket, ("kv", where.type_id, where.variant, part.key, part.rtype, part.value)
                )


def _spill_tables(
    pg: psycopg.Connection[tuple[object, ...]],
    types: tuple[str, ...],
    buckets: int,
    spill: _Spill,
    timeout_s: float,
) -> None:
    try:
        for type_id in types:
            table = MAPPINGS[type_id].table
            with Watchdog(pg, timeout_s, f"streaming the rows of {table}") as watchdog:
                _spill_pg(pg, MAPPINGS[type_id], buckets, spill, watchdog)
    finally:
        spill.close()


def _spill_pg(
    pg: psycopg.Connection[tuple[object, ...]],
    mapping: Mapping,
    buckets: int,
    spill: _Spill,
    watchdog: Watchdog,
) -> None:
    names = mapping.column_names
    positions = [names.index(c) for c in mapping.bucket_on]
    cols = sql.SQL(", ").join(map(sql.Identifier, names))
    query = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(mapping.table))
    with pg.transaction(), pg.cursor(name=f"phasegate_full_{mapping.table}", binary=True) as cur:
        cur.itersize = 5000
        for row in cur.execute(query):
            spill.put(row_bucket(positions, row, buckets), ("pg", mapping.type_id, tuple(row)))
            watchdog.kick()


def compare_bucket(paths: str, types: tuple[str, ...], scope: Scope) -> dict[str, TypeComparison]:
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
    out: dict[str, TypeComparison] = {}
    for type_id in types:
        mapping = MAPPINGS[type_id]
        mine = list(entries.get(type_id, []))
        for borrowed in mapping.borrows:
            mine.extend(entries.get(borrowed, []))
        pg = {}
        for row in rows.get(type_id, []):
            record = mapping.from_row(row)
            pg[mapping.record_key(record)] = record
        out[type_id] = _compare_type(mapping, _decode_naming_the_key(mapping, mine), pg, scope)
    return out


def _decode_naming_the_key(mapping: Mapping, entries: list[VariantEntry]) -> Decoded:
    """Decode; if the decoder itself breaks (a bug, never bad data: bad data is a
    finding), find the entry it breaks on and name it."""
    try:
        return mapping.decode(entries)
    except Exception as exc:
        for variant, entry in entries:
            try:
                mapping.decode([(variant, entry)])
            except Exception:
                raise RuntimeError(
                    f"decoding {mapping.type_id} broke on key {entry.key} ({variant}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        raise


def _compare_type(
    mapping: Mapping, decoded: Decoded, pg: dict[RecordKey, Record], scope: Scope
) -> TypeComparison:
    type_id = mapping.type_id
    kv = decoded.records
    allowed = scope.allow.for_type(type_id, pg)
    result = TypeComparison(type_id, len(kv), len(pg), len(allowed & pg.keys()))
    why = result.diagnosis
    variants = {key: variant_name(type_id, source) for key, source in decoded.sources.items()}
    why.variants.update(variants.values())
    for finding in decoded.findings:
        result.findings[finding.kind] += 1
        if finding.severity == Severity.ERROR:
            result.errors.note(str(finding))
            if finding.kind in LOST_KINDS and holds_records(mapping, finding.key):
                result.undecodable += 1
                lost = variant_name(type_id, finding.key)
                why.seen(lost)
                why.note("counts", lost, "", "missing in Postgres")
                result.missing.note(
                    f"missing in Postgres: {finding.key} could not be decoded ({finding.detail})"
                )
    cutoff = scope.now - RECENT
    column = mapping.recency_column
    for key in sorted(kv.keys() | pg.keys(), key=show_key):
        mine, theirs = kv.get(key), pg.get(key)
        subsets = ["full"]
        if in_sample(scope.seed, key, scope.sample_rate):
            subsets.append("sample")
        if column is not None and (
            _recent(mine, column, cutoff) or _recent(theirs, column, cutoff)
        ):
            subsets.append("recency")
        if mine is None and key in allowed:
            continue
        diffs = list(
            diff_records(type_id, kv, pg, [key], sources=decoded.sources, allowed_pg_only=allowed)
        )
        variant = variants.get(key, "Postgres only")
        for subset in subsets:
            result.compared[subset] += 1
            for diff in diffs:
                result.differences[subset].note(str(diff))
                why.note(subset, variant, *_group(diff))
        if scope.collect and diffs:
            if mine is not None:
                result.repairs.append(mine)
            else:
                result.pg_only.append(key)
        for diff in diffs:
            if isinstance(diff, MissingInPg):
                result.missing.note(f"missing in Postgres: {show_key(key)} ({diff.kv_key})")
                why.note("counts", variant, "", "missing in Postgres")
            elif isinstance(diff, ExtraInPg):
                result.extra.note(f"extra in Postgres: {show_key(key)}")
                why.note("counts", variant, "", "extra in Postgres")
    return result


def _group(diff: Diff) -> tuple[str, str]:
    """(field, cause) of a difference, for the diagnosis: the likely cause, or the
    two values when they are few (booleans, NULL), else only that they differ."""
    if isinstance(diff, MissingInPg):
        return "", "missing in Postgres"
    if isinstance(diff, ExtraInPg):
        return "", "extra in Postgres"
    cause = diff.hint or guess_cause(diff.kv_value, diff.pg_value)
    if not cause and all(isinstance(v, bool) or v is None for v in (diff.kv_value, diff.pg_value)):
        cause = f"KV {shown(diff.kv_value)}, Postgres {shown(diff.pg_value)}"
    return diff.field, cause or "values differ"


def _recent(record: Record | None, column: str, cutoff: datetime) -> bool:
    if record is None:
        return False
    value = record.get(column)
    if isinstance(value, datetime):
        return value >= cutoff
    return isinstance(value, date) and value >= cutoff.date()


def in_sample(seed: int, key: RecordKey, rate: float) -> bool:
    """Deterministic membership: ``hash(seed, key) mod 100 < rate``, same on both stores.

    >>> in_sample(7, ("msg_1",), 100.0)
    True
    >>> 900 < sum(in_sample(7, (f"m{i}",), 10.0) for i in range(10_000)) < 1100
    True
    """
    digest = hashlib.blake2b(f"{seed}\x1f{show_key(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < rate * 100
