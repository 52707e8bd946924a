"""A keyspace built in memory, then written with few pipelined commands.

Lists and sets are accumulated per key so each key costs one RPUSH/SADD, and
strings go out in MSET batches: the 12mo scale is a few hundred thousand
commands, not millions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

_BATCH = 2000


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class Keyspace:
    """Keys to write, by Redis type; TTLs in milliseconds."""

    strings: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    lists: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    sets: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    zsets: dict[str, dict[bytes, float]] = field(default_factory=lambda: defaultdict(dict))
    ttls_ms: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(
            len(part) for part in (self.strings, self.hashes, self.lists, self.sets, self.zsets)
        )

    def typed(self) -> Iterator[tuple[str, str, Any]]:
        """Every key with its Redis TYPE and value (hash fields as bytes, as Redis gives them)."""
        yield from (("string", k, v) for k, v in self.strings.items())
        yield from (
            ("hash", k, {f.encode(): v for f, v in h.items()}) for k, h in self.hashes.items()
        )
        yield from (("list", k, v) for k, v in self.lists.items())
        yield from (("set", k, v) for k, v in self.sets.items())
        yield from (("zset", k, v) for k, v in self.zsets.items())

    def apply(self, cmd: tuple[Any, ...]) -> None:
        """One Redis write command (as a mapping's ``kv_put`` gives it), in memory."""
        name, key, *args = cmd
        values = [_bytes(a) for a in args]
        if name == "SET":
            self.strings[key] = values[0]
        elif name == "HSET":
            self.hashes[key].update(zip(map(bytes.decode, values[::2]), values[1::2], strict=True))
        elif name == "SADD":
            self.sets[key].update(values)
        elif name == "RPUSH":
            self.lists[key].extend(values)
        elif name == "LPUSH":
            self.lists[key][0:0] = values[::-1]
        elif name == "DEL":
            for part in (self.strings, self.hashes, self.lists, self.sets, self.zsets):
                part.pop(key, None)
        elif name == "SREM":
            self.sets[key].difference_update(values)
        elif name == "HDEL":
            for field_name in values:
                self.hashes[key].pop(field_name.decode(), None)
        elif name == "LREM":
            self.lists[key] = [v for v in self.lists[key] if v != values[1]]
        elif name == "LTRIM":
            start, stop = int(args[0]), int(args[1])
            self.lists[key] = self.lists[key][start : None if stop == -1 else stop + 1]
        else:
            raise ValueError(f"seeding cannot apply {name} (to {key}): not a plain write")

    def write(self, client: redis.Redis, on_keys: Callable[[int], None] | None = None) -> int:
        """Write every key with pipelined commands; returns the number of keys."""
        pipe = client.pipeline(transaction=False)
        pending = 0

        def flush(keys: int) -> None:
            nonlocal pipe, pending
            pending += keys
            if len(pipe) >= _BATCH:
                pipe.execute()
                if on_keys is not None:
                    on_keys(pending)
                pending = 0

        items = list(self.strings.items())
        for start in range(0, len(items), 500):
            chunk = dict(items[start : start + 500])
            pipe.mset(chunk)
            flush(len(chunk))
        for key, mapping in self.hashes.items():
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]  # dict is invariant
            flush(1)
        for key, values in self.lists.items():
            pipe.rpush(key, *values)
            flush(1)
        for key, members in self.sets.items():
            pipe.sadd(key, *members)
            flush(1)
        for key, scores in self.zsets.items():
            pipe.zadd(key, scores)
            flush(1)
        for key, ttl in self.ttls_ms.items():
            pipe.pexpire(key, ttl)
            flush(0)
        pipe.execute()
        if on_keys is not None:
            on_keys(pending)
        return len(self)
