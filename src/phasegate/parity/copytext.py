"""Rows as lines of Postgres ``COPY ... FROM STDIN`` text, made without a connection.

The backfill's workers turn each record into the line Postgres would receive
from psycopg's ``write_row`` of :meth:`~phasegate.mappings.base.Mapping.to_row`
(the same SQL values), so the parent streams whole files into ``COPY`` and
spends no CPU on rows. By column kind:

=========  ===================================================
kind       text
=========  ===================================================
text       the value
int        ``str(v)``
bool       ``t`` / ``f``
ts         ISO 8601 with its offset (``2026-01-07T09:30:00+00:00``)
date       ISO 8601
json       ``json.dumps`` (what psycopg's ``Jsonb`` sends)
text[]     an array literal, every element quoted (``{"a","b \\"c\\""}``)
date[]     an array literal of ISO dates
=========  ===================================================

then escaped for COPY (backslash, tab, newline, carriage return); NULL is
``\\N``, and columns are separated by tabs.

>>> from datetime import UTC, datetime
>>> from phasegate.mappings import MAPPINGS
>>> copy_line(MAPPINGS["friends"], {"handle": "al", "friend": "b\\to"})
'al\\tb\\\\to\\n'
>>> field_copy_text("text[]", ["a", 'b "c"', None])
'{"a","b \\\\"c\\\\"",NULL}'
>>> field_copy_text("ts", datetime(2026, 1, 7, 9, 30, tzinfo=UTC))
'2026-01-07T09:30:00+00:00'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from phasegate.mappings.base import Column, Mapping, Record, per_column

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _element(value: str | None) -> str:
    if value is None:
        return "NULL"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bool(value: Any) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


_TEXT: dict[str, Callable[[Any], str]] = {
    "text": str,
    "int": str,
    "bool": _bool,
    "ts": lambda v: v.isoformat(),
    "date": lambda v: v.isoformat(),
    "json": json.dumps,
    "text[]": lambda v: "{" + ",".join(map(_element, v)) + "}",
    "date[]": lambda v: "{" + ",".join("NULL" if d is None else d.isoformat() for d in v) + "}",
}


def field_copy_text(kind: str, value: Any) -> str:
    """One non-NULL value as Postgres's input text for its column kind (not escaped)."""
    return _TEXT[kind](value)


# Kinds whose text never holds what COPY escapes (digits, signs, t/f, ISO dates).
_PLAIN = frozenset({"int", "bool", "ts", "date", "date[]"})
_Cell = tuple[str, Callable[[Any], str], bool]  # column, its text, whether escaped


def _cell(column: Column) -> _Cell:
    return column.name, _TEXT[column.kind], column.kind not in _PLAIN


def copy_line(mapping: Mapping, record: Record) -> str:
    """The record as one line of COPY text (with its newline)."""
    get = record.get
    cells = []
    for name, text, escaped in per_column(mapping.columns, _cell):
        value = get(name)
        if value is None:
            cells.append(NULL)
        elif escaped:
            cells.append(text(value).translate(_COPY_ESCAPES))
        else:
            cells.append(text(value))
    return "\t".join(cells) + "\n"
