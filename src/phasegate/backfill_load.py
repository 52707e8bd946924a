"""The backfill's load: the workers' COPY files into the tables, batch by batch.

A batch is one transaction: into a table empty at the start, ``COPY`` straight
in (until a batch clashes with a row written meanwhile); otherwise ``COPY``
into a temporary staging table, then ``INSERT ... ON CONFLICT DO NOTHING``
(new rows) and ``UPDATE ... WHERE (row) IS DISTINCT FROM (staging row)``
(changed rows only), with the batch's checkpoint row. With no foreign key
between the tables, :func:`load_as_decoded` loads each work bucket as soon as
its worker has written it (``rows-<w>.done``), beside the decoding of the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from phasegate.errors import PhasegateError
from phasegate.findings import Finding
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping, RecordKey
from phasegate.parity.judge import LoadPart
from phasegate.parity.spill import Folder
from phasegate.parity.workers import Workers

EXAMPLES = 10  # changed rows shown per type
POLL_S = 0.05  # how often the loader looks for a work bucket the workers finished


class BackfillBlockedError(PhasegateError):
    """A batch names a handle that is not a user while the foreign keys are in place."""

    def __init__(self, type_id: str, batch: int, exc: psycopg.Error) -> None:
        detail = exc.diag.message_detail or str(exc).strip()
        super().__init__(
            f"backfill of {type_id} stopped at batch {batch} (earlier batches are committed): "
            f"{exc.diag.constraint_name}: {detail}",
            hint="the foreign keys are already added: backfill users first, or run "
            "`phasegate fk add --create-missing-handles` for system accounts, then resume",
        )


class BatchRefusedError(PhasegateError):
    """Postgres refused a batch for its data (a CHECK, NOT NULL or type the rows break)."""

    def __init__(self, mapping: Mapping, batch: int, text: bytes, exc: psycopg.Error) -> None:
        row = ""
        line = re.search(r"\bline (\d+)", exc.diag.context or "")
        lines = text.split(b"\n")
        if line and 0 < int(line.group(1)) <= len(lines):
            fields = lines[int(line.group(1)) - 1].split(b"\t")
            named = [
                f"{c}={fields[i].decode(errors='backslashreplace')}"
                for i, c in enumerate(mapping.column_names)
                if c in mapping.key_columns and i < len(fields)
            ]
            row = f", row {mapping.table}({', '.join(named)})"
        super().__init__(
            f"Postgres refused batch {batch} of {mapping.type_id}{row} (earlier batches are "
            f"committed): {exc.diag.message_primary or str(exc).strip()}",
            hint="a constraint or column type of the table differs from what the mapping "
            "writes: compare the table with `phasegate schema apply`'s, then resume",
        )


@dataclass(frozen=True)
class Change:
    """A row the backfill rewrote: one field, as Postgres held it and as KV decodes."""

    key: RecordKey
    field: str
    before: Any
    after: Any


@dataclass
class TypeResult:
    """What one type's load did, in rows (not statements)."""

    type_id: str
    records: int = 0  # decoded from KV
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    batches: int = 0
    skipped_rows: int = 0  # of buckets whose digests agreed: never sent to Postgres
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # the first fields rewritten

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


class Progress:
    """What a backfill tells of its progress (each a no-op here; override any)."""

    def keys(self, count: int) -> None:
        """``count`` more key names handed to the readers."""

    def decoding(self) -> None:
        """The keyspace is read; the workers decode and digest."""

    def decoded(self) -> None:
        """Every work bucket is decoded (rows may have been loaded meanwhile)."""

    def rows(self, type_id: str, done: int, total: int) -> None:
        """``done`` of the ``total`` rows of ``type_id`` to load are committed (while
        the workers still decode, ``total`` is an estimate from the buckets seen)."""


PgConn = psycopg.Connection[tuple[object, ...]]


def chunks(path: Path, rows: int) -> Iterator[tuple[bytes, int]]:
    """A COPY file in pieces of ``rows`` lines: (text, lines)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        lines: list[bytes] = []
        for line in fh:
            lines.append(line)
            if len(lines) >= rows:
                yield b"".join(lines), len(lines)
                lines.clear()
        if lines:
            yield b"".join(lines), len(lines)


def gather(done: Iterable[dict[str, LoadPart]], types: Iterable[str]) -> dict[str, LoadPart]:
    """The workers' parts, type by type."""
    parts = {t: LoadPart() for t in types}
    for mine in done:
        for type_id, part in mine.items():
            parts[type_id].add(part)
    return parts


def ordered(pg: PgConn, types: Sequence[str]) -> bool:
    """Whether a foreign key between two of the tables to load orders their loads."""
    tables = [MAPPINGS[t].table for t in types]
    row = pg.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = ANY(%s::text[]::regclass[]) AND confrelid = ANY(%s::text[]::regclass[]))",
        (tables, tables),
    ).fetchone()
    return bool(row and row[0])


def load_as_decoded(
    jobs: list[tuple[Any, ...]],
    folder: Folder,
    loads: dict[str, Load],
    batch_rows: int,
    progress: Progress,
) -> dict[str, LoadPart]:
    """Load each work bucket's rows as soon as its worker has written them, while the
    workers decode the rest (no foreign key between the tables orders the types).
    Until the last bucket, each type's total is estimated from the buckets seen. A
    load that fails stops the workers at once (they are not waited on to decode
    the rest)."""
    with contextlib.closing(start_jobs(jobs)) as workers:
        buckets = folder.work
        waiting = set(range(buckets))
        seen = dict.fromkeys(loads, 0)
        while waiting:
            ready = sorted(w for w in waiting if folder.rows_done(w).exists())
            if not ready:
                if workers.done():
                    workers.results()  # a worker's error, raised here as it was there
                    raise RuntimeError(
                        f"the backfill's workers ended without work buckets {sorted(waiting)}"
                    )
                time.sleep(POLL_S)
                continue
            written = [json.loads(folder.rows_done(w).read_text()) for w in ready]
            waiting.difference_update(ready)
            for type_id, load in loads.items():
                seen[type_id] += sum(counts.get(type_id, 0) for counts in written)
                load.total = seen[type_id] * buckets // (buckets - len(waiting))
            if not waiting:
                progress.decoded()
            for w in ready:
                for type_id, load in loads.items():
                    load.file(folder.rows(type_id, w), batch_rows)
        return gather(workers.results(), loads)


def start_jobs(jobs: list[tuple[Any, ...]]) -> Workers:
    """The workers of the load jobs (a seam for tests)."""
    return Workers(jobs)


@dataclass
class Load:
    """One type's rows to load, from the workers' COPY files, batch by batch: into a
    table empty at the start (``direct``), batches (disjoint keys) are COPYed straight
    in until one clashes with a row written meanwhile; from then on, merged."""

    pg: PgConn
    run_id: str
    mapping: Mapping
    result: TypeResult
    progress: Progress
    direct: bool
    total: int = 0  # rows to load, for the progress (an estimate while workers decode)
    done: int = 0

    def file(self, path: Path, batch_rows: int) -> None:
        """Load one of the workers' COPY files and remove it."""
        for text, lines in chunks(path, batch_rows):
            index = self.result.batches
            digest = hashlib.blake2b(text, digest_size=16).hexdigest()
            if self.direct and self._copy(index, digest, text, lines):
                counts = (lines, 0, 0)
            else:
                self.direct = False
                counts = self._merge(index, digest, text, lines)
            self.result.inserted += counts[0]
            self.result.updated += counts[1]
            self.result.unchanged += counts[2]
            self.result.batches += 1
            self.done += lines
            self.progress.rows(self.mapping.type_id, self.done, max(self.total, self.done))
        path.unlink(missing_ok=True)

    def _checkpoint(self, index: int, digest: str, counts: tuple[int, int, int]) -> None:
        self.pg.execute(
            "INSERT INTO phasegate_backfill_batches VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, type_id, batch) DO UPDATE SET keys_digest = "
            "EXCLUDED.keys_digest, inserted = EXCLUDED.inserted, updated = EXCLUDED.updated, "
            "unchanged = EXCLUDED.unchanged",
            (self.run_id, self.mapping.type_id, index, digest, *counts),
        )

    def _copy(self, index: int, digest: str, text: bytes, lines: int) -> bool:
        """COPY a batch straight into the table; False (nothing written) on a key clash."""
        mapping = self.mapping
        cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(mapping.table), cols)
        try:
            with self.pg.transaction(), self.pg.cursor() as cur:
                with cur.copy(query) as copy:
                    copy.write(text)
                self._checkpoint(index, digest, (lines, 0, 0))
        except psycopg.errors.UniqueViolation:
            return False  # someone wrote these keys meanwhile: merge instead
        except psycopg.errors.ForeignKeyViolation as exc:
            raise BackfillBlockedError(mapping.type_id, index, exc) from None
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise BatchRefusedError(mapping, index, text, exc) from None
        return True

    def _merge(self, index: int, digest: str, text: bytes, lines: int) -> tuple[int, int, int]:
        try:
            with self.pg.transaction():
                inserted, updated = self._merge_batch(text)
                counts = (inserted, updated, lines - inserted - updated)
                self._checkpoint(index, digest, counts)
        except psycopg.errors.ForeignKeyViolation as exc:
            raise BackfillBlockedError(self.mapping.type_id, index, exc) from None
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise BatchRefusedError(self.mapping, index, text, exc) from None
        return counts

    def _merge_batch(self, text: bytes) -> tuple[int, int]:
        """COPY one batch into staging and merge it; returns (inserted, updated)."""
        mapping, pg = self.mapping, self.pg
        table = sql.Identifier(mapping.table)
        cols = [sql.Identifier(c) for c in mapping.column_names]
        keys = [sql.Identifier(c) for c in mapping.key_columns]
        others = [sql.Identifier(c) for c in mapping.column_names if c not in mapping.key_columns]
        col_list = sql.SQL(", ").join(cols)
        staging = sql.Identifier(f"staging_{mapping.table}")
        pg.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            ).format(staging, table)
        )
        with pg.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, col_list)) as copy:
                copy.write(text)
            cur.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                    table, col_list, col_list, staging
                )
            )
            inserted = cur.rowcount
            if not others:
                return inserted, 0
            match = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(k) for k in keys)
            target_row = sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in others)
            source_row = sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in others)
            differs = sql.SQL("{} AND ({}) IS DISTINCT FROM ({})").format(
                match, target_row, source_row
            )
            if len(self.result.changes) < EXAMPLES:
                self._note_changes(cur, table, staging, differs)
            assign = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(c) for c in others)
            cur.execute(
                sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {}").format(
                    table, assign, staging, differs
                )
            )
            return inserted, cur.rowcount

    def _note_changes(
        self,
        cur: psycopg.Cursor[tuple[object, ...]],
        table: sql.Identifier,
        staging: sql.Identifier,
        differs: sql.Composable,
    ) -> None:
        """The first rows the merge is about to rewrite, field by field."""
        mapping = self.mapping
        names = mapping.column_names
        both = sql.SQL(", ").join(
            [sql.SQL("t.{}").format(sql.Identifier(c)) for c in names]
            + [sql.SQL("s.{}").format(sql.Identifier(c)) for c in names]
        )
        cur.execute(
            sql.SQL("SELECT {} FROM {} AS t JOIN {} AS s ON {} LIMIT {}").format(
                both, table, staging, differs, sql.Literal(EXAMPLES)
            )
        )
        for row in cur.fetchall():
            before = mapping.from_row(row[: len(names)])
            after = mapping.from_row(row[len(names) :])
            key = mapping.record_key(after)
            self.result.changes.extend(
                Change(key, name, before[name], after[name])
                for name in names
                if before[name] != after[name]
            )


def is_empty(pg: PgConn, mapping: Mapping) -> bool:
    row = pg.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(mapping.table))
    ).fetchone()
    return bool(row and row[0])
