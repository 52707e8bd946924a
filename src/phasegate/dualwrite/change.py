"""A write as data: records to put and records to delete, per data type.

Every app write becomes a :class:`Change`. Its Postgres side is one upsert
(``INSERT ... ON CONFLICT DO UPDATE``) per put and one ``DELETE`` per delete, in
one transaction; its KV side is :func:`phasegate.dualwrite.kvplan.commands`.
Both are idempotent, so a retry or a journal replay changes nothing more. A
change round-trips through JSON (timestamps and dates tagged) for the journal.

>>> from datetime import datetime, timezone
>>> c = Change("streak_checkin", [Step("put", "friends", {"handle": "a", "friend": "b"})])
>>> Change.from_json(c.to_json()) == c
True
>>> decode_value(encode_value(datetime(2026, 1, 7, tzinfo=timezone.utc)))
datetime.datetime(2026, 1, 7, 0, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from psycopg import sql

from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping, Record, RecordKey
from phasegate.parity.diff import show_key

Action = Literal["put", "delete"]


@dataclass(frozen=True)
class Step:
    action: Action
    type_id: str
    record: Record  # for a delete, at least the key columns

    @property
    def key(self) -> RecordKey:
        return MAPPINGS[self.type_id].record_key(self.record)

    def label(self) -> str:
        return label(self.type_id, self.key)


@dataclass(frozen=True)
class Change:
    """What one app write does to the data: its name and its steps, in order."""

    op: str
    steps: list[Step] = field(default_factory=list)
    # Records the write found already as it would leave them (a retry whose first
    # attempt took effect): not written, but what the caller can count on.
    seen: list[Step] = field(default_factory=list, compare=False)

    def see(self, type_id: str, record: Record) -> None:
        self.seen.append(Step("put", type_id, record))

    def put(self, type_id: str, record: Record) -> None:
        self.steps.append(Step("put", type_id, record))

    def delete(self, type_id: str, record: Record) -> None:
        self.steps.append(Step("delete", type_id, record))

    def labels(self) -> list[str]:
        return [s.label() for s in self.steps]

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "steps": [
                {"action": s.action, "type": s.type_id, "record": encode_value(s.record)}
                for s in self.steps
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(
            data["op"],
            [Step(s["action"], s["type"], decode_value(s["record"])) for s in data["steps"]],
        )


def label(type_id: str, key: RecordKey) -> str:
    """``type:key`` naming a record in journals and reports (key parts joined by ``|``).

    >>> label("friends", ("ana", "bo"))
    'friends:ana|bo'
    """
    return f"{type_id}:{show_key(key)}"


def encode_value(value: Any) -> Any:
    """A record value as JSON: datetimes and dates tagged, containers recursed."""
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        return {k: encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$ts" in value:
            return datetime.fromisoformat(value["$ts"])
        if len(value) == 1 and "$date" in value:
            return date.fromisoformat(value["$date"])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def upsert_sql(mapping: Mapping) -> sql.Composed:
    """``INSERT ... ON CONFLICT (key) DO UPDATE``: a retried write changes nothing more."""
    names = [sql.Identifier(c) for c in mapping.column_names]
    keys = [sql.Identifier(c) for c in mapping.key_columns]
    others = [sql.Identifier(c) for c in mapping.column_names if c not in mapping.key_columns]
    update = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(n) for n in others)
        )
        if others
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
        sql.Identifier(mapping.table),
        sql.SQL(", ").join(names),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sql.SQL(", ").join(keys),
        update,
    )


def select_sql(mapping: Mapping, where: str) -> sql.Composed:
    """``SELECT <the mapping's columns> FROM <its table> WHERE <where>`` (rows for
    :meth:`Mapping.from_row`); ``where`` is literal SQL of the caller's, with ``%s``."""
    return sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in mapping.column_names),
        sql.Identifier(mapping.table),
        sql.SQL(where),
    )


def key_where(mapping: Mapping) -> str:
    """``k1 = %s AND k2 = %s`` over the record key columns."""
    return " AND ".join(f"{c} = %s" for c in mapping.key_columns)


def delete_sql(mapping: Mapping) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE {}").format(
        sql.Identifier(mapping.table),
        sql.SQL(key_where(mapping)),
    )


def pg_statements(change: Change) -> list[tuple[sql.Composed, tuple[Any, ...]]]:
    """The change as Postgres statements, to run in one transaction."""
    out = []
    for step in change.steps:
        mapping = MAPPINGS[step.type_id]
        if step.action == "put":
            out.append((upsert_sql(mapping), mapping.to_row(step.record)))
        else:
            out.append((delete_sql(mapping), tuple(step.key)))
    return out
