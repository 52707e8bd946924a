"""invites: the ``vibe:invites`` HASH (field = code, value = JSON) into ``invites``.

Timestamps come twice (``created_at`` ISO and ``created_at_ts`` ms, likewise
``expires_at``); copies that disagree are reported and the ISO one is kept.
``vibe:invites:by:{handle}`` SETs are a derived index: checked, not migrated.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("registry", KvEntry("vibe:invites", "hash", {b"VIBE-AB2C-SETH":
...     b'{"code":"VIBE-AB2C-SETH","created_by":"Seth","created_at":"2026-01-07T15:55:01.123Z",'
...     b'"created_at_ts":1767801301123,"used_by":null,"status":"available"}'}))])
>>> rec = out.records[("VIBE-AB2C-SETH",)]
>>> rec["created_by"], rec["created_at"].isoformat(), rec["used_by"], out.findings
('seth', '2026-01-07T15:55:01.123000+00:00', None, [])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from phasegate.handles import HandleBook, canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    VariantEntry,
    suffix,
)
from phasegate.mappings.routing import bucket_of, split_hash_fields
from phasegate.values import DecodeError, load_object, text, to_str, to_timestamp

_CONSUMED = {
    "code",
    "created_by",
    "used_by",
    "used_at",
    "status",
    "bonus_for_inviting",
    "created_at",
    "created_at_ts",
    "expires_at",
    "expires_at_ts",
}

# The app's invite codes: VIBE-XXXX-HAND, four of these, then the inviter's initials.
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _twice(c: Collector, where: str, obj: dict[str, object], name: str) -> object:
    iso = to_timestamp(obj.get(name), name)
    ms = to_timestamp(obj.get(f"{name}_ts"), f"{name}_ts")
    if iso is not None and ms is not None and iso != ms:
        c.finding(
            "conflicting_copies",
            where,
            f"{name} {iso.isoformat()} vs {name}_ts {ms.isoformat()}: kept {name}",
            name,
        )
    return iso if iso is not None else ms


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("invites")
    book = HandleBook("invites")
    by_handle: list[tuple[str, list[str]]] = []
    for variant, entry in entries:
        if variant == "by_handle":
            assert isinstance(entry.value, set)
            codes = []
            for member in sorted(entry.value):
                with c.guard(entry.key, member):
                    codes.append(text(member))
            by_handle.append((entry.key, codes))
            continue
        assert isinstance(entry.value, dict)
        for field, raw in sorted(entry.value.items()):
            where = f"{entry.key}#{field.decode('utf-8', 'backslashreplace')}"
            with c.guard(where, raw):
                code = text(field)
                obj = load_object(raw)
                if obj.get("code", code) != code:
                    raise DecodeError(f"field {code!r} holds code {obj['code']!r}", "code")
                creator = obj.get("created_by")
                user = obj.get("used_by")
                extra = {k: v for k, v in obj.items() if k not in _CONSUMED}
                c.put(
                    (code,),
                    {
                        "code": code,
                        "created_by": None
                        if creator is None
                        else book.canonical(str(creator), where, "created_by"),
                        "used_by": None
                        if user is None
                        else book.canonical(str(user), where, "used_by"),
                        "used_at": to_timestamp(obj.get("used_at"), "used_at"),
                        "expires_at": _twice(c, where, obj, "expires_at"),
                        "created_at": _twice(c, where, obj, "created_at"),
                        "status": to_str(obj.get("status"), "status"),
                        "bonus_for_inviting": obj.get("bonus_for_inviting"),
                        "metadata": extra or None,
                    },
                    where,
                )
    for key, codes in by_handle:
        with c.guard(key, None):
            owner = canonical_handle(suffix(key, "vibe:invites:by:"))
            missing = [code for code in codes if (code,) not in c.out.records]
            if missing:
                c.finding(
                    "dangling_id",
                    key,
                    f"{len(missing)} codes not in vibe:invites (e.g. {missing[0]})",
                )
            wrong = [
                code
                for code in codes
                if (code,) in c.out.records and c.out.records[(code,)]["created_by"] != owner
            ]
            if wrong:
                c.finding(
                    "index_mismatch",
                    key,
                    f"{len(wrong)} codes not created by {owner!r} (e.g. {wrong[0]})",
                )
    c.out.findings.extend(book.findings())
    return c.out


def route(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """``vibe:invites`` fields to the bucket of their code."""
    yield from split_hash_fields(entry, buckets, bucket_of)


MAPPING = Mapping(
    type_id="invites",
    table="invites",
    columns=(
        Column("code", "text", key=True),
        Column("created_by", "text", handle=True),
        Column("used_by", "text", handle=True),
        Column("used_at", "ts"),
        Column("expires_at", "ts"),
        Column("created_at", "ts"),
        Column("status", "text"),
        Column("bonus_for_inviting", "json"),
        Column("metadata", "json"),
    ),
    patterns=(
        KeyPattern("vibe:invites", "hash", "registry"),
        KeyPattern("vibe:invites:by:*", "set", "by_handle", role="index"),
    ),
    decoder=decode,
    router=route,
    recency_column="created_at",
    summary="invite codes from the vibe:invites hash",
)
