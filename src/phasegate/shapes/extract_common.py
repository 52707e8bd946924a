"""What the extractors share: the SQL a statement starts with, database receivers,
and the shapes of what they return."""

from __future__ import annotations

import re

SQL_START = re.compile(
    r"^\s*(?:\(\s*)*(WITH|SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP)\b", re.IGNORECASE
)
# Receivers whose query/execute call is a database call even when its SQL cannot be read.
DB_RECEIVER = re.compile(
    r"^(sql|db|pool|client|conn|connection|cur|cursor|tx|txn|trx|session|pg|neon|database)$",
    re.IGNORECASE,
)
Found = list[tuple[int, str, str]]  # (line, sql, form)
NotRead = list[tuple[int, str, str]]  # (line, form, why)
