"""Bucket digests: one canonical text per row, made alike by Postgres and by Python.

A row's canonical text is its columns in order, each as ``<length>:<text>``
(``~`` for NULL), where the text depends only on the column's kind:

=========  =====================================  ==============================
kind       Postgres                               Python (from the canonical record)
=========  =====================================  ==============================
text       the value                              the value
int        ``c::text``                            ``str(v)``
bool       ``t`` / ``f``                          ``t`` / ``f``
ts         microseconds since 1970 (UTC)          the same, from the aware datetime
date       days since 2000-01-01                  the same
json       ``jsonb::text`` (jsonb's own form)     :func:`jsonb_text`
text[]     ``array_to_json(c)::text``             the same JSON form
date[]     ``array_to_json(c)::text``             ``["2026-01-07",...]``
=========  =====================================  ==============================

A bucket's digest is (rows, sum of the first 64 bits of each row's MD5, sum of
the next 64): independent of row order, so Postgres computes it with one
``GROUP BY`` over the table while Redis is read, and only the buckets whose
digests differ are fetched and compared field by field. The digest is an
accelerator, never the judge: equal texts mean Postgres holds exactly the row
the backfill would write for the KV record; a text that differs for a reason
that is no real difference (an old Postgres, a column of another SQL type in a
user's table) only sends its bucket to the field-by-field comparison.

>>> from datetime import UTC, datetime
>>> from phasegate.mappings import MAPPINGS
>>> record_text(MAPPINGS["friends"], {"handle": "al", "friend": "bo"})
'2:al2:bo'
>>> jsonb_text({"bb": [1, 2.5, None], "a": "x\\n", "c": True})
'{"a": "x\\\\n", "c": true, "bb": [1, 2.5, null]}'
>>> field_text("ts", datetime(1970, 1, 1, 0, 0, 1, 500, tzinfo=UTC))
'1000500'
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql

from phasegate.mappings.base import Column, Mapping, Record, per_column

DIGEST_BUCKETS = 4096  # buckets a type's rows are digested in; a difference fetches one
NULL = "~"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY0 = date(2000, 1, 1)
_MICRO = timedelta(microseconds=1)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_ESCAPES["\t"] = "\\t"


class _NoTextError(Exception):
    """A value with no canonical text (its bucket is compared field by field)."""


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def json_string(text: str) -> str:
    """A string as Postgres's JSON output writes it (escape_json)."""
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _number(value: float) -> str:
    """A JSON float as jsonb prints the numeric it parsed from Python's repr."""
    text = format(Decimal(repr(value)), "f")
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]  # numeric has no negative zero
    return text


def jsonb_text(value: Any) -> str:
    """A JSON value as ``jsonb::text`` writes it: object keys by length, then bytes."""
    # By exact type first (every value decoded from JSON): this runs for each json
    # cell of every row; subclasses (an IntEnum, a str subclass) take the general path.
    exact = _BY_TYPE.get(type(value))
    return exact(value) if exact is not None else _general(value)


def _general(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, list):
        return _array(value)
    if isinstance(value, dict):
        return _object(value)
    raise _NoTextError


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise _NoTextError
    return _number(value)


def _array(value: list[Any]) -> str:
    return "[" + ", ".join([jsonb_text(v) for v in value]) + "]"


def _object(value: dict[Any, Any]) -> str:
    if not all(isinstance(k, str) for k in value):
        raise _NoTextError
    keys = sorted(value, key=_jsonb_key_order)
    return "{" + ", ".join([f"{json_string(k)}: {jsonb_text(value[k])}" for k in keys]) + "}"


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: json_string,
    dict: _object,
    list: _array,
    int: str,
    bool: lambda v: "true" if v else "false",
    type(None): lambda _v: "null",
    float: _float,
}


def _jsonb_key_order(key: str) -> tuple[int, bytes]:
    """jsonb's order of object keys: by length in bytes, then bytewise."""
    raw = key.encode()
    return len(raw), raw


def _ts(v: Any) -> str | None:
    aware = isinstance(v, datetime) and v.tzinfo is not None
    return str((v - _EPOCH) // _MICRO) if aware else None


def _date(v: Any) -> str | None:
    return str((v - _DAY0).days) if type(v) is date else None


def _texts(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) or x is None for x in v):
        return None
    return "[" + ",".join("null" if x is None else json_string(x) for x in v) + "]"


def _dates(v: Any) -> str | None:
    if not isinstance(v, list) or not all(type(x) is date and 1 <= x.year <= 9999 for x in v):
        return None
    return "[" + ",".join(f'"{x.isoformat()}"' for x in v) + "]"


_FIELD_TEXT: dict[str, Callable[[Any], str | None]] = {
    "text": lambda v: v if isinstance(v, str) else None,
    "int": lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else None,
    "bool": lambda v: ("t" if v else "f") if isinstance(v, bool) else None,
    "ts": _ts,
    "date": _date,
    "json": jsonb_text,
    "text[]": _texts,
    "date[]": _dates,
}


def field_text(kind: str, value: Any) -> str:
    """One non-NULL value's canonical text (see the table above)."""
    text = _FIELD_TEXT[kind](value)
    if text is None:
        raise _NoTextError
    return text


def _text_of(column: Column) -> tuple[str, Callable[[Any], str | None]]:
    return column.name, _FIELD_TEXT[column.kind]


def record_text(mapping: Mapping, record: Record) -> str | None:
    """The record's canonical row text; None when a value has none."""
    get = record.get
    parts = []
    for name, text_of in per_column(mapping.columns, _text_of):
        value = get(name)
        if value is None:
            parts.append(NULL)
            continue
        try:
            text = text_of(value)
        except _NoTextError:
            return None
        if text is None:
            return None
        parts.append(f"{len(text)}:{text}")
    return "".join(parts)


def row_hash(text: str) -> tuple[int, int]:
    """The two signed 64-bit halves of the text's MD5, as Postgres sums them."""
    digest = hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True), int.from_bytes(
        digest[8:], "big", signed=True
    )


class Digests:
    """Per bucket: (rows, sum of first halves, sum of second halves)."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}

    def add(self, bucket: int, text: str | None) -> None:
        self.add_hash(bucket, None if text is None else row_hash(text))

    def add_hash(self, bucket: int, halves: tuple[int, int] | None) -> None:
        """Add a row by its :func:`row_hash` (None: a row with no text)."""
        slot = self.buckets.setdefault(bucket, [0, 0, 0])
        if halves is None or slot[0] < 0:
            slot[0] = -1  # never a Postgres count: the bucket is compared field by field
            return
        slot[0] += 1
        slot[1] += halves[0]
        slot[2] += halves[1]

    def frozen(self) -> dict[int, tuple[int, int, int]]:
        return {b: (s[0], s[1], s[2]) for b, s in self.buckets.items()}


# --- the Postgres side -------------------------------------------------------------

_BUCKET_KINDS = frozenset({"text", "int"})


def _sql_text(kind: str, column: sql.Composable) -> sql.Composable:
    forms = {
        "text": "{c}",
        "int": "{c}::text",
        "bool": "CASE {c} WHEN true THEN 't' WHEN false THEN 'f' END",
        "ts": "CASE WHEN isfinite({c}) THEN (extract(epoch FROM {c}) * 1000000)::bigint::text "
        "ELSE {c}::text END",
        "date": "CASE WHEN isfinite({c}) THEN ({c} - DATE '2000-01-01')::text ELSE {c}::text END",
        "json": "{c}::text",
        "text[]": "array_to_json({c})::text",
        "date[]": "array_to_json({c})::text",
    }
    return sql.SQL(forms[kind]).format(c=column)


def row_text_sql(mapping: Mapping) -> sql.Composable:
    """SQL for a row's canonical text (the same as :func:`record_text`)."""
    parts = []
    for column in mapping.columns:
        text = _sql_text(column.kind, sql.Identifier(column.name))
        parts.append(
            sql.SQL("coalesce(length({t})::text || ':' || {t}, {null})").format(
                t=text, null=sql.Literal(NULL)
            )
        )
    return sql.SQL("concat({})").format(sql.SQL(", ").join(parts))


def bucket_sql(mapping: Mapping, buckets: int) -> sql.Composable | None:
    """SQL for a row's bucket (as :func:`~phasegate.parity.buckets.row_bucket`), or
    None when its bucket columns are not text or integers, or more than two."""
    kinds = {c.name: c.kind for c in mapping.columns}
    names = mapping.bucket_on
    if not names or len(names) > 2 or any(kinds[n] not in _BUCKET_KINDS for n in names):
        return None
    texts = [
        sql.SQL("coalesce({}, 'None') COLLATE \"C\"").format(_sql_text(kinds[n], sql.Identifier(n)))
        for n in names
    ]
    if len(texts) == 1:
        key: sql.Composable = texts[0]
    else:
        key = sql.SQL("least({a}, {b}) || chr(31) || greatest({a}, {b})").format(
            a=texts[0], b=texts[1]
        )
    return sql.SQL("(('x' || left(md5({}), 15))::bit(60)::bigint % {})::int").format(
        key, sql.Literal(buckets)
    )


def digest_query(
    mapping: Mapping, buckets: int, share: tuple[int, int] = (1, 1)
) -> sql.Composed | None:
    """One row per bucket: (bucket, rows, sum of first halves, sum of second halves);
    with ``share`` (i, N), only the buckets ``b % N == i - 1``."""
    bucket = bucket_sql(mapping, buckets)
    if bucket is None:
        return None
    half = "('x' || substr(m, {}, 16))::bit(64)::bigint"
    index, count = share
    where: sql.Composable = sql.SQL("")
    if count > 1:
        where = sql.SQL(" WHERE b % {} = {}").format(sql.Literal(count), sql.Literal(index - 1))
    return sql.SQL(
        "SELECT b, count(*), sum(" + half.format(1) + "), sum(" + half.format(17) + ") "
        "FROM (SELECT {bucket} AS b, md5({text}) AS m FROM {table}) AS t{where} GROUP BY b"
    ).format(
        bucket=bucket, text=row_text_sql(mapping), table=sql.Identifier(mapping.table), where=where
    )


def rows_query(mapping: Mapping, buckets: int, wanted: Iterable[int]) -> sql.Composed:
    """The rows of the ``wanted`` buckets (every row when buckets cannot be made in SQL)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
    table = sql.Identifier(mapping.table)
    bucket = bucket_sql(mapping, buckets)
    if bucket is None:
        return sql.SQL("SELECT {} FROM {}").format(cols, table)
    chosen = sql.Literal(sorted(wanted))
    return sql.SQL("SELECT {} FROM {} WHERE {} = ANY({}::int[])").format(
        cols, table, bucket, chosen
    )


def differing(
    kv: dict[int, tuple[int, int, int]],
    pg: dict[int, tuple[int, int, int]] | None,
    every: Sequence[int] = (),
) -> set[int]:
    """Buckets whose digests differ (all of ``every`` when Postgres has no digests)."""
    if pg is None:
        return set(every) | set(kv)
    return {b for b in kv.keys() | pg.keys() if kv.get(b) != pg.get(b)}
