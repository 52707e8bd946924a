"""Values that decode but that a person should look at: warnings, never drops.

- a timestamp before 2000 or from 2100 on (a seconds/milliseconds mix-up, a
  sentinel such as 0 or 9999-12-31);
- a handle that is not handle-shaped (spaces, ``@`` or ``:`` inside, over 64
  characters): a key name or a display name written where a handle belongs;
- a text over :data:`MAX_TEXT` characters (the app's own limit is 2,000);
- a JSON object with over :data:`MAX_FIELDS` fields (a hash or metadata that
  grew without bound).

Each is a ``implausible_value`` warning naming the type, the KV key and the
field; the record is migrated as it is.

>>> from datetime import UTC, datetime
>>> _problem("ts", datetime(1970, 1, 1, tzinfo=UTC), False)
'timestamp 1970-01-01T00:00:00+00:00 is before 2000'
>>> _problem("text", "sam smith", True)
"handle 'sam smith' is not handle-shaped (letters, digits, '.', '-', '_'; at most 64)"
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from phasegate.findings import Finding, excerpt

if TYPE_CHECKING:
    from phasegate.mappings.base import Column, Decoded

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TEXT = 100_000
MAX_FIELDS = 1_000
_HANDLE = re.compile(r"[^\W][\w.-]{0,63}", re.UNICODE)


def implausible(type_id: str, columns: tuple[Column, ...], decoded: Decoded) -> Iterator[Finding]:
    """Warnings for the implausible values of the decoded records."""
    watched = [(c.name, c.kind, c.handle) for c in columns if c.kind in ("ts", "text", "json")]
    handles_ok: dict[str, bool] = {}
    for rkey, record in decoded.records.items():
        for name, kind, is_handle in watched:
            value = record.get(name)
            if value is None:
                continue
            if is_handle and isinstance(value, str):
                ok = handles_ok.get(value)
                if ok is None:
                    ok = handles_ok[value] = _HANDLE.fullmatch(value) is not None
                if ok:
                    continue
            problem = _problem(kind, value, is_handle)
            if problem is not None:
                source = decoded.sources.get(rkey, ":".join(map(str, rkey)))
                yield Finding(type_id, "implausible_value", source, problem, name, excerpt(value))


def _problem(kind: str, value: Any, is_handle: bool) -> str | None:
    if kind == "ts" and isinstance(value, datetime):
        if value < EARLIEST:
            return f"timestamp {value.isoformat()} is before 2000"
        if value >= LATEST:
            return f"timestamp {value.isoformat()} is in 2100 or later"
        return None
    if kind == "text" and isinstance(value, str):
        if is_handle and _HANDLE.fullmatch(value) is None:
            return (
                f"handle {value[:80]!r} is not handle-shaped "
                "(letters, digits, '.', '-', '_'; at most 64)"
            )
        if len(value) > MAX_TEXT:
            return f"text of {len(value):,} characters (over {MAX_TEXT:,})"
        return None
    if kind == "json" and isinstance(value, dict) and len(value) > MAX_FIELDS:
        return f"an object with {len(value):,} fields (over {MAX_FIELDS:,})"
    return None
