"""Routing KV entries and records to comparison buckets: the pieces a mapping uses.

A record's bucket is a hash of its bucket key: the values of the mapping's
``bucket_on`` columns (by default its first key column), joined unordered when
there are several (messages route by the unordered (from, to) pair, so every
copy of a message and scheme-3 read state land in one bucket). A KV entry is
routed by its mapping's ``router`` when it has one (containers split into the
parts each bucket's records need); by default the part of the key the glob's
``*`` matched is the bucket key (canonical when the column is a handle).
Whatever can only be located by decoding it goes to bucket 0, where decoding
reports it.

>>> bucket_of("7", 16) == bucket_of("7", 16)
True
>>> bucket_text(["bo", "al"]) == bucket_text(["al", "bo"])
True
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from phasegate.handles import canonical_handle, canonical_text
from phasegate.keyspace import KvEntry
from phasegate.values import DecodeError, dump_salvaged, salvage_json

# (variant, entry, buckets) -> (bucket, part) for each part of the entry
Router = Callable[[str, KvEntry, int], Iterator[tuple[int, KvEntry]]]


def bucket_of(text: str, buckets: int) -> int:
    """The top 60 bits of the text's MD5, modulo ``buckets``: Postgres computes the
    same (``('x' || left(md5(t), 15))::bit(60)::bigint``), so it can digest its rows
    by bucket itself (see :mod:`phasegate.parity.digest`)."""
    digest = hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) % buckets


def bucket_text(values: Iterable[str]) -> str:
    """One bucket key from one or more column values (several: order-free)."""
    parts = list(values)
    return parts[0] if len(parts) == 1 else "\x1f".join(sorted(parts))


def handle_bucket(raw: str, buckets: int) -> int:
    try:
        return bucket_of(canonical_handle(raw), buckets)
    except DecodeError:
        return 0


def pair_bucket(first: object, second: object, buckets: int) -> int:
    """The bucket of an unordered pair of handles."""
    if isinstance(first, str) and isinstance(second, str):
        return _str_pair_bucket(first, second, buckets)
    return 0  # not a pair of handles: decoding reports it


def _str_pair_bucket(first: str, second: str, buckets: int) -> int:
    # The readers route every copy of every message here (730k at 12mo); the
    # handles' canonical forms are cached (the pairs are not: 490k pairs in 500k
    # messages of the seeded 12mo keyspace, so a cache of them only took memory).
    one, other = canonical_text(first), canonical_text(second)
    if not one or not other:
        return 0  # an empty handle: decoding reports it
    return bucket_of(bucket_text((one, other)), buckets)


def split_hash_fields(
    entry: KvEntry, buckets: int, where: Callable[[str, int], int]
) -> Iterator[tuple[int, KvEntry]]:
    """A HASH of records, one per field: each field to the bucket ``where`` names."""
    assert isinstance(entry.value, dict)
    parts: dict[int, dict[bytes, bytes]] = defaultdict(dict)
    for field, raw in entry.value.items():
        parts[where(field.decode("utf-8", "replace"), buckets)][field] = raw
    yield from ((b, KvEntry(entry.key, entry.rtype, part)) for b, part in parts.items())


def split_set_members(
    entry: KvEntry, buckets: int, where: Callable[[str, int], int]
) -> Iterator[tuple[int, KvEntry]]:
    """A SET whose members name records: each member to its record's bucket."""
    assert isinstance(entry.value, set)
    members: dict[int, set[bytes]] = defaultdict(set)
    for member in entry.value:
        members[where(member.decode("utf-8", "replace"), buckets)].add(member)
    yield from ((b, KvEntry(entry.key, entry.rtype, part)) for b, part in members.items())


def split_json(
    entry: KvEntry, buckets: int, where: Callable[[str, Any, int], int], expect: type
) -> Iterator[tuple[int, KvEntry]]:
    """A STRING holding a JSON array or object (``expect``) of records: each item to
    the bucket ``where(key_or_index, item, buckets)`` names. A bad byte inside one
    item keeps it as written (salvaged), so only that item is a finding; anything
    else goes whole to bucket 0, where decoding reports it."""
    assert isinstance(entry.value, bytes)
    dump: Callable[[Any], bytes] = orjson.dumps
    try:
        items = orjson.loads(entry.value)
    except orjson.JSONDecodeError:
        items, dump = salvage_json(entry.value), dump_salvaged
    if not isinstance(items, expect):
        yield 0, entry
    elif isinstance(items, list):
        listed: dict[int, list[Any]] = defaultdict(list)
        for i, item in enumerate(items):
            listed[where(str(i), item, buckets)].append(item)
        yield from ((b, KvEntry(entry.key, entry.rtype, dump(p))) for b, p in listed.items())
    elif isinstance(items, dict):
        named: dict[int, dict[str, Any]] = defaultdict(dict)
        for name, item in items.items():
            named[where(name, item, buckets)][name] = item
        yield from ((b, KvEntry(entry.key, entry.rtype, dump(p))) for b, p in named.items())
    else:
        yield 0, entry
