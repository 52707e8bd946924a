"""users: the identity every other table references, merged from two sources.

``user:{handle}`` HASH (profile, keys, status) and the ``vibe:handles`` HASH
registry (field = handle, value = JSON with mixed naming plus arbitrary extra
fields). A handle can be in either or both; fields with no column are kept in
``metadata``, and ``metadata.kv_sources`` says which sources held the user.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("registry", KvEntry("vibe:handles", "hash",
...     {b"Seth": b'{"handle":"seth","registeredAtTs":1767801301123,"isAgent":false,"mood":1}'}))])
>>> rec = out.records[("seth",)]
>>> rec["registered_at"].isoformat(), rec["is_agent"], rec["metadata"]
('2026-01-07T15:55:01.123000+00:00', False, {'mood': 1, 'kv_sources': ['registry']})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from phasegate.handles import HandleBook, spellings, suspected_duplicates
from phasegate.keyspace import KvEntry
from phasegate.mappings.base import (
    Collector,
    Column,
    Decoded,
    KeyPattern,
    Mapping,
    Record,
    VariantEntry,
    merge_copy,
    suffix,
)
from phasegate.mappings.connections import STATUS_SETS
from phasegate.mappings.declare import (
    Cmd,
    KvSource,
    Params,
    ReadPath,
    WriteOp,
    dumps,
    gone_spellings,
    hset,
    iso,
    present,
    where_equal,
)
from phasegate.mappings.routing import handle_bucket, split_hash_fields
from phasegate.show import shown
from phasegate.values import (
    DecodeError,
    hash_field,
    load_object,
    text,
    to_bool,
    to_int,
    to_str,
    to_str_list,
    to_timestamp,
)

# user:{handle} hash field -> (column, kind)
_HASH_FIELDS = {
    "username": ("username", "text"),
    "building": ("building", "text"),
    "createdAt": ("created_at", "ts"),
    "updatedAt": ("updated_at", "ts"),
    "invitedBy": ("invited_by", "text"),
    "inviteCode": ("invite_code", "text"),
    "publicKey": ("public_key", "text"),
    "recoveryKey": ("recovery_key", "text"),
    "registry": ("registry", "text"),
    "keyRotatedAt": ("key_rotated_at", "ts"),
    "status": ("status", "text"),
}
# vibe:handles JSON field -> (column, kind); several names feed one column.
_REGISTRY_FIELDS = {
    "registeredAt": ("registered_at", "ts"),
    "registeredAtTs": ("registered_at", "ts"),
    "first_active_at": ("first_active_at", "ts"),
    "last_active_at": ("last_active_at", "ts"),
    "messages_sent": ("messages_sent", "int"),
    "genesis": ("genesis", "bool"),
    "verified": ("verified", "text"),
    "x_handle": ("x_handle", "text"),
    "github_handle": ("github_handle", "text"),
    "isAgent": ("is_agent", "bool"),
    "operator": ("operator", "text"),
    "agentType": ("agent_type", "text"),
    "capabilities": ("capabilities", "text[]"),
    "model": ("model", "text"),
    "status": ("registry_status", "text"),
}
# The name a registry value is written with (the first of several feeding one column).
_REGISTRY_NAMES: dict[str, str] = {}
for _name, (_column, _kind) in _REGISTRY_FIELDS.items():
    _REGISTRY_NAMES.setdefault(_column, _name)
_REGISTRY_FIELDS |= {
    # extra fields callers spread in that duplicate user-hash columns
    "invited_by": ("invited_by", "text"),
    "invite_code": ("invite_code", "text"),
    "publicKey": ("public_key", "text"),
}
_CONVERT: dict[str, Callable[[Any, str], Any]] = {
    "text": to_str,
    "ts": to_timestamp,
    "int": to_int,
    "bool": to_bool,
    "text[]": to_str_list,
}

COLUMNS = (
    Column("handle", "text", key=True),
    Column("username", "text"),
    Column("building", "text"),
    Column("status", "text"),
    Column("invited_by", "text"),
    Column("invite_code", "text"),
    Column("public_key", "text"),
    Column("recovery_key", "text"),
    Column("registry", "text"),
    Column("key_rotated_at", "ts"),
    Column("created_at", "ts"),
    Column("updated_at", "ts"),
    Column("registered_at", "ts"),
    Column("first_active_at", "ts"),
    Column("last_active_at", "ts"),
    Column("messages_sent", "int"),
    Column("genesis", "bool"),
    Column("verified", "text"),
    Column("x_handle", "text"),
    Column("github_handle", "text"),
    Column("is_agent", "bool"),
    Column("operator", "text"),
    Column("agent_type", "text"),
    Column("capabilities", "text[]"),
    Column("model", "text"),
    Column("registry_status", "text"),
    Column("metadata", "json"),
)
_DATA_COLUMNS = tuple(c.name for c in COLUMNS if c.name not in ("handle", "metadata"))


def _empty(handle: str) -> Record:
    record: Record = {c.name: None for c in COLUMNS}
    record.update(handle=handle, metadata={})
    return record


def _fields(
    values: dict[str, Any], table: dict[str, tuple[str, str]], where: str, c: Collector
) -> tuple[Record, dict[str, Any]]:
    """Known fields converted into columns, and the rest for metadata."""
    columns: Record = {}
    extra: dict[str, Any] = {}
    for name, value in values.items():
        if name not in table:
            extra[name] = value
            continue
        column, kind = table[name]
        converted = _CONVERT[kind](value, name)
        if converted is None:
            continue
        if column in columns and columns[column] != converted:
            c.finding(
                "conflicting_copies",
                where,
                f"{column} given twice: {shown(columns[column], 80)} and {shown(converted, 80)}",
                name,
            )
            continue
        columns[column] = converted
    return columns, extra


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("users")
    book = HandleBook("users")
    # Every copy of a user first, then merged in one order whatever order the keys
    # came in (SCAN's, the readers'): the user:{handle} hash, then registry fields,
    # each by key. So a field the copies disagree on keeps the same value every run.
    copies: list[tuple[int, str, str, Record]] = []  # (rank, where, source, candidate)
    for variant, entry in entries:
        sources: list[tuple[str | bytes, str, Any]] = []  # (raw handle, where, raw value)
        if variant == "user_hash":
            sources.append((suffix(entry.key, "user:"), entry.key, entry.value))
        else:
            assert isinstance(entry.value, dict)
            sources.extend(
                (f, f"{entry.key}#{f.decode('utf-8', 'backslashreplace')}", v)
                for f, v in entry.value.items()
            )
        for raw_handle, where, raw in sources:
            with c.guard(where, raw):
                if isinstance(raw_handle, str):
                    handle = book.canonical(raw_handle, where)
                    values = {text(k): hash_field(v) for k, v in raw.items()}
                    columns, extra = _fields(values, _HASH_FIELDS, where, c)
                    source = "user"
                else:
                    handle = book.canonical(text(raw_handle), where)
                    obj = load_object(raw)
                    named = obj.pop("handle", None)
                    if named is not None and book.canonical(str(named), where) != handle:
                        raise DecodeError(f"registry field {raw_handle!r} holds handle {named!r}")
                    columns, extra = _fields(obj, _REGISTRY_FIELDS, where, c)
                    source = "registry"
                candidate = _empty(handle)
                candidate.update(columns)
                candidate["metadata"] = extra
                copies.append((source != "user", where, source, candidate))
    users: dict[str, Record] = {}
    first_seen: dict[str, str] = {}
    for _rank, where, source, candidate in sorted(copies, key=lambda c: c[:2]):
        first_seen.setdefault(candidate["handle"], where)
        _merge(users, candidate, source, where, c)
    for handle, record in users.items():
        record["metadata"]["kv_sources"] = sorted(set(record["metadata"]["kv_sources"]))
        c.put((handle,), record, first_seen[handle])
    c.out.findings.extend(book.findings())
    c.out.findings.extend(suspected_duplicates("users", set(users)))
    return c.out


def _merge(users: dict[str, Record], new: Record, source: str, where: str, c: Collector) -> None:
    handle = new["handle"]
    current = users.get(handle)
    if current is None:
        new["metadata"]["kv_sources"] = [source]
        users[handle] = new
        return
    merge_copy(current, new, collector=c, key=where, fields=_DATA_COLUMNS, where=source)
    for name, value in new["metadata"].items():
        current["metadata"].setdefault(name, value)
    current["metadata"]["kv_sources"].append(source)


def _json_value(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


def user_values(r: Record) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The ``user:{h}`` hash fields and the ``vibe:handles`` JSON of a user record."""
    fields: dict[str, bytes] = {}
    for name, (column, _kind) in _HASH_FIELDS.items():
        value = _json_value(r.get(column))
        if value is not None:
            fields[name] = value.encode() if isinstance(value, str) else dumps(value)
    meta = r.get("metadata") or {}
    registry = {
        **{k: v for k, v in meta.items() if k != "kv_sources"},
        "handle": r["handle"],
        **present({name: _json_value(r.get(col)) for col, name in _REGISTRY_NAMES.items()}),
    }
    for column in ("invited_by", "invite_code"):
        if r.get(column) is not None and "user" not in meta.get("kv_sources", ["user"]):
            registry[column] = r[column]
    return fields, registry


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    """The sources the user came from (``metadata.kv_sources``), other spellings gone."""
    handle = r["handle"]
    sources = (r.get("metadata") or {}).get("kv_sources") or ["registry", "user"]
    fields, registry = user_values(r)
    yield from gone_spellings("user:", handle)
    for spelling in spellings(handle)[1:]:
        yield ("HDEL", "vibe:handles", spelling)
    if "user" in sources:
        yield hset(f"user:{handle}", fields)
    if "registry" in sources:
        yield ("HSET", "vibe:handles", handle, dumps(registry))
    else:
        yield ("HDEL", "vibe:handles", handle)


def kv_delete(r: Record) -> Iterator[Cmd]:
    """The user's own keys and the per-handle index keys; the records that
    reference it are deleted by steps of their own (the cascade)."""
    handle = r["handle"]
    yield from gone_spellings("user:", handle)
    for spelling in spellings(handle):
        yield ("HDEL", "vibe:handles", spelling)
    for prefix in ("inbox:", "outbox:", "unread:", "messages:", "friends:", "board:user:"):
        yield ("DEL", f"{prefix}{handle}")
    yield ("DEL", f"vibe:invites:by:{handle}")
    for status in STATUS_SETS:
        yield ("DEL", f"consent:{status}:{handle}")


async def profile(source: KvSource, p: Params) -> list[KvEntry]:
    """``user:{h}`` in every spelling, and those fields of ``vibe:handles``."""
    names = spellings(p["handle"])
    entries = await source.entries([f"user:{s}" for s in names])
    fields = [s.encode() for s in names]
    values = cast(list[bytes | None], await source.kv.hmget("vibe:handles", fields))
    registry = {f: v for f, v in zip(fields, values, strict=True) if v is not None}
    if registry:
        entries.append(KvEntry("vibe:handles", "hash", registry))
    return entries


def route(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """``vibe:handles`` fields to their handle's bucket; ``user:{handle}`` by its key."""
    if variant == "registry":
        yield from split_hash_fields(entry, buckets, handle_bucket)
    else:
        yield handle_bucket(entry.key.split(":", 1)[1], buckets), entry


MAPPING = Mapping(
    type_id="users",
    table="users",
    columns=COLUMNS,
    patterns=(
        KeyPattern("user:*", "hash", "user_hash"),
        KeyPattern("vibe:handles", "hash", "registry"),
    ),
    decoder=decode,
    router=route,
    recency_column="created_at",
    summary="user:{handle} hashes merged with the vibe:handles registry",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "user_by_handle",
            "/api/users/{handle}",
            profile,
            where_equal(handle="handle"),
            one=True,
            weight=6,
        ),
    ),
    writes=(
        WriteOp("user_register", "POST", "/api/users", "phasegate.dualwrite.ops:user_register"),
        WriteOp(
            "user_delete", "DELETE", "/api/users/{handle}", "phasegate.dualwrite.ops:user_delete"
        ),
    ),
)
