"""What a mapping is: a declarative table plus small pure functions.

A mapping declares which keys hold its type (glob and Redis TYPE per variant),
the Postgres columns, and one ``decode`` function from KV entries to canonical
records. Rows are made from records, and records read back from rows, by the
column kinds alone, so every mapping round-trips the same way.

Canonical records are plain dicts keyed by column name, with values: ``str``,
``int``, ``bool``, UTC ``datetime`` at millisecond precision, ``date``, lists,
and JSON values (``dict``/``list``/scalars) for ``json`` columns.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from psycopg.types.json import Jsonb

from phasegate.findings import Finding, excerpt
from phasegate.keyspace import KvEntry
from phasegate.mappings.declare import KvDelete, KvPut, ReadPath, WriteOp
from phasegate.mappings.plausible import implausible
from phasegate.mappings.routing import Router
from phasegate.redact import is_secret_field, shown_secret
from phasegate.show import shown
from phasegate.values import DecodeError, has_nul

Record = dict[str, Any]
RecordKey = tuple[Any, ...]
ColumnKind = Literal["text", "int", "bool", "ts", "date", "json", "text[]", "date[]"]
Role = Literal["data", "index", "aux"]


@dataclass(frozen=True)
class Column:
    """A Postgres column; ``handle`` marks a reference to ``users(handle)``."""

    name: str
    kind: ColumnKind
    key: bool = False
    handle: bool = False


_T = TypeVar("_T")
_PER_COLUMN: dict[tuple[int, Callable[[Column], Any]], tuple[tuple[Column, ...], Any]] = {}


def per_column(columns: tuple[Column, ...], make: Callable[[Column], _T]) -> tuple[_T, ...]:
    """``make`` of each column, made once per tuple of columns. The tuple is kept by
    its identity: hashing the columns themselves, once per row, cost more than the
    row's text."""
    key = (id(columns), make)
    hit = _PER_COLUMN.get(key)
    if hit is None or hit[0] is not columns:
        hit = _PER_COLUMN[key] = (columns, tuple(make(c) for c in columns))
    made: tuple[_T, ...] = hit[1]
    return made


@dataclass(frozen=True)
class KeyPattern:
    """Keys of one variant: a glob, the Redis TYPE, and the key's role.

    ``data`` keys hold records; ``index`` keys are derived lists/sets that are
    checked but not migrated; ``aux`` keys feed decoding (unread counts).
    """

    glob: str
    rtype: str
    variant: str
    role: Role = "data"


# An entry with the variant it was classified as.
VariantEntry = tuple[str, KvEntry]


@dataclass
class Decoded:
    """Canonical records by record key, the KV key each came from, and findings."""

    records: dict[RecordKey, Record] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    sources: dict[RecordKey, str] = field(default_factory=dict)


class Collector:
    """Collects records and findings for one decode; turns errors into findings."""

    def __init__(self, type_id: str) -> None:
        self.type_id = type_id
        self.out = Decoded()

    def finding(
        self, kind: str, key: str, detail: str, field: str | None = None, raw: object = None
    ) -> None:
        shown = None if raw is None else excerpt(raw)
        self.out.findings.append(Finding(self.type_id, kind, key, detail, field, shown))

    def put(self, rkey: RecordKey, record: Record, source: str) -> None:
        """Store ``record``; ``source`` is the KV key (``key#field``) it came from."""
        self.out.records[rkey] = record
        self.out.sources[rkey] = source

    @contextlib.contextmanager
    def guard(self, key: str, raw: object) -> Iterator[None]:
        """Run a decode step; a :class:`DecodeError` becomes an ``undecodable`` finding."""
        try:
            yield
        except DecodeError as exc:
            self.finding("undecodable", key, exc.reason, exc.field, raw)


def merge_copy(
    target: Record,
    other: Record,
    *,
    collector: Collector,
    key: str,
    fields: Sequence[str],
    where: str,
) -> None:
    """Fill ``target``'s empty ``fields`` from ``other``; report fields that disagree."""
    for name in fields:
        mine, theirs = target.get(name), other.get(name)
        if theirs is None:
            continue
        if mine is None:
            target[name] = theirs
        elif mine != theirs:
            kept, dropped = shown(mine, 80), shown(theirs, 80)
            if is_secret_field(name):
                kept, dropped = shown_secret(mine), shown_secret(theirs)
            collector.finding(
                "conflicting_copies",
                key,
                f"copies disagree ({where}): kept {kept}, other {dropped}",
                name,
            )


def _by_key_name(entry: VariantEntry) -> tuple[str, str]:
    return entry[1].key, entry[0]


@dataclass(frozen=True)
class Mapping:
    """One data type: where it lives in KV, where it goes in Postgres, how to convert."""

    type_id: str
    table: str
    columns: tuple[Column, ...]
    patterns: tuple[KeyPattern, ...]
    decoder: Callable[[Iterable[VariantEntry]], Decoded]
    borrows: tuple[str, ...] = ()
    recency_column: str | None = None
    summary: str = ""
    # Comparison buckets (see mappings/routing.py): how a KV entry splits into the
    # parts each bucket's records need (default: by the key's `*` part), and the
    # columns a record's bucket key is made of (default: the first key column).
    router: Router | None = None
    bucket_columns: tuple[str, ...] = ()
    # DDL of the type's table and indexes (IF NOT EXISTS), for types outside
    # phasegate's sql/schema.sql: a user's own mapping brings its table along.
    ddl: str = ""
    # What the machinery around the data needs (see mappings/declare.py): the
    # type's current KV shape, written back from a canonical record; the type
    # whose KV values carry this one's records (achievements ride inside their
    # streak: their puts reach the carrier's kv_put as companions); the read
    # paths and write ops of the app; and the .sql files of the read paths'
    # queries, for a type outside phasegate's own query catalog.
    kv_put: KvPut | None = None
    kv_delete: KvDelete | None = None
    carried_by: str = ""
    reads: tuple[ReadPath, ...] = ()
    writes: tuple[WriteOp, ...] = ()
    queries: tuple[str, ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.key)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def handle_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.handle)

    @property
    def bucket_on(self) -> tuple[str, ...]:
        return self.bucket_columns or self.key_columns[:1]

    @functools.cached_property
    def index_variants(self) -> frozenset[str]:
        """Variants of derived index keys: checked by the decoder, not records."""
        return frozenset(p.variant for p in self.patterns if p.role == "index")

    def record_key(self, record: Record) -> RecordKey:
        return tuple(record[name] for name in self.key_columns)

    def decode(self, entries: Iterable[VariantEntry]) -> Decoded:
        """Decode entries into canonical records; values Postgres would reject
        become findings (kept as raw excerpts), never rows. Implausible values
        (see :mod:`phasegate.mappings.plausible`) are warnings; their records
        are migrated as they are. Given a list (a bucket's entries), the decoder
        gets it in key order, whatever order it was read in (SCAN's, the readers'):
        where copies disagree, the same one is kept and the same key named every
        run. A stream (the inventory's whole-keyspace decode) is decoded as it
        arrives, never held whole."""
        if isinstance(entries, Sequence):
            entries = sorted(entries, key=_by_key_name)
        decoded = self.decoder(entries)
        decoded.findings.extend(implausible(self.type_id, self.columns, decoded))
        for rkey, record in list(decoded.records.items()):
            problem = _postgres_rejects(record, self.columns)
            if problem is not None:
                field_name, reason = problem
                del decoded.records[rkey]
                source = decoded.sources.pop(rkey, f"{self.table}:{':'.join(map(str, rkey))}")
                decoded.findings.append(
                    Finding(
                        self.type_id,
                        "rejected_by_postgres",
                        source,
                        reason,
                        field_name,
                        excerpt(record.get(field_name)),
                    )
                )
        return decoded

    def to_row(self, record: Record) -> tuple[Any, ...]:
        """A canonical record as a row tuple in column order, ready for psycopg."""
        return tuple(
            Jsonb(record[c.name])
            if c.kind == "json" and record[c.name] is not None
            else record[c.name]
            for c in self.columns
        )

    def from_row(self, row: Sequence[Any]) -> Record:
        """A row (as psycopg returns it, or as :meth:`to_row` made it) as a record."""
        record: Record = {}
        for column, cell in zip(self.columns, row, strict=True):
            value = cell.obj if isinstance(cell, Jsonb) else cell
            if column.kind == "ts" and isinstance(value, datetime):
                value = value.astimezone(UTC)
            record[column.name] = value
        return record


def _postgres_rejects(record: Record, columns: tuple[Column, ...]) -> tuple[str, str] | None:
    for column in columns:
        if _has_nul(record[column.name], column.kind):
            return column.name, "contains a NUL character, which Postgres text and jsonb reject"
    return None


def _has_nul(value: object, kind: str) -> bool:
    """NUL anywhere in a text, text[] or json value (one C-level scan for json)."""
    if value is None:
        return False
    if kind == "text":
        return "\x00" in str(value)
    if kind == "text[]":
        return any("\x00" in str(v) for v in value)  # type: ignore[attr-defined]
    if kind != "json":
        return False
    try:
        dumped = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, deep nesting
        return has_nul(value)
    return b"\\u0000" in dumped and has_nul(value)


def holds_records(mapping: Mapping, key: str) -> bool:
    """Whether ``key`` (``key#field`` inside containers) is a data key of the
    mapping, not an index or aux key: a record there that cannot be decoded is
    a record lost.

    >>> from phasegate.mappings import MAPPINGS
    >>> holds_records(MAPPINGS["messages"], "vibe:messages#3")
    True
    >>> holds_records(MAPPINGS["messages"], "inbox:bo#2")
    False
    """
    base = key.split("#", 1)[0]
    return any(
        p.role == "data" and fnmatch.fnmatchcase(base, p.glob) for p in mapping.patterns
    ) or not any(fnmatch.fnmatchcase(base, p.glob) for p in mapping.patterns)


def suffix(key: str, prefix: str) -> str:
    """The part of ``key`` after ``prefix``.

    >>> suffix("streak:@Seth", "streak:")
    '@Seth'
    """
    return key[len(prefix) :]
