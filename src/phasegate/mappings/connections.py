"""connections: consent between users, from two KV schemes.

``consent:{from}:{to}`` STRING JSON ``{status, requestedAt, respondedAt?,
message?, grandfathered?}`` (some carry a stray ``_source``), and SETs
``consent:{pending|accepted|blocked}:{to}`` of ``from`` handles. Both match
``consent:*:*``: the Redis TYPE decides, never the key shape. A pair known only
from a set becomes a record with NULL timestamps; a set that disagrees with
the record is reported and the record wins.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("status_set", KvEntry("consent:accepted:Bo", "set", {b"@al"}))])
>>> rec = out.records[("al", "bo")]
>>> rec["status"], rec["requested_at"]
('accepted', None)
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
)
from phasegate.mappings.declare import Cmd, KvSource, Params, ReadPath, WriteOp, dumps, iso, present
from phasegate.mappings.routing import handle_bucket, split_set_members
from phasegate.values import DecodeError, load_object, text, to_bool, to_str, to_timestamp

STATUS_SETS = ("pending", "accepted", "blocked")
_CONSUMED = {"status", "requestedAt", "respondedAt", "message", "grandfathered"}


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("connections")
    book = HandleBook("connections")
    from_sets: dict[tuple[str, str], tuple[str, str]] = {}  # pair -> (status, key)
    for variant, entry in entries:
        parts = entry.key.split(":", 2)
        if variant == "status_set":
            assert isinstance(entry.value, set)
            status = parts[1]
            with c.guard(entry.key, None):
                to = book.canonical(parts[2], entry.key, "to")
                for member in sorted(entry.value):
                    with c.guard(entry.key, member):
                        pair = (book.canonical(text(member), entry.key, "from"), to)
                        if pair in from_sets and from_sets[pair][0] != status:
                            c.finding(
                                "conflicting_copies",
                                entry.key,
                                f"{pair[0]!r} is also in {from_sets[pair][1]}",
                                "status",
                            )
                            continue
                        from_sets[pair] = (status, entry.key)
            continue
        with c.guard(entry.key, entry.value):
            if len(parts) != 3:
                raise DecodeError("expected consent:{from}:{to}")
            assert isinstance(entry.value, bytes)
            obj = load_object(entry.value)
            pair = (
                book.canonical(parts[1], entry.key, "from"),
                book.canonical(parts[2], entry.key, "to"),
            )
            extra = {k: v for k, v in obj.items() if k not in _CONSUMED}
            c.put(
                pair,
                {
                    "from_user": pair[0],
                    "to_user": pair[1],
                    "status": to_str(obj.get("status"), "status"),
                    "requested_at": to_timestamp(obj.get("requestedAt"), "requestedAt"),
                    "responded_at": to_timestamp(obj.get("respondedAt"), "respondedAt"),
                    "message": to_str(obj.get("message"), "message"),
                    "grandfathered": to_bool(obj.get("grandfathered"), "grandfathered"),
                    "metadata": extra or None,
                },
                entry.key,
            )
    for pair, (status, key) in sorted(from_sets.items()):
        record = c.out.records.get(pair)
        if record is None:
            c.put(
                pair,
                {
                    "from_user": pair[0],
                    "to_user": pair[1],
                    "status": status,
                    "requested_at": None,
                    "responded_at": None,
                    "message": None,
                    "grandfathered": None,
                    "metadata": {"kv_source": "status_set"},
                },
                key,
            )
        elif record["status"] != status:
            c.finding(
                "index_mismatch",
                key,
                f"{pair[0]!r}->{pair[1]!r} is {record['status']!r} in consent:{pair[0]}:{pair[1]}",
                "status",
            )
    c.out.findings.extend(book.findings())
    return c.out


def route(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """Status-set members (the ``from`` handles) and ``consent:{from}:{to}`` records
    to the bucket of the ``from`` handle."""
    if variant == "status_set":
        yield from split_set_members(entry, buckets, handle_bucket)
    else:
        key = entry.key
        yield handle_bucket(key.split(":", 2)[1] if key.count(":") >= 2 else "", buckets), entry


def connection_value(r: Record) -> dict[str, Any]:
    """A ``consent:{from}:{to}`` value that decodes back to ``r``."""
    return {
        **(r.get("metadata") or {}),
        **present(
            {
                "status": r["status"],
                "requestedAt": iso(r["requested_at"]),
                "respondedAt": iso(r["responded_at"]),
                "message": r["message"],
                "grandfathered": r["grandfathered"],
            }
        ),
    }


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    """The record, and its ``from`` in the set of its status only."""
    frm, to = r["from_user"], r["to_user"]
    for status in STATUS_SETS:
        yield ("SREM", f"consent:{status}:{to}", frm)
    yield ("SET", f"consent:{frm}:{to}", dumps(connection_value(r)))
    if r["status"] in STATUS_SETS:
        yield ("SADD", f"consent:{r['status']}:{to}", frm)


def kv_delete(r: Record) -> Iterator[Cmd]:
    frm, to = r["from_user"], r["to_user"]
    for status in STATUS_SETS:
        yield ("SREM", f"consent:{status}:{to}", frm)
    yield ("DEL", f"consent:{frm}:{to}")


async def pending_of(source: KvSource, p: Params) -> list[KvEntry]:
    """The pending set and every ``consent:{from}:{h}`` record: some requests were
    written as a record only, so the set alone misses them (a SCAN, as the
    Phase A gate found)."""
    return await source.entries(await source.scan(f"consent:*:{p['handle']}"))


def _op(name: str, path: str) -> WriteOp:
    return WriteOp(name, "POST", path, f"phasegate.dualwrite.ops:{name}")


MAPPING = Mapping(
    type_id="connections",
    table="connections",
    columns=(
        Column("from_user", "text", key=True, handle=True),
        Column("to_user", "text", key=True, handle=True),
        Column("status", "text"),
        Column("requested_at", "ts"),
        Column("responded_at", "ts"),
        Column("message", "text"),
        Column("grandfathered", "bool"),
        Column("metadata", "json"),
    ),
    patterns=(
        *(KeyPattern(f"consent:{s}:*", "set", "status_set") for s in STATUS_SETS),
        KeyPattern("consent:*:*", "string", "record"),
    ),
    decoder=decode,
    router=route,
    recency_column="requested_at",
    summary="consent records and pending/accepted/blocked sets",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "pending_connections",
            "/api/connections/pending",
            pending_of,
            lambda r, p: bool(r["to_user"] == p["handle"] and r["status"] == "pending"),
            order=(("requested_at", True), ("from_user", False)),
            weight=3,
        ),
    ),
    writes=(
        _op("connection_request", "/api/connections"),
        _op("connection_accept", "/api/connections/accept"),
        _op("connection_block", "/api/connections/block"),
    ),
)
