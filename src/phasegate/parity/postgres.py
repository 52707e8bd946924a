"""The Postgres side of parity: rows read back into canonical records, read only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from phasegate.errors import UsageError
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping, Record, RecordKey

PgConn = psycopg.Connection[tuple[object, ...]]


def read_records(conn: PgConn, mapping: Mapping) -> dict[RecordKey, Record]:
    """Every row of the mapping's table as a canonical record, by record key."""
    cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    query = sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(mapping.table))
    out: dict[RecordKey, Record] = {}
    with conn.cursor(binary=True) as cur:
        for row in cur.execute(query):
            record = mapping.from_row(row)
            out[mapping.record_key(record)] = record
    return out


@dataclass(frozen=True)
class AllowList:
    """Postgres rows expected to have no KV record: stub users and listed keys."""

    keys: frozenset[tuple[str, RecordKey]] = frozenset()

    @classmethod
    def load(cls, path: str | None) -> AllowList:
        """Read ``<type> <key part> [<key part>...]`` lines; ``#`` starts a comment."""
        if path is None:
            return cls()
        entries: set[tuple[str, RecordKey]] = set()
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read the PG-only allow-list {path}: {exc}") from None
        for number, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] not in MAPPINGS or len(words) - 1 != len(MAPPINGS[words[0]].key_columns):
                raise UsageError(
                    f"{path}:{number}: expected '<type> <key>' with the type's key columns",
                    hint=f"types: {', '.join(MAPPINGS)}; e.g. 'friends al bo'",
                )
            entries.add((words[0], tuple(words[1:])))
        return cls(frozenset(entries))

    def allows(self, type_id: str, key: RecordKey, record: Record) -> bool:
        """Whether a Postgres row may stand without a KV record (listed, or a stub user)."""
        if (type_id, key) in self.keys:
            return True
        return type_id == "users" and (record.get("metadata") or {}).get("stub") is True

    def for_type(self, type_id: str, pg: dict[RecordKey, Record]) -> frozenset[RecordKey]:
        """Allowed PG-only keys of ``type_id``: listed ones and stub users."""
        allowed = {key for t, key in self.keys if t == type_id}
        if type_id == "users":
            allowed |= {k for k, r in pg.items() if (r.get("metadata") or {}).get("stub") is True}
        return frozenset(allowed)


def orphans(conn: PgConn, mapping: Mapping, limit: int = 10) -> list[tuple[RecordKey, str, str]]:
    """Rows whose handle columns (or game players) name no user: (key, column, handle)."""
    keys = sql.SQL(", ").join(
        sql.SQL("t.{}").format(sql.Identifier(k)) for k in mapping.key_columns
    )
    found: list[tuple[RecordKey, str, str]] = []
    checks: Iterable[tuple[str, sql.Composable]] = [
        (c, sql.SQL("t.{}").format(sql.Identifier(c))) for c in mapping.handle_columns
    ]
    if mapping.type_id == "games":
        checks = [*checks, ("players", sql.SQL("unnest(t.players)"))]
    for column, expr in checks:
        query = sql.SQL(
            "SELECT {keys}, h FROM (SELECT {keys_t}, {expr} AS h FROM {table} t) t "
            "WHERE h IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.handle = t.h) "
            "LIMIT %s"
        ).format(
            keys=sql.SQL(", ").join(sql.Identifier(k) for k in mapping.key_columns),
            keys_t=keys,
            expr=expr,
            table=sql.Identifier(mapping.table),
        )
        for row in conn.execute(query, (limit,)):
            found.append((tuple(row[:-1]), column, str(row[-1])))
    return found


def foreign_keys(conn: PgConn, table: str) -> dict[str, tuple[bool, str]]:
    """Foreign keys from ``table`` to users: column -> (validated, on-delete action)."""
    rows = conn.execute(
        """SELECT a.attname, c.convalidated, c.confdeltype
           FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
           WHERE c.contype = 'f' AND c.conrelid = %s::regclass
             AND c.confrelid = 'users'::regclass""",
        (table,),
    ).fetchall()
    return {str(col): (bool(valid), str(action)) for col, valid, action in rows}
