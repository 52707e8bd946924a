"""Where each KV entry and Postgres row goes in a bucketed pass: generic over mappings.

Each mapping says how its entries split (its ``router``) and which columns make
a record's bucket key (``bucket_on``); see :mod:`phasegate.mappings.routing`.
Without a router, an entry goes whole to the bucket of the part of its key the
glob's ``*`` matched (canonical when the first bucket column is a handle).
Derived index keys (``role="index"``) only feed findings in the decoder and are
not routed. A type with neither a router nor a key pattern ending in ``*`` is a
declaration error, raised, never a silent fallback.

>>> from phasegate.mappings import MAPPINGS
>>> from phasegate.keyspace import KvEntry
>>> [b for b, _ in split(MAPPINGS["friends"], "set", KvEntry("friends:@Al", "set", {b"bo"}), 8)] \\
...     == [record_bucket(MAPPINGS["friends"], {"handle": "al", "friend": "bo"}, 8)]
True
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from phasegate.keyspace import KvEntry
from phasegate.mappings.base import Mapping, Record
from phasegate.mappings.routing import bucket_of, bucket_text, handle_bucket
from phasegate.parity.digest import DIGEST_BUCKETS

MAX_SHARES = 64  # 4096 digest buckets: at least 64 in every share


@dataclass(frozen=True)
class Share:
    """The part of a keyspace one run takes: share ``index`` of ``count``.

    A share owns the digest buckets ``b`` with ``b % count == index - 1``: its
    records, its Postgres rows (digested and fetched by bucket) and, for the
    facts about keys themselves (how many, unmapped, wrong TYPE), the keys whose
    name hashes into one of its buckets. So ``count`` runs, one per share, see
    every record and every key exactly once, and their summaries add up to one
    whole run's (``phasegate report merge``).

    >>> s = Share.parse("2/4"); str(s), s.owns(1), s.owns(2), s.owns(5)
    ('2/4', True, False, True)
    >>> sum(Share(i, 3).owns_key("user:al") for i in (1, 2, 3))
    1
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Share:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ValueError("expected i/N (share i of N), such as 1/4")
        index, count = int(match[1]), int(match[2])
        if not 1 <= count <= MAX_SHARES:
            raise ValueError(f"N must be 1 to {MAX_SHARES}, not {count}")
        if not 1 <= index <= count:
            raise ValueError(f"share {index} of {count}: i must be 1 to {count}")
        return cls(index, count)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, bucket: int) -> bool:
        """Whether a digest bucket is this share's."""
        return self.count == 1 or bucket % self.count == self.index - 1

    def owns_key(self, key: str) -> bool:
        """Whether the facts about a KV key (its count, TYPE, mapping) are this share's."""
        return self.count == 1 or self.owns(bucket_of(key, DIGEST_BUCKETS))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Share()  # every bucket: a run that is not split


def split(
    mapping: Mapping, variant: str, entry: KvEntry, buckets: int
) -> Iterator[tuple[int, KvEntry]]:
    """The entry, or its parts, with the bucket each belongs to."""
    if variant in mapping.index_variants or entry.value is None:
        return
    if mapping.router is not None:
        yield from mapping.router(variant, entry, buckets)
        return
    yield _by_key(mapping, variant, entry.key, buckets), entry


def _by_key(mapping: Mapping, variant: str, key: str, buckets: int) -> int:
    pattern = next((p for p in mapping.patterns if p.variant == variant), None)
    if pattern is None or not pattern.glob.endswith("*") or "*" in pattern.glob[:-1]:
        raise ValueError(
            f"{mapping.type_id}: variant {variant!r} needs a router: its key pattern "
            f"{pattern.glob if pattern else '(none)'} does not end in its record key"
        )
    rest = key[len(pattern.glob) - 1 :]
    column = mapping.bucket_on[0]
    if column in mapping.handle_columns:
        return handle_bucket(rest, buckets)
    return bucket_of(rest, buckets)


def record_bucket(mapping: Mapping, record: Record, buckets: int) -> int:
    """The bucket of a canonical record (as decoded from KV, or read back from Postgres)."""
    return bucket_of(bucket_text([str(record[c]) for c in mapping.bucket_on]), buckets)


def row_bucket(positions: Sequence[int], row: Sequence[Any], buckets: int) -> int:
    """The bucket of a Postgres row, given the positions of the bucket columns."""
    return bucket_of(bucket_text([str(row[i]) for i in positions]), buckets)
