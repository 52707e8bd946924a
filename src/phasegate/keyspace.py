"""Reading a Redis keyspace: SCAN (never KEYS) and batched, read-only reads.

One ``SCAN ... TYPE t`` pass per Redis type tells each key's TYPE without a
TYPE command per key; strings are read with MGET and lists, sets, hashes and
sorted sets with one read-only Lua call (``EVAL_RO``) per batch, falling back
to pipelined per-key reads where scripts are not allowed. Keys of any other
TYPE (streams, module types) are still reported, found by a last plain pass
when the typed passes saw fewer keys than DBSIZE. Values stay raw bytes so
decoding, and its findings, live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from phasegate.errors import PermissionRefusedError
from phasegate.stores import kv_errors, permission_refused

# A raw Redis value: STRING bytes, HASH dict, LIST list, SET set, ZSET pairs.
RawValue = bytes | dict[bytes, bytes] | list[bytes] | set[bytes] | list[tuple[bytes, float]]

TYPES = ("string", "hash", "list", "set", "zset")
_BULK_READ = """
local out = {}
for i, key in ipairs(KEYS) do
  local t = ARGV[1]
  if t == 'list' then out[i] = redis.call('LRANGE', key, 0, -1)
  elseif t == 'set' then out[i] = redis.call('SMEMBERS', key)
  elseif t == 'hash' then out[i] = redis.call('HGETALL', key)
  else out[i] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES') end
end
return out
"""
_TYPES_OF = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('TYPE', key).ok end
return out
"""
_COMMAND = {"hash": "HGETALL", "list": "LRANGE", "set": "SMEMBERS", "zset": "ZRANGE"}
_PER_KEY = {
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

    def elements(self) -> list[bytes]:
        """The elements of a LIST value."""
        assert isinstance(self.value, list), self.key
        return cast(list[bytes], self.value)


def key_text(raw: bytes) -> str:
    """A key name as text; invalid UTF-8 is escaped, never dropped.

    >>> key_text(b"user:\\xffx")
    'user:\\\\xffx'
    """
    return raw.decode("utf-8", "backslashreplace")


def scan_keys(
    client: redis.Redis, match: str | None = None, batch: int = 1000, rtype: str | None = None
) -> Iterator[list[bytes]]:
    """Batches of key names, by SCAN cursor (optionally of one Redis TYPE)."""
    cursor = 0
    while True:
        with kv_errors(client, "SCAN" + (f" TYPE {rtype}" if rtype else "")):
            cursor, keys = client.scan(cursor, match=match, count=batch, _type=rtype)
        if keys:
            yield cast(list[bytes], keys)
        if cursor == 0:
            return


class Reader:
    """Batched value reads for one client; remembers whether scripts work."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.scripts = True

    def types(self, keys: Sequence[bytes]) -> list[str]:
        """The TYPE of each key (``none`` for a key gone since SCAN), in one call."""
        first = key_text(keys[0])
        if self.scripts:
            try:
                with kv_errors(self.client, "EVAL_RO", first):
                    replies = self.client.execute_command(  # type: ignore[no-untyped-call]
                        "EVAL_RO", _TYPES_OF, len(keys), *keys
                    )
                return [r.decode() for r in replies]
            except redis.ResponseError:
                self.scripts = False  # scripts unavailable here: stop trying
            except PermissionRefusedError:
                self.scripts = False
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        with kv_errors(self.client, "TYPE", first):
            return [r.decode() for r in pipe.execute()]

    def read(self, rtype: str, keys: Sequence[bytes]) -> list[Any]:
        first = key_text(keys[0])
        if rtype == "string":
            with kv_errors(self.client, "MGET", f"{first} and {len(keys) - 1} more keys"):
                return list(self.client.mget(keys))
        if self.scripts:
            try:
                with kv_errors(self.client, "EVAL_RO", first):
                    replies = self.client.execute_command(  # type: ignore[no-untyped-call]
                        "EVAL_RO", _BULK_READ, len(keys), *keys, rtype
                    )
                return [_shape(rtype, r) for r in replies]
            except redis.ResponseError as exc:
                if "WRONGTYPE" not in str(exc):  # scripts unavailable here: stop trying
                    self.scripts = False
            except PermissionRefusedError:
                self.scripts = False  # scripts refused to this user: read key by key
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            _PER_KEY[rtype](pipe, key)
        with kv_errors(self.client, f"TYPE and {_COMMAND[rtype]}", first):
            replies = pipe.execute(raise_on_error=False)
        out: list[Any] = []
        pairs = zip(keys, replies[::2], replies[1::2], strict=True)
        for key, actual, value in pairs:
            for reply, command in ((actual, "TYPE"), (value, _COMMAND[rtype])):
                if isinstance(reply, redis.exceptions.NoPermissionError):
                    raise permission_refused(self.client, command, key_text(key), reply)
                if isinstance(reply, Exception):
                    raise reply
            out.append(value if actual.decode() == rtype else None)  # type changed: skip
        return out


def _shape(rtype: str, reply: list[bytes]) -> Any:
    if rtype == "hash":
        return dict(zip(reply[::2], reply[1::2], strict=True))
    if rtype == "set":
        return set(reply)
    if rtype == "zset":
        return [(m, float(s)) for m, s in zip(reply[::2], reply[1::2], strict=True)]
    return reply


def typed_batches(
    client: redis.Redis, match: str | None = None, batch: int = 1000
) -> Iterator[tuple[str, list[bytes]]]:
    """(Redis TYPE, key names) for every key, a SCAN batch at a time; keys of a TYPE
    outside :data:`TYPES` come last, found by a plain pass only when needed."""
    with kv_errors(client, "DBSIZE"):
        size_before = client.dbsize()
    seen = 0
    for rtype in TYPES:
        for keys in scan_keys(client, match, batch, rtype):
            seen += len(keys)
            yield rtype, keys
    with kv_errors(client, "DBSIZE"):
        size_after = client.dbsize()
    if match is None and seen < min(size_before, size_after):
        yield from _other_types(client, batch)


def read_batch(
    reader: Reader, rtype: str, keys: list[bytes], want: Callable[[str, str], bool]
) -> Iterator[KvEntry]:
    """The entries of one batch of keys of one TYPE; values only where ``want``.

    Keys that vanish between SCAN and read are skipped (they no longer exist).
    """
    names = [key_text(k) for k in keys]
    if rtype not in TYPES:
        yield from (KvEntry(name, rtype, None) for name in names)
        return
    wanted = [i for i, name in enumerate(names) if want(name, rtype)]
    values = reader.read(rtype, [keys[i] for i in wanted]) if wanted else []
    for i, value in zip(wanted, values, strict=True):
        if value is None or (rtype != "string" and not value):
            continue
        yield KvEntry(names[i], rtype, value)
    chosen = set(wanted)
    for i, name in enumerate(names):
        if i not in chosen:
            yield KvEntry(name, rtype, None)


def read_untyped(
    reader: Reader, keys: list[bytes], want: Callable[[str, str], bool]
) -> Iterator[KvEntry]:
    """The entries of one plain SCAN batch: TYPEs asked in one call, then values read
    a TYPE at a time (what one pass of :func:`typed_batches` does, for one batch)."""
    by_type: dict[str, list[bytes]] = {}
    for key, rtype in zip(keys, reader.types(keys), strict=True):
        if rtype != "none":
            by_type.setdefault(rtype, []).append(key)
    for rtype, group in by_type.items():
        yield from read_batch(reader, rtype, group, want)


def read_entries(
    client: redis.Redis,
    *,
    want: Callable[[str, str], bool] = lambda key, rtype: True,
    match: str | None = None,
    batch: int = 1000,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[KvEntry]:
    """Every key with its TYPE; values read only where ``want(key, rtype)``."""
    reader = Reader(client)
    for rtype, keys in typed_batches(client, match, batch):
        yield from read_batch(reader, rtype, keys, want)
        if on_batch is not None and rtype in TYPES:
            on_batch(len(keys))


def _other_types(client: redis.Redis, batch: int) -> Iterator[tuple[str, list[bytes]]]:
    """Keys whose TYPE is none of :data:`TYPES` (streams, module types), by TYPE."""
    for keys in scan_keys(client, None, batch):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        with kv_errors(client, "TYPE", key_text(keys[0])):
            types = pipe.execute()
        for key, rtype in zip(keys, types, strict=True):
            name = rtype.decode()
            if name not in TYPES and name != "none":
                yield name, [key]
