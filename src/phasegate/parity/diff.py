"""Record-by-record differences between KV and Postgres, as small immutable values.

Both sides are canonical records (the mapping decoded KV; the mapping read the
Postgres row back), so a difference is a real one. Each diff names the type,
the record key, the KV key it came from, the field and both values, and says
what most likely caused it.

>>> d = FieldDiffers("messages", ("m1",), "msg:m1", "created_at", None, "2026-01-07")
>>> print(d)  # doctest: +ELLIPSIS
messages m1 (msg:m1) field created_at: KV null, Postgres "2026-01-07" -- KV has no timestamp...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from phasegate.mappings.base import Record, RecordKey
from phasegate.redact import is_secret_field, shown_secret
from phasegate.show import shown


def show_key(key: RecordKey) -> str:
    """A record key as text.

    >>> show_key(("al", "bo"))
    'al|bo'
    """
    return "|".join(str(part) for part in key)


@dataclass(frozen=True)
class MissingInPg:
    """A KV record with no Postgres row."""

    type_id: str
    key: RecordKey
    kv_key: str
    kind: str = "missing_in_pg"

    def __str__(self) -> str:
        return (
            f"{self.type_id} {show_key(self.key)} ({self.kv_key}): in KV, missing in Postgres "
            f"-- the backfill did not write it: check that it reads this key's pattern and variant"
        )


@dataclass(frozen=True)
class ExtraInPg:
    """A Postgres row with no KV record (and not allow-listed)."""

    type_id: str
    key: RecordKey
    kind: str = "extra_in_pg"

    def __str__(self) -> str:
        return (
            f"{self.type_id} {show_key(self.key)}: in Postgres, not in KV -- deleted in KV, "
            f"written after cutover (allow-list it) or invented by the backfill"
        )


@dataclass(frozen=True)
class FieldDiffers:
    """One field of one record differs; ``hint`` says the likely cause."""

    type_id: str
    key: RecordKey
    kv_key: str
    field: str
    kv_value: Any
    pg_value: Any
    hint: str = ""
    kind: str = "field_differs"

    def __str__(self) -> str:
        hint = self.hint or guess_cause(self.kv_value, self.pg_value)
        kv, pg = (shown_secret(v) for v in (self.kv_value, self.pg_value))
        if not is_secret_field(self.field):
            kv, pg = shown(self.kv_value), shown(self.pg_value)
        return (
            f"{self.type_id} {show_key(self.key)} ({self.kv_key}) field {self.field}: "
            f"KV {kv}, Postgres {pg}" + (f" -- {hint}" if hint else "")
        )


Diff = MissingInPg | ExtraInPg | FieldDiffers


def guess_cause(kv: Any, pg: Any) -> str:
    """The likely cause of one field's difference, from the two values.

    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 7, tzinfo=UTC)
    >>> guess_cause(t, t + timedelta(seconds=1))
    'shifted by +1.000 s: timestamp precision or rounding (epoch seconds vs ms?)'
    >>> guess_cause(t, t + timedelta(hours=-5))
    'shifted by -5 h: a time zone was applied (timestamps must be UTC)'
    """
    if kv is None and isinstance(pg, datetime | date | str):
        return (
            "KV has no timestamp but Postgres has one: the backfill invented it (now()?); "
            "a missing timestamp must stay NULL"
        )
    if isinstance(kv, datetime) and isinstance(pg, datetime):
        delta = pg - kv
        seconds = delta.total_seconds()
        if seconds and seconds % 3600 == 0 and abs(seconds) <= 14 * 3600:
            hours = seconds / 3600
            return f"shifted by {hours:+.0f} h: a time zone was applied (timestamps must be UTC)"
        if abs(seconds) < 60:
            return (
                f"shifted by {seconds:+.3f} s: timestamp precision or rounding "
                "(epoch seconds vs ms?)"
            )
        if datetime.now(pg.tzinfo) - pg < timedelta(days=2) and delta > timedelta(days=1):
            return "Postgres holds a recent time for an old record: replaced by now() at backfill?"
    if isinstance(kv, str) and isinstance(pg, str) and kv.lower() == pg.lower():
        return "differs only in case: handle or text normalisation"
    if kv is None or pg is None:
        return "one side is NULL: a field dropped or defaulted by the backfill"
    return ""


def diff_record(
    type_id: str, key: RecordKey, kv_key: str, kv: Record, pg: Record
) -> Iterator[FieldDiffers]:
    """Field-by-field differences of one record; swapped fields are named as such."""
    differing = [name for name in kv if kv[name] != pg.get(name)]
    for name in differing:
        swapped_with = next(
            (
                other
                for other in differing
                if other != name and kv[name] == pg.get(other) and kv[other] == pg.get(name)
            ),
            None,
        )
        hint = f"{name} and {swapped_with} are swapped" if swapped_with else ""
        yield FieldDiffers(type_id, key, kv_key, name, kv[name], pg.get(name), hint)


def diff_records(
    type_id: str,
    kv: Mapping[RecordKey, Record],
    pg: Mapping[RecordKey, Record],
    keys: Iterable[RecordKey],
    *,
    sources: Mapping[RecordKey, str],
    allowed_pg_only: frozenset[RecordKey] = frozenset(),
) -> Iterator[Diff]:
    """Differences for ``keys`` (a lazy stream, in key order given)."""
    for key in keys:
        mine, theirs = kv.get(key), pg.get(key)
        if mine is None and theirs is None:
            continue
        if theirs is None:
            yield MissingInPg(type_id, key, sources.get(key, "?"))
        elif mine is None:
            if key not in allowed_pg_only:
                yield ExtraInPg(type_id, key)
        else:
            yield from diff_record(type_id, key, sources.get(key, "?"), mine, theirs)
