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

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from phasegate.handles import HandleBook, canonical_handle
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
from phasegate.mappings.declare import Cmd, KvSource, Params, ReadPath, WriteOp, dumps, iso, ms
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


def invite_value(r: Record) -> dict[str, Any]:
    """A ``vibe:invites`` field value that decodes back to ``r``."""
    return {
        **(r.get("metadata") or {}),
        "code": r["code"],
        "created_by": r["created_by"],
        "created_at": iso(r["created_at"]),
        "created_at_ts": ms(r["created_at"]),
        "expires_at": iso(r["expires_at"]),
        "expires_at_ts": ms(r["expires_at"]),
        "used_by": r["used_by"],
        "used_at": iso(r["used_at"]),
        "status": r["status"],
        **(
            {}
            if r["bonus_for_inviting"] is None
            else {"bonus_for_inviting": r["bonus_for_inviting"]}
        ),
    }


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    yield ("HSET", "vibe:invites", r["code"], dumps(invite_value(r)))
    if r.get("created_by"):
        yield ("SADD", f"vibe:invites:by:{r['created_by']}", r["code"])


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield ("HDEL", "vibe:invites", r["code"])
    if r.get("created_by"):
        yield ("SREM", f"vibe:invites:by:{r['created_by']}", r["code"])


async def by_creator(source: KvSource, p: Params) -> list[KvEntry]:
    """The creator's index set, then those fields of ``vibe:invites``."""
    codes = sorted(cast(set[bytes], await source.kv.smembers(f"vibe:invites:by:{p['handle']}")))
    if not codes:
        return []
    values = cast(list[bytes | None], await source.kv.hmget("vibe:invites", codes))
    fields = {c: v for c, v in zip(codes, values, strict=True) if v is not None}
    return [KvEntry("vibe:invites", "hash", fields)]


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
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "invites_by_creator",
            "/api/invites",
            by_creator,
            lambda r, p: bool(r["created_by"] == p["handle"]),
            order=(("created_at", True),),
            weight=3,
        ),
    ),
    writes=(
        WriteOp("invite_create", "POST", "/api/invites", "phasegate.dualwrite.ops:invite_create"),
        WriteOp(
            "invite_redeem", "POST", "/api/invites/redeem", "phasegate.dualwrite.ops:invite_redeem"
        ),
    ),
)
