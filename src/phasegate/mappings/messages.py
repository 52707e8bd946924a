"""messages: three KV schemes, all live at once, into one ``messages`` table.

1. ``vibe:messages``: one STRING, a JSON array of ``{id, from, to, text, payload?,
   createdAt, read, readAt?}``.
2. ``msg:{id}`` STRING JSON, indexed by LISTs ``inbox:{to}``, ``outbox:{from}``
   and ``thread:{a}:{b}`` of bare ids (dangling after the 30-day cleanup).
3. ``messages:{to}`` LIST of JSON ``{id, from, to, body, type, timestamp, ...}``,
   also as JSON elements of ``thread:{a}:{b}``; read state lives only in
   ``unread:{to}`` (field = sender, value = count of newest unread).

Copies of one id are merged with precedence msg:{id} > messages:{to}/thread >
vibe:messages; copies that disagree are reported.

>>> rec = _message({"id": "m1", "from": "@Al", "to": "bo", "body": "hi",
...                 "timestamp": 1767801301123, "type": "dm", "read_at": None},
...                3, HandleBook("messages"), "messages:bo")
>>> rec["from_user"], rec["text"], rec["read"], rec["metadata"]
('al', 'hi', None, {'type': 'dm'})
>>> from phasegate.keyspace import KvEntry
>>> decode([("scheme2", KvEntry("msg:m1", "string", b'{"from":"a","to":"b","text":"x"}')),
...         ("inbox", KvEntry("inbox:b", "list", [b"m1", b"gone"]))]).findings[0].kind
'dangling_id'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from phasegate.handles import HandleBook, canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings import messages_kv
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
from phasegate.mappings.declare import ReadPath, WriteOp
from phasegate.mappings.routing import pair_bucket, split_hash_fields, split_json
from phasegate.values import (
    BadElementError,
    DecodeError,
    load_json_container,
    load_object,
    text,
    to_bool,
    to_int,
    to_str,
    to_timestamp,
)

# Lower number wins when copies of one id are merged.
_PRECEDENCE = {2: 0, 3: 1, 1: 2}
_COMPARED = ("from_user", "to_user", "text", "created_at", "read", "read_at", "system_msg")
_CONSUMED = {
    1: {"id", "from", "to", "text", "payload", "createdAt", "read", "readAt"},
    2: {"id", "from", "to", "text", "payload", "createdAt", "read", "readAt", "system"},
    3: {"id", "from", "to", "body", "payload", "timestamp", "read_at"},
}


def _message(obj: dict[str, Any], scheme: int, book: HandleBook, key: str) -> Record:
    """One message object of ``scheme`` as a canonical record (``read`` of
    scheme 3 is filled later from ``unread:{to}``)."""
    msg_id = to_str(obj.get("id"), "id")
    if not msg_id:
        raise DecodeError("message has no id", "id")
    for name in ("from", "to"):
        if not isinstance(obj.get(name), str):
            raise DecodeError(f"message {msg_id} has no '{name}' handle", name)
    if scheme == 3:
        body = to_str(obj.get("body"), "body")
        created = to_timestamp(obj.get("timestamp"), "timestamp")
        read, read_at = None, to_timestamp(obj.get("read_at"), "read_at")
    else:
        body = to_str(obj.get("text"), "text")
        if body is None:
            body = to_str(obj.get("body"), "body")
        created = to_timestamp(obj.get("createdAt"), "createdAt")
        read, read_at = to_bool(obj.get("read"), "read"), to_timestamp(obj.get("readAt"), "readAt")
    metadata = {k: v for k, v in obj.items() if k not in _CONSUMED[scheme]}
    if scheme != 3 and metadata.get("body") == body:
        del metadata["body"]  # scheme 2 repeats text as body; keep only a differing one
    return {
        "id": msg_id,
        "from_user": book.canonical(obj["from"], key, "from"),
        "to_user": book.canonical(obj["to"], key, "to"),
        "text": body,
        "read": read,
        "read_at": read_at,
        "system_msg": to_bool(obj.get("system"), "system"),  # only scheme 2 says
        "payload": obj.get("payload"),
        "metadata": metadata,
        "created_at": created,
    }


class _Decode:
    """State of one messages decode: copies per id, unread counts, id indexes."""

    def __init__(self) -> None:
        self.c = Collector("messages")
        self.book = HandleBook("messages")
        self.copies: dict[str, list[tuple[int, str, Record]]] = defaultdict(list)
        self.unread: dict[tuple[str, str], int] = {}
        self.refs: list[tuple[str, str, list[str]]] = []  # (variant, key, ids)
        self.parsed: dict[bytes, Record] = {}  # scheme-3 element bytes -> its record

    def add(self, obj: object, scheme: int, key: str, where: str) -> Record | None:
        # try/except, not Collector.guard: this runs once per message copy (hot)
        try:
            if not isinstance(obj, dict):
                raise DecodeError(f"expected a message object, got {type(obj).__name__}")
            record = _message(obj, scheme, self.book, key)
        except DecodeError as exc:
            self.c.finding("undecodable", where, exc.reason, exc.field, obj)
            return None
        self.copies[record["id"]].append((scheme, where, record))
        return record

    def entry(self, variant: str, key: str, value: Any) -> None:
        if variant == "scheme1":
            with self.c.guard(key, value):
                items = load_json_container(value)
                if not isinstance(items, list):
                    raise DecodeError("vibe:messages is not a JSON array")
                for i, obj in enumerate(items):
                    if isinstance(obj, BadElementError):
                        where = f"{key}#{obj.ident or i}"
                        self.c.finding("undecodable", where, obj.reason, None, obj.raw)
                        continue
                    ident = obj.get("id", i) if isinstance(obj, dict) else i
                    self.add(obj, 1, key, f"{key}#{ident}")
        elif variant == "scheme2":
            with self.c.guard(key, value):
                obj = load_object(value)
                obj.setdefault("id", suffix(key, "msg:"))
                if obj["id"] != suffix(key, "msg:"):
                    self.c.finding("index_mismatch", key, f"key names another id {obj['id']!r}")
                self.add(obj, 2, key, key)
        elif variant in ("scheme3", "thread"):
            self.list_elements(variant, key, value)
        elif variant in ("inbox", "outbox"):
            ids = []
            for i, element in enumerate(value):
                try:
                    ids.append(text(element))
                except DecodeError as exc:
                    self.c.finding("undecodable", f"{key}#{i}", exc.reason, None, element)
            self.refs.append((variant, key, ids))
        elif variant == "unread":
            with self.c.guard(key, None):
                to = canonical_handle(suffix(key, "unread:"))
                for sender, count in value.items():
                    with self.c.guard(f"{key}#{sender!r}", count):
                        frm = canonical_handle(text(sender), "sender")
                        n = to_int(text(count), "count") or 0
                        self.unread[(to, frm)] = self.unread.get((to, frm), 0) + n

    def list_elements(self, variant: str, key: str, value: list[bytes]) -> None:
        """A messages:{to} or thread:{a}:{b} list: JSON objects, and (threads) bare ids.

        The same scheme-3 object is pushed on both lists; it is parsed once.
        """
        ids = []
        for i, element in enumerate(value):
            where = f"{key}#{i}"
            if element.lstrip()[:1] == b"{":
                cached = self.parsed.get(element)
                if cached is not None:
                    self.copies[cached["id"]].append((3, where, cached))
                    continue
                try:
                    obj = load_object(element)
                except DecodeError as exc:
                    self.c.finding("undecodable", where, exc.reason, exc.field, element)
                    continue
                record = self.add(obj, 3, key, where)
                if record is not None:
                    self.parsed[element] = record
            elif variant == "thread":
                try:
                    ids.append(text(element))
                except DecodeError as exc:
                    self.c.finding("undecodable", where, exc.reason, None, element)
            else:
                self.c.finding(
                    "undecodable",
                    where,
                    "messages:{to} element is not a JSON object",
                    None,
                    element,
                )
        if ids:
            self.refs.append((variant, key, ids))

    def scheme3_read_state(self) -> None:
        """Newest ``unread:{to}[from]`` scheme-3 messages per pair are unread."""
        by_pair: dict[tuple[str, str], dict[str, Record]] = defaultdict(dict)
        for copies in self.copies.values():
            for scheme, _key, record in copies:
                if scheme == 3:
                    by_pair[(record["to_user"], record["from_user"])][record["id"]] = record
        for pair, records in by_pair.items():
            newest_first = sorted(
                records.values(),
                key=lambda r: (r["created_at"] is not None, r["created_at"], r["id"]),
                reverse=True,
            )
            unread = self.unread.get(pair, 0)
            for rank, record in enumerate(newest_first):
                record["read"] = rank >= unread
        for copies in self.copies.values():  # every copy of one id shares its state
            for scheme, _key, record in copies:
                if scheme == 3 and record["read"] is None:
                    record["read"] = by_pair[(record["to_user"], record["from_user"])][
                        record["id"]
                    ]["read"]

    def merge(self) -> None:
        for msg_id, copies in self.copies.items():
            copies.sort(key=lambda c: (_PRECEDENCE[c[0]], c[1]))
            scheme, key, record = copies[0]
            record = dict(record)
            schemes = {scheme}
            for other_scheme, other_key, other in copies[1:]:
                if other_scheme == scheme and other == copies[0][2]:
                    continue  # the same scheme-3 object in messages:{to} and thread:
                schemes.add(other_scheme)
                merge_copy(
                    record,
                    other,
                    collector=self.c,
                    key=f"msg {msg_id}",
                    fields=_COMPARED,
                    where=f"{key} vs {other_key}",
                )
                record["metadata"] = {**other["metadata"], **record["metadata"]}
                if record["payload"] is None:
                    record["payload"] = other["payload"]
            if record["system_msg"] is None:
                record["system_msg"] = False
            record["metadata"]["kv_schemes"] = sorted(schemes)
            self.c.put((msg_id,), record, key)

    def check_indexes(self) -> None:
        known = {key[0] for key in self.c.out.records}
        for variant, key, ids in self.refs:
            missing = [i for i in ids if i not in known]
            if missing:
                shown = ", ".join(missing[:3])
                self.c.finding(
                    "dangling_id",
                    key,
                    f"{len(missing)} of {len(ids)} ids have no message (e.g. {shown}); "
                    "the 30-day cleanup deletes msg:* but leaves ids",
                )
            if variant in ("inbox", "outbox"):
                column = "to_user" if variant == "inbox" else "from_user"
                with self.c.guard(key, None):
                    owner = canonical_handle(suffix(key, f"{variant}:"))
                    wrong = [
                        i for i in ids if i in known and self.c.out.records[(i,)][column] != owner
                    ]
                    if wrong:
                        self.c.finding(
                            "index_mismatch",
                            key,
                            f"{len(wrong)} ids are not {column}={owner!r} (e.g. {wrong[0]})",
                        )


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    state = _Decode()
    for variant, entry in entries:
        state.entry(variant, entry.key, entry.value)
    state.scheme3_read_state()
    state.merge()
    state.check_indexes()
    state.c.out.findings.extend(state.book.findings())
    return state.c.out


def _message_bucket(raw: bytes, buckets: int) -> int:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(obj, dict):
        return 0
    return pair_bucket(obj.get("from"), obj.get("to"), buckets)


def _item_bucket(_index: str, item: object, buckets: int) -> int:
    frm, to = (item.get("from"), item.get("to")) if isinstance(item, dict) else (0, 0)
    return pair_bucket(frm, to, buckets)


def route(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """Every copy of a message and its read state to the bucket of its (from, to) pair."""
    key, value = entry.key, entry.value
    if variant == "scheme2":
        assert isinstance(value, bytes)
        yield _message_bucket(value, buckets), entry
    elif variant == "scheme1":
        yield from split_json(entry, buckets, _item_bucket, list)
    elif variant in ("scheme3", "thread"):
        lists: dict[int, list[bytes]] = defaultdict(list)
        for element in entry.elements():
            if element.lstrip()[:1] == b"{" or variant == "scheme3":
                lists[_message_bucket(element, buckets)].append(element)
        yield from ((b, KvEntry(key, entry.rtype, part)) for b, part in lists.items())
    elif variant == "unread":
        to = key.removeprefix("unread:")
        yield from split_hash_fields(entry, buckets, lambda sender, n: pair_bucket(sender, to, n))


NEWEST = (("created_at", True),)
MAPPING = Mapping(
    type_id="messages",
    table="messages",
    columns=(
        Column("id", "text", key=True),
        Column("from_user", "text", handle=True),
        Column("to_user", "text", handle=True),
        Column("text", "text"),
        Column("read", "bool"),
        Column("read_at", "ts"),
        Column("system_msg", "bool"),
        Column("payload", "json"),
        Column("metadata", "json"),
        Column("created_at", "ts"),
    ),
    patterns=(
        KeyPattern("vibe:messages", "string", "scheme1"),
        KeyPattern("msg:*", "string", "scheme2"),
        KeyPattern("messages:*", "list", "scheme3"),
        KeyPattern("thread:*", "list", "thread"),
        KeyPattern("inbox:*", "list", "inbox", role="index"),
        KeyPattern("outbox:*", "list", "outbox", role="index"),
        KeyPattern("unread:*", "hash", "unread", role="aux"),
    ),
    decoder=decode,
    router=route,
    bucket_columns=("from_user", "to_user"),
    recency_column="created_at",
    summary="DMs from three KV schemes, merged by id",
    kv_put=messages_kv.kv_put,
    kv_delete=messages_kv.kv_delete,
    reads=(
        ReadPath(
            "inbox",
            "/api/messages/inbox",
            messages_kv.inbox,
            lambda r, p: bool(r["to_user"] == p["handle"]),
            order=NEWEST,
            weight=30,
        ),
        ReadPath(
            "thread",
            "/api/messages/thread",
            messages_kv.thread,
            lambda r, p: {r["from_user"], r["to_user"]} == {p["handle"], p["other"]},
            order=NEWEST,
            weight=25,
        ),
        ReadPath("unread_count", weight=8),  # the badge count: no endpoint of its own
    ),
    writes=(
        WriteOp(
            "send_message",
            "POST",
            "/api/messages",
            "phasegate.dualwrite.ops:send_message",
            weight=4,
            load_sample='SELECT from_user AS "from", to_user AS "to" FROM messages '
            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 200",
            load_body=(("text", "load test: shipping it"),),
        ),
        WriteOp(
            "mark_thread_read",
            "POST",
            "/api/messages/read",
            "phasegate.dualwrite.ops:mark_thread_read",
        ),
    ),
)
