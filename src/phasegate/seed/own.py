"""Seeding a data type phasegate has no generator of its own for (a user's mapping).

Records are made from the mapping's columns alone (handles from the seeded
users, key columns numbered, timestamps from the seed's clock, other values by
kind, some NULL) and written through the mapping's own KV shape (``kv_put``),
so a new type is seeded, backfilled and compared with no generator code of its
own. Deterministic per seed, with a random stream per type, so adding a type
leaves the /vibe keyspace as it was.

>>> from phasegate.mappings import MAPPINGS
>>> rng, clock = random.Random(1), Clock(1_767_801_301_123, 30)
>>> r = records(MAPPINGS["friends"], rng, clock, ["al", "bo"], 1)[0]
>>> sorted(r), r["handle"] in ("al", "bo")
(['friend', 'handle'], True)
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from phasegate.mappings.base import Column, Mapping, Record
from phasegate.seed.people import Clock
from phasegate.seed.writer import Keyspace

_WORDS = ("ship", "build", "idea", "demo", "launch", "fix", "riff", "note")


def _value(column: Column, i: int, rng: random.Random, clock: Clock, people: list[str]) -> Any:
    if column.handle:
        return rng.choice(people)
    if column.key and column.kind == "text":
        return f"{column.name}_{i:06d}"
    if column.key and column.kind == "int":
        return i
    if not column.key and rng.random() < 0.1:
        return None
    moment = datetime.fromtimestamp(clock.when(rng) / 1000, tz=UTC)
    by_kind: dict[str, Any] = {
        "text": " ".join(rng.choices(_WORDS, k=3)),
        "int": rng.randrange(1000),
        "bool": rng.random() < 0.5,
        "ts": moment,
        "date": moment.date(),
        "json": {"n": i, "tag": rng.choice(_WORDS)},
        "text[]": rng.sample(_WORDS, 2),
        "date[]": [moment.date() - timedelta(days=d) for d in range(2)],
    }
    return by_kind[column.kind]


def records(
    mapping: Mapping, rng: random.Random, clock: Clock, people: list[str], count: int
) -> list[Record]:
    """``count`` records of the type (fewer when drawn keys collide)."""
    out: dict[tuple[Any, ...], Record] = {}
    for i in range(count):
        record = {c.name: _value(c, i, rng, clock, people) for c in mapping.columns}
        out.setdefault(mapping.record_key(record), record)
    return list(out.values())


def seed(
    mapping: Mapping,
    rng: random.Random,
    clock: Clock,
    people: list[str],
    *,
    count: int,
    into: Keyspace,
) -> int:
    """Write ``count`` records of the type into ``ks`` through its KV shape."""
    if mapping.kv_put is None:
        return 0
    made = records(mapping, rng, clock, people, count)
    for record in made:
        for cmd in mapping.kv_put(record, ()):
            into.apply(cmd)
    return len(made)
