"""achievements: no key of their own; the ``badges[]`` of JSON streaks.

One row per (handle, badge). A badge is a string (``verified_builder``) or an
object ``{id|badge|name, unlockedAt?}``. KV never recorded when a plain badge
was unlocked, so ``unlocked_at`` is NULL then, never now().

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("json", KvEntry("streak:Seth", "string",
...     b'{"current":7,"longest":7,"lastActive":"2026-01-07","badges":["verified_builder"]}'))])
>>> list(out.records)
[('seth', 'verified_builder')]
"""

from __future__ import annotations

from collections.abc import Iterable

from phasegate.handles import canonical_handle
from phasegate.mappings.base import Collector, Column, Decoded, Mapping, VariantEntry, suffix
from phasegate.mappings.streaks import read_streak
from phasegate.values import DecodeError, to_timestamp


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("achievements")
    for variant, entry in entries:
        if variant != "json":
            continue
        with c.guard(entry.key, entry.value):
            handle = canonical_handle(suffix(entry.key, "streak:"))
            badges = read_streak(entry, variant).get("badges") or []
            if not isinstance(badges, list):
                raise DecodeError("badges is not a list", "badges")
            for badge in badges:
                with c.guard(f"{entry.key}#badges", badge):
                    name, unlocked = _badge(badge)
                    key = (handle, name)
                    previous = c.out.records.get(key)
                    if previous is not None and previous["unlocked_at"] is not None:
                        continue  # same badge under two spellings: keep the dated copy
                    record = {"handle": handle, "badge": name, "unlocked_at": unlocked}
                    c.put(key, record, entry.key)
    return c.out


def _badge(badge: object) -> tuple[str, object]:
    if isinstance(badge, str) and badge:
        return badge, None
    if isinstance(badge, dict):
        name = badge.get("id") or badge.get("badge") or badge.get("name")
        if isinstance(name, str) and name:
            when = badge.get("unlockedAt", badge.get("unlocked_at"))
            return name, to_timestamp(when, "unlockedAt")
    raise DecodeError(f"badge is neither a name nor an object with one: {badge!r:.60}", "badges")


MAPPING = Mapping(
    type_id="achievements",
    table="achievements",
    columns=(
        Column("handle", "text", key=True, handle=True),
        Column("badge", "text", key=True),
        Column("unlocked_at", "ts"),
    ),
    patterns=(),
    borrows=("streaks",),
    decoder=decode,
    recency_column="unlocked_at",
    summary="badges[] of JSON streaks, one row per badge",
    carried_by="streaks",
)
