r"""Values as a person reads them, in every message, finding and report.

Timestamps are ISO-8601 UTC with milliseconds, dates ``YYYY-MM-DD``, text and
JSON compact JSON (control characters and invalid bytes escaped), bytes as
escaped text with a ``b`` prefix; anything longer than ``limit`` characters is
cut and says how long it was. Never a Python repr.

>>> from datetime import datetime, UTC
>>> shown(datetime(2026, 6, 23, 16, 0, 25, 346000, tzinfo=UTC))
'2026-06-23T16:00:25.346Z'
>>> shown("hi"), shown(None), shown(True), shown({"a": [1, "x"]})
('"hi"', 'null', 'true', '{"a":[1,"x"]}')
>>> shown(b"ok\xff")
'b"ok\\xff"'
>>> shown("x" * 300, limit=10)
'"xxxxxxxx… (302 characters)'
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

LIMIT = 120


def plain(value: Any) -> Any:
    """``value`` with timestamps and dates as text and containers recursed (for JSON)."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        text = moment.isoformat(timespec="milliseconds").replace("+00:00", "")
        return text + "Z" if value.tzinfo else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    return value


def shown(value: Any, limit: int = LIMIT) -> str:
    """One value as compact text, cut to ``limit`` characters with its length said."""
    if isinstance(value, datetime | date):
        text = str(plain(value))
    elif isinstance(value, bytes):
        text = 'b"' + "".join(map(_byte, value)) + '"'
    else:
        text = _json(plain(value))
    if len(text) > limit:
        return f"{text[: limit - 1]}… ({len(text):,} characters)"
    return text


def _byte(b: int) -> str:
    if b in (0x22, 0x5C):  # " and \
        return "\\" + chr(b)
    return chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}"


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, odd objects
        return str(value)
