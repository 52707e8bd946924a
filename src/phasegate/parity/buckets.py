"""Where each KV entry and Postgres row goes in a bucketed pass, by record key.

A record's bucket is a hash of the first part of its key (the handle for
streaks, friends, connections, achievements; the id or code otherwise), and
for messages the unordered (from, to) pair: every copy of a message names the
same pair, and scheme-3 read state, which ranks a pair's messages, then stays
inside one bucket. Container keys are split: a hash's fields, a set's members,
a list's JSON elements and a JSON array's or object's items go to the buckets
of the records they hold. What can only be located by decoding it (bad JSON,
an empty handle) goes to bucket 0, where decoding reports it.

>>> bucket_of("7", 16) == bucket_of("7", 16)
True
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from phasegate.handles import canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings.base import Record
from phasegate.values import DecodeError, dump_salvaged, salvage_json

# Index lists and sets only feed findings (dangling ids), not records: not routed.
DROPPED = {
    ("messages", "inbox"),
    ("messages", "outbox"),
    ("board", "feed"),
    ("board", "category"),
    ("board", "user"),
    ("invites", "by_handle"),
}


def bucket_of(first: str, buckets: int) -> int:
    digest = hashlib.blake2b(first.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _handle_bucket(raw: str, buckets: int) -> int:
    try:
        return bucket_of(canonical_handle(raw), buckets)
    except DecodeError:
        return 0


def _pair_bucket(frm: object, to: object, buckets: int) -> int:
    try:
        pair = sorted((canonical_handle(frm), canonical_handle(to)))  # type: ignore[arg-type]
    except (DecodeError, TypeError):
        return 0
    return bucket_of("\x1f".join(pair), buckets)


def _message_bucket(raw: bytes, buckets: int) -> int:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(obj, dict):
        return 0
    return _pair_bucket(obj.get("from"), obj.get("to"), buckets)


def record_bucket(type_id: str, record: Record, buckets: int) -> int:
    """The bucket of a canonical record (as read back from Postgres)."""
    if type_id == "messages":
        pair = sorted((record["from_user"], record["to_user"]))
        return bucket_of("\x1f".join(pair), buckets)
    first = {
        "users": "handle",
        "streaks": "handle",
        "achievements": "handle",
        "friends": "handle",
        "connections": "from_user",
        "invites": "code",
        "board": "id",
        "games": "id",
    }[type_id]
    return bucket_of(str(record[first]), buckets)


def split(
    type_id: str, variant: str, entry: KvEntry, buckets: int
) -> Iterator[tuple[int, KvEntry]]:
    """The entry, or its parts, with the bucket each belongs to."""
    if (type_id, variant) in DROPPED or entry.value is None:
        return
    key, value = entry.key, entry.value
    if type_id == "messages":
        yield from _split_messages(variant, entry, buckets)
    elif type_id in ("users", "invites") and variant == "registry":
        assert isinstance(value, dict)
        parts: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        for field, raw in value.items():
            name = field.decode("utf-8", "replace")
            where = (
                _handle_bucket(name, buckets) if type_id == "users" else bucket_of(name, buckets)
            )
            parts[where][field] = raw
        yield from ((b, KvEntry(key, entry.rtype, part)) for b, part in parts.items())
    elif type_id == "connections" and variant == "status_set":
        assert isinstance(value, set)
        members: dict[int, set[bytes]] = defaultdict(set)
        for member in value:
            members[_handle_bucket(member.decode("utf-8", "replace"), buckets)].add(member)
        yield from ((b, KvEntry(key, entry.rtype, part)) for b, part in members.items())
    elif type_id == "connections":
        yield _handle_bucket(key.split(":", 2)[1] if key.count(":") >= 2 else "", buckets), entry
    elif type_id == "games":
        yield from _split_json_object(entry, buckets)
    elif type_id == "board":
        yield bucket_of(key.removeprefix("board:entry:"), buckets), entry
    else:  # users user_hash, streaks, friends: the handle is in the key
        yield _handle_bucket(key.split(":", 1)[1], buckets), entry


def _split_json_object(entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    assert isinstance(entry.value, bytes)
    dump: Callable[[Any], bytes] = orjson.dumps
    try:
        games = orjson.loads(entry.value)
    except orjson.JSONDecodeError:
        games, dump = salvage_json(entry.value), dump_salvaged  # a bad byte in one game
    if not isinstance(games, dict):
        yield 0, entry
        return
    parts: dict[int, dict[str, Any]] = defaultdict(dict)
    for game_id, game in games.items():
        parts[bucket_of(game_id, buckets)][game_id] = game
    for b, part in parts.items():
        yield b, KvEntry(entry.key, entry.rtype, dump(part))


def _split_messages(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    key, value = entry.key, entry.value
    if variant == "scheme2":
        assert isinstance(value, bytes)
        yield _message_bucket(value, buckets), entry
    elif variant == "scheme1":
        assert isinstance(value, bytes)
        dump: Callable[[Any], bytes] = orjson.dumps
        try:
            items = orjson.loads(value)
        except orjson.JSONDecodeError:
            items, dump = salvage_json(value), dump_salvaged  # a bad byte in one element
        if not isinstance(items, list):
            yield 0, entry
            return
        parts: dict[int, list[Any]] = defaultdict(list)
        for item in items:
            frm, to = (item.get("from"), item.get("to")) if isinstance(item, dict) else (0, 0)
            parts[_pair_bucket(frm, to, buckets)].append(item)
        for b, part in parts.items():
            yield b, KvEntry(key, entry.rtype, dump(part))
    elif variant in ("scheme3", "thread"):
        lists: dict[int, list[bytes]] = defaultdict(list)
        for element in entry.elements():
            if element.lstrip()[:1] == b"{" or variant == "scheme3":
                lists[_message_bucket(element, buckets)].append(element)
        yield from ((b, KvEntry(key, entry.rtype, part)) for b, part in lists.items())
    elif variant == "unread":
        assert isinstance(value, dict)
        to = key.removeprefix("unread:")
        fields: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        for sender, count in value.items():
            fields[_pair_bucket(sender.decode("utf-8", "replace"), to, buckets)][sender] = count
        yield from ((b, KvEntry(key, entry.rtype, part)) for b, part in fields.items())
