"""``phasegate backfill``: KV -> Postgres through the mappings, idempotent and resumable.

Per data type: the keyspace is read once (SCAN, batched reads), decoded through
the mapping, sorted by record key and loaded in batches. Each batch is one
transaction: COPY into a temporary staging table, then

* ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: new rows (exact count);
* ``UPDATE ... FROM staging WHERE (row) IS DISTINCT FROM (staging row)``:
  changed rows only (exact count);

and the checkpoint row for the batch. Unchanged rows are neither locked nor
rewritten, so a re-run of an unchanged keyspace writes (almost) no WAL,
unlike ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, which locks every row.
A run killed at any point resumes at the first batch not committed, when the
keyspace still decodes to the same record keys (a digest of them is stored
with each batch); otherwise every batch is merged again. Since every batch is
idempotent, either way the result equals an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

import psycopg
import redis
from psycopg import sql

from phasegate.errors import PhasegateError
from phasegate.findings import Finding
from phasegate.inventory import Inventory, take_inventory
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import Mapping, Record

BATCH_ROWS = 50_000


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


@dataclass
class TypeResult:
    """What one type's load did, in rows (not statements)."""

    type_id: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    batches: int = 0
    resumed_batches: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


@dataclass
class BackfillResult:
    run_id: str
    resumed: bool
    types: dict[str, TypeResult]
    inventory: Inventory

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.types.values())


Progress = Callable[[str, int, int], None]  # (type_id, rows done, rows total)
PgConn = psycopg.Connection[tuple[object, ...]]


def backfill(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: Iterable[str] = TYPE_IDS,
    *,
    batch_rows: int = BATCH_ROWS,
    restart: bool = False,
    inventory: Inventory | None = None,
    on_rows: Progress | None = None,
) -> BackfillResult:
    """Load ``types`` from ``kv`` into ``pg`` (schema applied); resume an unfinished run."""
    types = tuple(types)
    unknown = set(types) - set(MAPPINGS)
    if unknown:
        raise ValueError(f"unknown data types: {sorted(unknown)}")
    if not pg.autocommit:
        pg.commit()
        pg.autocommit = True  # each batch is its own explicit transaction
    with pg.transaction():
        pg.execute(resources.files("phasegate").joinpath("sql", "backfill_state.sql").read_bytes())
    run_id, resumed = _open_run(pg, types, restart)
    inventory = inventory or take_inventory(kv, types)
    result = BackfillResult(run_id, resumed, {}, inventory)
    for type_id in types:
        decoded = inventory.types[type_id].decoded
        result.types[type_id] = _load_type(
            pg,
            run_id,
            MAPPINGS[type_id],
            list(decoded.records.values()),
            batch_rows=batch_rows,
            on_rows=on_rows,
        )
        result.types[type_id].findings = decoded.findings
        _store_findings(pg, run_id, type_id, decoded.findings)
    _store_findings(pg, run_id, "keyspace", inventory.keyspace_findings)
    with pg.transaction():
        pg.execute(
            "UPDATE phasegate_backfill_runs SET finished_at = %s WHERE run_id = %s",
            (datetime.now(UTC), run_id),
        )
    return result


def _open_run(
    pg: psycopg.Connection[tuple[object, ...]], types: Sequence[str], restart: bool
) -> tuple[str, bool]:
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


def _load_type(
    pg: psycopg.Connection[tuple[object, ...]],
    run_id: str,
    mapping: Mapping,
    records: list[Record],
    *,
    batch_rows: int,
    on_rows: Progress | None,
) -> TypeResult:
    result = TypeResult(mapping.type_id)
    records.sort(key=mapping.record_key)
    batches = [records[i : i + batch_rows] for i in range(0, len(records), batch_rows)]
    result.batches = len(batches)
    digest = _keys_digest(mapping, records)
    done: dict[int, tuple[int, int, int]] = {}
    with pg.transaction():
        for batch, inserted, updated, unchanged in pg.execute(
            "SELECT batch, inserted, updated, unchanged FROM phasegate_backfill_batches "
            "WHERE run_id = %s AND type_id = %s AND keys_digest = %s",
            (run_id, mapping.type_id, digest),
        ).fetchall():
            done[int(str(batch))] = (int(str(inserted)), int(str(updated)), int(str(unchanged)))
    rows_done = 0
    # Into an empty table, batches (disjoint key ranges) can be COPYed straight in.
    direct = not done and _is_empty(pg, mapping)
    for index, batch in enumerate(batches):
        if index in done:
            inserted, updated, unchanged = done[index]
            result.resumed_batches += 1
        elif direct and _copy_batch(pg, _Slot(run_id, mapping, index, digest), batch):
            inserted, updated, unchanged = len(batch), 0, 0
        else:
            direct = False
            try:
                with pg.transaction():
                    inserted, updated = _merge_batch(pg, mapping, batch)
                    unchanged = len(batch) - inserted - updated
                    slot = _Slot(run_id, mapping, index, digest)
                    _checkpoint(pg, slot, (inserted, updated, unchanged))
            except psycopg.errors.ForeignKeyViolation as exc:
                raise BackfillBlockedError(mapping.type_id, index, exc) from None
        result.inserted += inserted
        result.updated += updated
        result.unchanged += unchanged
        rows_done += len(batch)
        if on_rows is not None:
            on_rows(mapping.type_id, rows_done, len(records))
    return result


@dataclass(frozen=True)
class _Slot:
    """Where one batch's checkpoint goes."""

    run_id: str
    mapping: Mapping
    index: int
    digest: str


def _checkpoint(pg: PgConn, slot: _Slot, counts: tuple[int, int, int]) -> None:
    pg.execute(
        "INSERT INTO phasegate_backfill_batches VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (run_id, type_id, batch) DO UPDATE SET keys_digest = EXCLUDED.keys_digest, "
        "inserted = EXCLUDED.inserted, updated = EXCLUDED.updated, unchanged = EXCLUDED.unchanged",
        (slot.run_id, slot.mapping.type_id, slot.index, slot.digest, *counts),
    )


def _is_empty(pg: PgConn, mapping: Mapping) -> bool:
    row = pg.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(mapping.table))
    ).fetchone()
    return bool(row and row[0])


def _copy_batch(pg: PgConn, slot: _Slot, batch: list[Record]) -> bool:
    """COPY a batch straight into the table; False (nothing written) on a key clash."""
    mapping = slot.mapping
    cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(mapping.table), cols)
    try:
        with pg.transaction(), pg.cursor() as cur:
            with cur.copy(query) as copy:
                for record in batch:
                    copy.write_row(mapping.to_row(record))
            _checkpoint(pg, slot, (len(batch), 0, 0))
    except psycopg.errors.UniqueViolation:
        return False  # someone wrote these keys meanwhile: merge instead
    except psycopg.errors.ForeignKeyViolation as exc:
        raise BackfillBlockedError(mapping.type_id, slot.index, exc) from None
    return True


def _keys_digest(mapping: Mapping, records: list[Record]) -> str:
    """A digest of the sorted record keys: equal digests mean equal batch boundaries."""
    h = hashlib.blake2b(digest_size=16)
    for record in records:
        h.update(repr(mapping.record_key(record)).encode())
        h.update(b"\n")
    return h.hexdigest()


def _merge_batch(
    pg: psycopg.Connection[tuple[object, ...]], mapping: Mapping, batch: list[Record]
) -> tuple[int, int]:
    """COPY one batch into staging and merge it; returns (inserted, updated)."""
    table = sql.Identifier(mapping.table)
    cols = [sql.Identifier(c) for c in mapping.column_names]
    keys = [sql.Identifier(c) for c in mapping.key_columns]
    others = [sql.Identifier(c) for c in mapping.column_names if c not in mapping.key_columns]
    col_list = sql.SQL(", ").join(cols)
    pg.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(sql.Identifier(f"staging_{mapping.table}"), table)
    )
    staging = sql.Identifier(f"staging_{mapping.table}")
    with pg.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, col_list)) as copy:
            for record in batch:
                copy.write_row(mapping.to_row(record))
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
        assign = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(c) for c in others)
        cur.execute(
            sql.SQL(
                "UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND ({}) IS DISTINCT FROM ({})"
            ).format(table, assign, staging, match, target_row, source_row)
        )
        return inserted, cur.rowcount


def _store_findings(
    pg: psycopg.Connection[tuple[object, ...]], run_id: str, type_id: str, findings: list[Finding]
) -> None:
    with pg.transaction(), pg.cursor() as cur:
        cur.execute(
            "DELETE FROM phasegate_findings WHERE run_id = %s AND type_id = %s", (run_id, type_id)
        )
        with cur.copy(
            "COPY phasegate_findings (run_id, type_id, kind, severity, key, field, detail, raw) "
            "FROM STDIN"
        ) as copy:
            for f in findings:
                copy.write_row(
                    tuple(
                        None if v is None else _pg_text(v)
                        for v in (
                            run_id,
                            type_id,
                            f.kind,
                            str(f.severity),
                            f.key,
                            f.field,
                            f.detail,
                            f.raw,
                        )
                    )
                )


def _pg_text(value: str) -> str:
    """Postgres text cannot hold NUL; keep it visible instead."""
    return value.replace("\x00", "\\x00")
