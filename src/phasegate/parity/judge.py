"""The comparison pass's judging, done in worker processes a work bucket at a time.

Step 2 (:func:`digest_bucket`): decode a work bucket's KV entries with the
mappings' own decoders (:mod:`phasegate.parity.decode`, skipping the buckets
whose memos hold), digest every record as Postgres digests its rows
(:mod:`phasegate.parity.digest`), count the records of buckets that agree as
compared, and keep the others beside the spill. Step 3 (:func:`diff_bucket`):
compare the kept records with the fetched rows field by field. Both return
tallies only (:mod:`phasegate.parity.tally`); see :mod:`phasegate.parity.compare`
for the whole pass.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from phasegate.findings import Finding, Severity
from phasegate.mappings import MAPPINGS, variant_name
from phasegate.mappings.base import (
    Mapping,
    Record,
    RecordKey,
    holds_records,
)
from phasegate.parity.copytext import copy_line
from phasegate.parity.decode import (
    RECENT,
    PgDigests,
    Scope,
    in_sample,
    judge_work_bucket,
)
from phasegate.parity.diff import (
    Diff,
    ExtraInPg,
    MissingInPg,
    diff_records,
    guess_cause,
    show_key,
)
from phasegate.parity.memo import Memos, scope_key
from phasegate.parity.spill import Folder, read_chunks
from phasegate.parity.tally import TypeComparison
from phasegate.show import shown

# Findings that stand for a KV record the backfill could not carry over.
LOST_KINDS = frozenset({"undecodable", "rejected_by_postgres"})


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
        pg_digests, memos = rest
        parts = {t: LoadPart() for t in types}
        for w in buckets:
            loads = load_bucket(folder, w, types, pg_digests, memos=memos, scope=scope)
            for type_id, loaded in loads.items():
                parts[type_id].add(loaded)
        return parts
    totals = {t: TypeComparison(t) for t in types}
    if kind == "digest":
        pg_digests, memos = rest
        digests: dict[str, dict[int, tuple[int, int, int]]] = {t: {} for t in types}
        for w in buckets:
            part, mine = digest_bucket(folder, w, types, scope, pg_digests, memos=memos)
            for type_id, comparison in part.items():
                totals[type_id].add(comparison)
                digests[type_id].update(mine[type_id])
        return totals, digests
    for w in buckets:
        for type_id, comparison in diff_bucket(folder.kept(w), folder.pg(w), types, scope).items():
            totals[type_id].add(comparison)
    return totals


def digest_bucket(
    folder: Folder,
    w: int,
    types: tuple[str, ...],
    scope: Scope,
    pg_digests: PgDigests,
    *,
    memos: Memos | None = None,
) -> tuple[dict[str, TypeComparison], dict[str, dict[int, tuple[int, int, int]]]]:
    """Judge one work bucket (:func:`judge_work_bucket`); count the records of buckets
    that agree with Postgres, keep the others (beside the spill) for the diff."""
    out: dict[str, TypeComparison] = {}
    digests_out: dict[str, dict[int, tuple[int, int, int]]] = {}
    kept: list[tuple[str, RecordKey, Record, str]] = []
    cutoff = scope.now - RECENT
    key = scope_key(scope.seed, scope.sample_rate, scope.allow)
    judgeds = judge_work_bucket(folder, w, types, pg_digests, memos=memos, scope=scope)
    for type_id, judged in judgeds.items():
        mapping = MAPPINGS[type_id]
        result = out[type_id] = TypeComparison(type_id, judged.count)
        digests = digests_out[type_id] = dict(judged.digests)
        variants = Counter(judged.variants)
        findings = list(judged.findings)
        for bucket, entry in judged.hits.items():
            if entry.digest is not None:
                digests[bucket] = entry.digest
            variants.update(entry.variants)
            findings.extend(entry.findings)
            sampled, allowed = entry.scoped[key]
            result.compared["full"] += entry.records
            result.compared["sample"] += sampled
            result.compared["recency"] += entry.recent(cutoff)
            result.pg_only_allowed += allowed
        _note_findings(mapping, findings, variants, result)
        theirs = pg_digests.get(type_id)
        same = {b for b, v in judged.digests.items() if theirs is not None and theirs.get(b) == v}
        for rkey, record in judged.records.items():
            if judged.where[rkey] in same:
                _count_equal(mapping, rkey, record, scope, result)
            else:
                kept.append((type_id, rkey, record, judged.sources.get(rkey, "?")))
    with folder.kept(w).open("wb") as fh:
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
    folder: Folder,
    w: int,
    types: tuple[str, ...],
    pg_digests: PgDigests,
    *,
    memos: Memos | None,
    scope: Scope | None = None,
) -> dict[str, LoadPart]:
    """Judge one work bucket (:func:`judge_work_bucket`); write the rows of buckets
    that differ from Postgres (every row, into an empty table) as COPY text, sorted
    by record key, to the folder's row file of the type; then the work bucket's
    :meth:`~phasegate.parity.spill.Folder.rows_done`."""
    out = {}
    judgeds = judge_work_bucket(
        folder, w, types, pg_digests, memos=memos, scope=scope, counted=False
    )
    for type_id, judged in judgeds.items():
        mapping = MAPPINGS[type_id]
        findings = judged.findings + [f for e in judged.hits.values() for f in e.findings]
        part = out[type_id] = LoadPart(judged.count, findings=findings)
        theirs = pg_digests.get(type_id)
        same = {b for b, v in judged.digests.items() if theirs is not None and theirs.get(b) == v}
        to_write = sorted(k for k in judged.records if judged.where[k] not in same)
        part.unchanged = part.records - len(to_write)
        if not to_write:
            continue
        with folder.rows(type_id, w).open("wb") as fh:
            lines: list[bytes] = []
            for key in to_write:
                line = _line(mapping, judged.records[key], judged.sources, key, part)
                if line is not None:
                    lines.append(line)
                if len(lines) >= 1000:
                    fh.write(b"".join(lines))
                    lines.clear()
            fh.write(b"".join(lines))
    done = folder.rows_done(w)
    aside = done.with_suffix(".part")
    aside.write_text(json.dumps({t: part.written for t, part in out.items()}))
    aside.rename(done)  # whole or not there: the parent may be waiting for it
    return out


def _line(
    mapping: Mapping, record: Record, sources: dict[RecordKey, str], key: RecordKey, part: LoadPart
) -> bytes | None:
    """The record's COPY line, counted as written; None (and a finding) when its text
    cannot be encoded for Postgres (a lone surrogate)."""
    try:
        line = copy_line(mapping, record).encode()
    except UnicodeEncodeError as exc:
        source = sources.get(key, show_key(key))
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


def _note_findings(
    mapping: Mapping, findings: list[Finding], variants: Counter[str], result: TypeComparison
) -> None:
    """The decoder's findings; a record that could not be decoded counts as missing."""
    type_id = mapping.type_id
    why = result.diagnosis
    why.variants.update(variants)
    for finding in findings:
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
