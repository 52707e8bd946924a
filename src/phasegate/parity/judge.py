"""The comparison pass's judging, done in worker processes a work bucket at a time.

Step 2 (:func:`digest_bucket`): decode a work bucket's KV entries with the
mappings' own decoders, digest every record as Postgres digests its rows
(:mod:`phasegate.parity.digest`), count the records of buckets that agree as
compared, and keep the others beside the spill. Step 3 (:func:`diff_bucket`):
compare the kept records with the fetched rows field by field. Both return
tallies only (:mod:`phasegate.parity.tally`); see :mod:`phasegate.parity.compare`
for the whole pass.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from phasegate.findings import WHOLE_KEYSPACE_KINDS, Finding, Severity
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
from phasegate.parity.buckets import record_bucket
from phasegate.parity.copytext import copy_line
from phasegate.parity.diff import (
    Diff,
    ExtraInPg,
    MissingInPg,
    diff_records,
    guess_cause,
    show_key,
)
from phasegate.parity.digest import DIGEST_BUCKETS, Digests, record_text
from phasegate.parity.postgres import AllowList
from phasegate.parity.spill import Folder, read_chunks
from phasegate.parity.tally import TypeComparison
from phasegate.show import shown

PgDigests = dict[str, dict[int, tuple[int, int, int]] | None]  # None: not made in SQL

RECENT = timedelta(hours=24)
# Findings that stand for a KV record the backfill could not carry over.
LOST_KINDS = frozenset({"undecodable", "rejected_by_postgres"})


@dataclass(frozen=True)
class Scope:
    """What the workers need to know besides the data."""

    seed: int
    sample_rate: float
    now: datetime
    allow: AllowList
    collect: bool = False  # keep every differing record and Postgres-only key (reconcile)


def answer(returncode: int, out: bytes, stderr: bytes) -> Any:
    """A worker's result, or its error raised here as it was raised there."""
    if returncode != 0 or not out:
        lines = stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"comparison worker failed ({returncode}): {lines[-1]}")
    status, result = pickle.loads(out)
    if status == "error":
        raise result
    return result


def run_job(job: tuple[Any, ...]) -> Any:
    """What a worker process does with a digest, diff or load job (see :mod:`compare_worker`)."""
    kind, folder, buckets, types, scope, *rest = job
    if kind == "load":
        parts = {t: LoadPart() for t in types}
        for w in buckets:
            for type_id, loaded in load_bucket(folder, w, types, rest[0]).items():
                parts[type_id].add(loaded)
        return parts
    totals = {t: TypeComparison(t) for t in types}
    if kind == "digest":
        digests: dict[str, dict[int, tuple[int, int, int]]] = {t: {} for t in types}
        for w in buckets:
            part, mine = digest_bucket(folder.kv_all(w), folder.kept(w), types, scope, rest[0])
            for type_id, comparison in part.items():
                totals[type_id].add(comparison)
                digests[type_id].update(mine[type_id])
        return totals, digests
    for w in buckets:
        for type_id, comparison in diff_bucket(folder.kept(w), folder.pg(w), types, scope).items():
            totals[type_id].add(comparison)
    return totals


def _entries_by_type(paths: list[Path]) -> dict[str, list[VariantEntry]]:
    entries: dict[str, list[VariantEntry]] = defaultdict(list)
    for path in paths:
        for _kind, type_id, variant, key, rtype, value in read_chunks(path):
            entries[type_id].append((variant, KvEntry(key, rtype, value)))
    return entries


def _decoded(entries: dict[str, list[VariantEntry]], type_id: str) -> Decoded:
    """One type's records of a work bucket (with the entries it borrows)."""
    mapping = MAPPINGS[type_id]
    mine = list(entries.get(type_id, []))
    for borrowed in mapping.borrows:
        mine.extend(entries.get(borrowed, []))
    return _decode_naming_the_key(mapping, mine)


def _digested(
    mapping: Mapping, decoded: Decoded, theirs: dict[int, tuple[int, int, int]] | None
) -> tuple[dict[RecordKey, int], dict[int, tuple[int, int, int]], set[int]]:
    """Each record's bucket, the buckets' digests, and the buckets equal in Postgres."""
    digests = Digests()
    where = {}
    for key, record in decoded.records.items():
        where[key] = bucket = record_bucket(mapping, record, DIGEST_BUCKETS)
        digests.add(bucket, record_text(mapping, record))
    mine = digests.frozen()
    same = {b for b, v in mine.items() if theirs is not None and theirs.get(b) == v}
    return where, mine, same


def digest_bucket(
    paths: list[Path], keep: Path, types: tuple[str, ...], scope: Scope, pg_digests: PgDigests
) -> tuple[dict[str, TypeComparison], dict[str, dict[int, tuple[int, int, int]]]]:
    """Decode one work bucket and digest its records; count the records of buckets
    that agree with Postgres, keep the others (beside the spill) for the diff."""
    entries = _entries_by_type(paths)
    out: dict[str, TypeComparison] = {}
    digests_out: dict[str, dict[int, tuple[int, int, int]]] = {}
    kept: list[tuple[str, RecordKey, Record, str]] = []
    for type_id in types:
        mapping = MAPPINGS[type_id]
        decoded = _decoded(entries, type_id)
        result = out[type_id] = TypeComparison(type_id, len(decoded.records))
        _note_findings(mapping, decoded, result)
        where, digests_out[type_id], same = _digested(mapping, decoded, pg_digests.get(type_id))
        for key, record in decoded.records.items():
            if where[key] in same:
                _count_equal(mapping, key, record, scope, result)
            else:
                kept.append((type_id, key, record, decoded.sources.get(key, "?")))
    with keep.open("wb") as fh:
        if kept:
            pickle.dump(kept, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return out, digests_out


@dataclass
class LoadPart:
    """What a backfill worker made of one type's share of the keyspace."""

    records: int = 0  # decoded
    unchanged: int = 0  # in buckets whose digests agree with Postgres: not written
    written: int = 0  # rows written to the COPY files, to be loaded
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: LoadPart) -> None:
        self.records += other.records
        self.unchanged += other.unchanged
        self.written += other.written
        self.findings.extend(other.findings)


def load_bucket(
    folder: Folder, w: int, types: tuple[str, ...], pg_digests: PgDigests
) -> dict[str, LoadPart]:
    """Decode one work bucket and digest its records; write the rows of buckets that
    differ from Postgres (every row, into an empty table) as COPY text, sorted by
    record key, to the folder's row file of the type."""
    entries = _entries_by_type(folder.kv_all(w))
    out = {}
    for type_id in types:
        mapping = MAPPINGS[type_id]
        decoded = _decoded(entries, type_id)
        part = out[type_id] = LoadPart(len(decoded.records), findings=bucket_findings(decoded))
        where, _digests, same = _digested(mapping, decoded, pg_digests.get(type_id))
        to_write = sorted(k for k in decoded.records if where[k] not in same)
        part.unchanged = part.records - len(to_write)
        if not to_write:
            continue
        with folder.rows(type_id, w).open("wb") as fh:
            lines: list[bytes] = []
            for key in to_write:
                line = _line(mapping, decoded, key, part)
                if line is not None:
                    lines.append(line)
                if len(lines) >= 1000:
                    fh.write(b"".join(lines))
                    lines.clear()
            fh.write(b"".join(lines))
    return out


def _line(mapping: Mapping, decoded: Decoded, key: RecordKey, part: LoadPart) -> bytes | None:
    """The record's COPY line, counted as written; None (and a finding) when its text
    cannot be encoded for Postgres (a lone surrogate)."""
    try:
        line = copy_line(mapping, decoded.records[key]).encode()
    except UnicodeEncodeError as exc:
        source = decoded.sources.get(key, show_key(key))
        reason = f"holds text that is not valid UTF-8 ({exc.reason}), which Postgres rejects"
        part.findings.append(Finding(mapping.type_id, "rejected_by_postgres", source, reason))
        return None
    part.written += 1
    return line


def diff_bucket(
    kept: Path, rows: Path, types: tuple[str, ...], scope: Scope
) -> dict[str, TypeComparison]:
    """Compare the kept KV records and the fetched rows of one work bucket field by field."""
    kv: dict[str, dict[RecordKey, Record]] = defaultdict(dict)
    sources: dict[str, dict[RecordKey, str]] = defaultdict(dict)
    if kept.exists() and kept.stat().st_size:
        with kept.open("rb") as fh:
            for type_id, key, record, source in pickle.load(fh):
                kv[type_id][key] = record
                sources[type_id][key] = source
    pg: dict[str, dict[RecordKey, Record]] = defaultdict(dict)
    for _kind, type_id, row in read_chunks(rows):
        record = MAPPINGS[type_id].from_row(row)
        pg[type_id][MAPPINGS[type_id].record_key(record)] = record
    out = {}
    for type_id in types:
        if type_id in kv or type_id in pg:
            out[type_id] = _diff(
                MAPPINGS[type_id], kv[type_id], sources[type_id], pg[type_id], scope
            )
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


def bucket_findings(decoded: Decoded) -> list[Finding]:
    """The findings a bucket's decode makes exactly (not those of the whole keyspace:
    :data:`~phasegate.findings.WHOLE_KEYSPACE_KINDS`)."""
    return [f for f in decoded.findings if f.kind not in WHOLE_KEYSPACE_KINDS]


def _note_findings(mapping: Mapping, decoded: Decoded, result: TypeComparison) -> None:
    """The decoder's findings; a record that could not be decoded counts as missing."""
    type_id = mapping.type_id
    why = result.diagnosis
    why.variants.update(variant_name(type_id, source) for source in decoded.sources.values())
    for finding in bucket_findings(decoded):
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


def _subsets(
    mapping: Mapping, key: RecordKey, records: Iterable[Record | None], scope: Scope
) -> list[str]:
    subsets = ["full"]
    if in_sample(scope.seed, key, scope.sample_rate):
        subsets.append("sample")
    column = mapping.recency_column
    cutoff = scope.now - RECENT
    if column is not None and any(_recent(r, column, cutoff) for r in records):
        subsets.append("recency")
    return subsets


def _count_equal(
    mapping: Mapping, key: RecordKey, record: Record, scope: Scope, result: TypeComparison
) -> None:
    """A record Postgres holds exactly (its bucket's digests agree): compared, equal."""
    for subset in _subsets(mapping, key, (record,), scope):
        result.compared[subset] += 1
    if scope.allow.allows(mapping.type_id, key, record):
        result.pg_only_allowed += 1


def _diff(
    mapping: Mapping,
    kv: dict[RecordKey, Record],
    sources: dict[RecordKey, str],
    pg: dict[RecordKey, Record],
    scope: Scope,
) -> TypeComparison:
    type_id = mapping.type_id
    allowed = scope.allow.for_type(type_id, pg)
    result = TypeComparison(type_id, 0, len(pg), len(allowed & pg.keys()))
    why = result.diagnosis
    variants = {key: variant_name(type_id, source) for key, source in sources.items()}
    for key in sorted(kv.keys() | pg.keys(), key=show_key):
        mine, theirs = kv.get(key), pg.get(key)
        if mine is None and key in allowed:
            continue
        diffs = list(diff_records(type_id, kv, pg, [key], sources=sources, allowed_pg_only=allowed))
        variant = variants.get(key, "Postgres only")
        for subset in _subsets(mapping, key, (mine, theirs), scope):
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
