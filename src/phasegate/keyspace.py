"""Reading a Redis keyspace: SCAN (never KEYS), then pipelined TYPE and reads.

Values come back as raw bytes so decoding, and its findings, stay in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

# A raw Redis value: STRING bytes, HASH dict, LIST list, SET set, ZSET pairs.
RawValue = bytes | dict[bytes, bytes] | list[bytes] | set[bytes] | list[tuple[bytes, float]]

_READERS = {
    "string": lambda p, k: p.get(k),
    "hash": lambda p, k: p.hgetall(k),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "set": lambda p, k: p.smembers(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
}


@dataclass(frozen=True)
class KvEntry:
    """One key as read: name (UTF-8, undecodable bytes escaped), TYPE, value."""

    key: str
    rtype: str
    value: RawValue | None


def key_text(raw: bytes) -> str:
    """A key name as text; invalid UTF-8 is escaped, never dropped.

    >>> key_text(b"user:\\xffx")
    'user:\\\\xffx'
    """
    return raw.decode("utf-8", "backslashreplace")


def scan_keys(
    client: redis.Redis, match: str | None = None, batch: int = 1000
) -> Iterator[list[bytes]]:
    """Batches of key names, by SCAN cursor."""
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=match, count=batch)
        if keys:
            yield keys
        if cursor == 0:
            return


def read_entries(
    client: redis.Redis,
    *,
    want: Callable[[str, str], bool] = lambda key, rtype: True,
    match: str | None = None,
    batch: int = 1000,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[KvEntry]:
    """Every key with its TYPE; values read only where ``want(key, rtype)``.

    Two pipelined round trips per SCAN batch: one for TYPE, one for values.
    Keys that vanish between SCAN and read are skipped (they no longer exist).
    """
    for keys in scan_keys(client, match, batch):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        types = [t.decode() for t in pipe.execute()]
        pipe = client.pipeline(transaction=False)
        wanted: list[tuple[str, str]] = []
        skipped: list[KvEntry] = []
        for raw_key, rtype in zip(keys, types, strict=True):
            name = key_text(raw_key)
            if rtype == "none":
                continue
            reader = _READERS.get(rtype)
            if reader is not None and want(name, rtype):
                reader(pipe, raw_key)
                wanted.append((name, rtype))
            else:
                skipped.append(KvEntry(name, rtype, None))
        values = pipe.execute() if wanted else []
        for (name, rtype), value in zip(wanted, values, strict=True):
            if value is None or (rtype != "string" and not value):
                continue  # deleted between TYPE and read
            yield KvEntry(name, rtype, value)
        yield from skipped
        if on_batch is not None:
            on_batch(len(keys))
