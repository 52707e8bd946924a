"""friends: ``friends:{handle}`` SETs, written in both directions.

One row per direction present in KV; a pair present in one direction only is
reported (``one_sided``) and migrated as it is, never completed silently. Both
directions of a pair share one bucket (the unordered pair's), so a comparison
pass that decodes a bucket at a time finds every one-sided pair exactly.

>>> from phasegate.keyspace import KvEntry
>>> out = decode([("set", KvEntry("friends:al", "set", {b"bo"})),
...               ("set", KvEntry("friends:bo", "set", {b"al", b"cy"}))])
>>> sorted(out.records), [f.kind for f in out.findings]
([('al', 'bo'), ('bo', 'al'), ('bo', 'cy')], ['one_sided'])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

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
from phasegate.mappings.declare import Cmd, ReadPath, WriteOp, keys_of, where_equal
from phasegate.mappings.routing import pair_bucket, split_set_members
from phasegate.values import text


def decode(entries: Iterable[VariantEntry]) -> Decoded:
    c = Collector("friends")
    book = HandleBook("friends")
    where: dict[tuple[str, str], str] = {}
    for _variant, entry in entries:
        assert isinstance(entry.value, set)
        with c.guard(entry.key, None):
            handle = book.canonical(suffix(entry.key, "friends:"), entry.key)
            for member in sorted(entry.value):
                with c.guard(entry.key, member):
                    friend = book.canonical(text(member), entry.key, "friend")
                    c.put((handle, friend), {"handle": handle, "friend": friend}, entry.key)
                    where[(handle, friend)] = entry.key
    for (handle, friend), key in sorted(where.items()):
        if (friend, handle) not in c.out.records:
            c.finding("one_sided", key, f"{friend!r} is a friend of {handle!r} but not the reverse")
    c.out.findings.extend(book.findings())
    return c.out


def route(_variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
    """Each member of ``friends:{a}`` to the bucket of the pair (a, member)."""
    handle = entry.key.removeprefix("friends:")
    yield from split_set_members(entry, buckets, lambda m, n: pair_bucket(handle, m, n))


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    yield ("SADD", f"friends:{r['handle']}", r["friend"])


def kv_delete(r: Record) -> Iterator[Cmd]:
    yield ("SREM", f"friends:{r['handle']}", r["friend"])


MAPPING = Mapping(
    type_id="friends",
    table="friends",
    columns=(
        Column("handle", "text", key=True, handle=True),
        Column("friend", "text", key=True, handle=True),
    ),
    patterns=(KeyPattern("friends:*", "set", "set"),),
    decoder=decode,
    router=route,
    bucket_columns=("handle", "friend"),
    recency_column=None,
    summary="friends:{handle} sets, one row per direction",
    kv_put=kv_put,
    kv_delete=kv_delete,
    reads=(
        ReadPath(
            "friends_of_handle",
            "/api/friends",
            keys_of("friends:{handle}"),
            where_equal(handle="handle"),
            order=(("friend", False),),
            weight=3,
        ),
    ),
    writes=(WriteOp("friend_add", "POST", "/api/friends", "phasegate.dualwrite.ops:friend_add"),),
)
