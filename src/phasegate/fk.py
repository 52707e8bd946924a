"""``phasegate fk add``: foreign keys to users(handle), added only when nothing is orphaned.

Orphans (rows naming a handle that is not in ``users``) are listed per table
and column with a count and an example row. With ``create_missing`` the
system and agent accounts among them (docs/data-model.md lists them; they send
messages without registering) get stub users, marked ``metadata.stub``; any
other orphan blocks the step. Each key is added ``NOT VALID`` and then
validated, so the table is not locked for the whole scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql
from psycopg.types.json import Jsonb

from phasegate.handles import SYSTEM_ACCOUNTS
from phasegate.mappings import MAPPINGS
from phasegate.parity.postgres import PgConn, foreign_keys


@dataclass(frozen=True)
class Orphan:
    table: str
    column: str
    handle: str
    rows: int
    example: str

    def __str__(self) -> str:
        return (
            f"{self.table}.{self.column} = {self.handle!r}: {self.rows} rows (e.g. {self.example})"
        )


@dataclass
class FkReport:
    orphans: list[Orphan] = field(default_factory=list)
    stubs: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> list[Orphan]:
        return [o for o in self.orphans if o.handle not in self.stubs]


def find_orphans(conn: PgConn) -> list[Orphan]:
    found = []
    for mapping in MAPPINGS.values():
        key = sql.SQL(" || '|' || ").join(
            sql.SQL("t.{}::text").format(sql.Identifier(k)) for k in mapping.key_columns
        )
        for column in mapping.handle_columns:
            col = sql.Identifier(column)
            query = sql.SQL(
                "SELECT t.{col}, count(*), min({key}) FROM {table} t WHERE t.{col} IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.handle = t.{col}) "
                "GROUP BY t.{col} ORDER BY count(*) DESC, t.{col}"
            ).format(col=col, key=key, table=sql.Identifier(mapping.table))
            for handle, rows, example in conn.execute(query):
                found.append(
                    Orphan(mapping.table, column, str(handle), int(str(rows)), str(example))
                )
    return found


def add_foreign_keys(conn: PgConn, *, create_missing: bool) -> FkReport:
    """Add every foreign key to users(handle) with ON DELETE CASCADE, or say what blocks it."""
    report = FkReport()
    with conn.transaction():
        report.orphans = find_orphans(conn)
        if create_missing:
            for handle in sorted({o.handle for o in report.orphans} & SYSTEM_ACCOUNTS):
                used = [f"{o.table}.{o.column}" for o in report.orphans if o.handle == handle]
                conn.execute(
                    "INSERT INTO users (handle, is_agent, metadata) VALUES (%s, true, %s) "
                    "ON CONFLICT (handle) DO NOTHING",
                    (
                        handle,
                        Jsonb(
                            {
                                "stub": True,
                                "reason": "system account referenced by "
                                + ", ".join(used)
                                + " (phasegate fk add)",
                            }
                        ),
                    ),
                )
                report.stubs.append(handle)
        if report.blocked:
            return report
    for mapping in MAPPINGS.values():
        existing = foreign_keys(conn, mapping.table)
        for column in mapping.handle_columns:
            name = f"{mapping.table}_{column}_fkey"
            if column in existing:
                report.present.append(name)
                continue
            with conn.transaction():
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) "
                        "REFERENCES users(handle) ON DELETE CASCADE NOT VALID"
                    ).format(
                        sql.Identifier(mapping.table), sql.Identifier(name), sql.Identifier(column)
                    )
                )
            with conn.transaction():
                conn.execute(
                    sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                        sql.Identifier(mapping.table), sql.Identifier(name)
                    )
                )
            report.added.append(name)
    return report
