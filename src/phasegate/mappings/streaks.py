"""streaks: ``streak:{handle}`` as a HASH or as a JSON STRING, same key name.

HASH: ``current, longest, totalDays`` (decimal strings), ``lastActive``
(YYYY-MM-DD). STRING: JSON ``{current, longest, lastActive, activeDays[],
badges[]}`` (badges go to achievements). Keys are not normalised, so
``streak:@Seth`` and ``streak:seth`` can both exist: the copy with the latest
``lastActive`` wins and the other is reported.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("hash", KvEntry("streak:@Seth", "hash",
...     {b"current": b"3", b"longest": b"9", b"totalDays": b"20", b"lastActive": b"2026-01-07"}))])
>>> rec = out.records[("seth",)]
>>> rec["current_streak"], rec["total_days"], rec["active_days"], str(rec["last_active"])
(3, 20, None, '2026-01-07')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from phasegate.handles import HandleBook
from phasegate.keyspace import KvEntry
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    Record,
    VariantEntry,
    suffix,
)
from phasegate.mappings.declare import (
    Cmd,
    KvSource,
    Params,
    ReadPath,
    WriteOp,
    day,
    dumps,
    gone_spellings,
    hset,
    iso,
    keys_of,
    where_equal,
)
from phasegate.values import DecodeError, hash_field, load_object, text, to_date, to_int

_HASH = {"current", "longest", "totalDays", "lastActive"}
_JSON = {"current", "longest", "lastActive", "activeDays", "badges"}


def streak_record(handle: str, values: dict[str, Any], variant: str) -> Record:
    """The canonical streak from a decoded hash or JSON object."""
    active = values.get("activeDays")
    if active is not None and not isinstance(active, list):
        raise DecodeError("activeDays is not a list", "activeDays")
    known = _HASH if variant == "hash" else _JSON
    extra = {k: v for k, v in values.items() if k not in known}
    return {
        "handle": handle,
        "current_streak": to_int(values.get("current"), "current"),
        "longest_streak": to_int(values.get("longest"), "longest"),
        "total_days": to_int(values.get("totalDays"), "totalDays") if variant == "hash" else None,
        "last_active": to_date(values.get("lastActive"), "lastActive"),
        "active_days": None if active is None else [to_date(d, "activeDays") for d in active],
        "metadata": extra or None,
    }


def read_streak(entry: KvEntry, variant: str) -> dict[str, Any]:
    """The raw fields of a streak key, as a dict (hash fields or JSON object)."""
    if variant == "hash":
        assert isinstance(entry.value, dict)
        return {text(k): hash_field(v) for k, v in entry.value.items()}
    assert isinstance(entry.value, bytes)
    return load_object(entry.value)


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("streaks")
    book = HandleBook("streaks")
    chosen: dict[str, tuple[str, Record]] = {}
    for variant, entry in entries:
        with c.guard(entry.key, entry.value):
            handle = book.canonical(suffix(entry.key, "streak:"), entry.key)
            record = streak_record(handle, read_streak(entry, variant), variant)
            mine = (entry.key, record)
            chosen[handle] = _pick(c, chosen[handle], mine) if handle in chosen else mine
    for handle, (key, record) in chosen.items():
        c.put((handle,), record, key)
    c.out.findings.extend(book.findings())
    return c.out


def _pick(c: Collector, a: tuple[str, Record], b: tuple[str, Record]) -> tuple[str, Record]:
    """Of two spellings' streaks keep the most recent; report the other if different."""

    def rank(item: tuple[str, Record]) -> tuple[Any, ...]:
        last = item[1]["last_active"]
        return (last is not None, last, item[0])

    keep, drop = sorted((a, b), key=rank, reverse=True)
    if keep[1] != drop[1]:
        c.finding(
            "conflicting_copies",
            drop[0],
            f"two spellings of handle {keep[1]['handle']!r}: kept {keep[0]} (latest "
            f"lastActive), dropped this one",
            raw=drop[1],
        )
    return keep


def _badge(a: Record) -> object:
    return (
        a["badge"]
        if a["unlocked_at"] is None
        else {"id": a["badge"], "unlockedAt": iso(a["unlocked_at"])}
    )


def kv_put(r: Record, badges: Sequence[Record] = ()) -> Iterator[Cmd]:
    """HASH if the record has ``total_days`` (only the HASH shape has it), else JSON
    with its badges (the achievements it carries); other spellings of the key are
    superseded."""
    key = f"streak:{r['handle']}"
    yield from gone_spellings("streak:", r["handle"], keep=key)
    extra = r.get("metadata") or {}
    if r["total_days"] is not None:
        fields = {
            **{k: v if isinstance(v, str) else dumps(v) for k, v in extra.items()},
            "current": str(r["current_streak"]) if r["current_streak"] is not None else b"null",
            "longest": str(r["longest_streak"]) if r["longest_streak"] is not None else b"null",
            "totalDays": str(r["total_days"]),
            "lastActive": day(r["last_active"]) or b"null",
        }
        yield ("DEL", key)
        yield hset(key, fields)
        return
    obj = {
        **extra,
        "current": r["current_streak"],
        "longest": r["longest_streak"],
        "lastActive": day(r["last_active"]),
        "badges": [_badge(a) for a in sorted(badges, key=lambda a: a["badge"])],
    }
    if r["active_days"] is not None:
        obj["activeDays"] = [day(d) for d in r["active_days"]]
    yield ("SET", key, dumps(obj))


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield from gone_spellings("streak:", r["handle"])


async def every_streak(source: KvSource, _p: Params) -> list[KvEntry]:
    return await source.entries(await source.scan("streak:*"))


MAPPING = Mapping(
    type_id="streaks",
    table="streaks",
    columns=(
        Column("handle", "text", key=True, handle=True),
        Column("current_streak", "int"),
        Column("longest_streak", "int"),
        Column("total_days", "int"),
        Column("last_active", "date"),
        Column("active_days", "date[]"),
        Column("metadata", "json"),
    ),
    patterns=(
        KeyPattern("streak:*", "hash", "hash"),
        KeyPattern("streak:*", "string", "json"),
    ),
    decoder=decode,
    recency_column="last_active",
    summary="streak:{handle} as HASH or JSON STRING; spellings merged",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "streak_of_handle",
            "/api/streaks/{handle}",
            keys_of("streak:{handle}"),
            where_equal(handle="handle"),
            one=True,
            weight=5,
        ),
        ReadPath(
            "streak_leaderboard",
            "/api/streaks",
            every_streak,
            order=(("current_streak", True), ("handle", False)),
            weight=3,
        ),
    ),
    writes=(
        WriteOp(
            "streak_checkin",
            "POST",
            "/api/streaks/checkin",
            "phasegate.dualwrite.ops:streak_checkin",
        ),
    ),
)
