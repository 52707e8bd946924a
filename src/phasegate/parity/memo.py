"""Decode memos: what decoding a digest bucket's KV entries made, kept for the next run.

Every comparison pass and backfill decodes every KV record to digest it, and
most of a keyspace has not changed since the last run. The unit of a memo is one
type's digest bucket: its own KV entries in that bucket and those it borrows.

- **Raw hash.** The readers hash every entry they spill (type, variant, key,
  TYPE and the value, with sets and hashes sorted: their order is Redis's, not
  the data's) and add the hashes up per (type, bucket), modulo 2**128, so the
  sum does not depend on the order the keys were read in.
- **What a memo holds**, for the raw hash it was made from: the KV digest of
  the bucket's records, their count, the decoder's findings, the records per KV
  variant, each record's recency value (the last 24 hours are counted when the
  memo is used, against that run's clock) and, per (seed, sample rate, allow
  list), the sampled and allowed counts.
- **When it is used.** Only when the raw hash is the same (the bucket's KV
  entries are byte for byte those decoded before) *and* the memo's digest is
  the digest Postgres made of the bucket in this run: the bucket is equal in
  both stores, and its records count as compared exactly as a fresh decode of
  an equal bucket counts them. A comparison also needs its own (seed, rate,
  allow list). Anything else is decoded as if there were no memo, so a memo
  can make a run faster, never different; a bucket that differs is still
  fetched and compared field by field.
- **Values not spilled.** When a run left a memo file for every work bucket
  (:meth:`Memos.complete`), the readers spill where each entry is, not its
  value, and a worker reads again from Redis only the keys of the buckets it
  decodes (:attr:`~phasegate.parity.spill.Folder.reread`). A bucket whose
  entries hash differently the second time (changed between the reads) is
  decoded as read but makes no memo.
- **Routes.** Beside the memos each reader keeps where its entries went, by the
  hash of the whole entry, so an unchanged entry is not parsed and routed again
  (:mod:`.routes`).
- **Where memos live.** A local folder (``--memo-dir``; never the stores, so a
  gate on given servers still only reads them), under a fingerprint of the code
  that decodes (every phasegate module and each mapping's modules, Python's and
  orjson's versions, the digest buckets): a change to a decoder discards them.
  One file per work bucket, replaced whole (written aside, then renamed), so a
  run killed mid-write leaves the old file or the new one.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import pickle
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import orjson
import redis

from phasegate.findings import Finding
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping, Record
from phasegate.parity.digest import DIGEST_BUCKETS

MASK = (1 << 128) - 1
DEFAULT_MEMO_DIR = Path("~/.cache/phasegate/memo")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

RawHashes = dict[tuple[str, int], int]  # (type, digest bucket) -> raw hash


def item_hash(type_id: str, variant: str, key: str, rtype: str, value: Any) -> int:
    """One spilled entry's hash (a set's or hash's members sorted first).

    >>> item_hash("friends", "set", "friends:al", "set", {b"bo", b"cy"}) == \\
    ...     item_hash("friends", "set", "friends:al", "set", {b"cy", b"bo"})
    True
    """
    head = f"{type_id}\x1f{variant}\x1f{key}\x1f{rtype}\x1f".encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):  # most entries (strings): no pickling
        text = head + b"b" + value
    else:
        if isinstance(value, set | frozenset):
            value = _sorted(value)
        elif isinstance(value, dict):
            value = _sorted(value.items())
        if isinstance(value, list) and len(value) > STREAMED:
            return _streamed_hash(head, value)
        text = head + b"p" + pickle.dumps(value, protocol=5)
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


STREAMED = 1000  # members above which a value is hashed this many at a time


def _streamed_hash(head: bytes, members: list[Any]) -> int:
    """A large value's hash, :data:`STREAMED` members at a time: pickling a registry
    of 200,000 fields whole held a second copy of it (a reader at 10x went from 129
    to 235 MB; hashed in pieces, to 132 MB)."""
    h = hashlib.blake2b(head + b"s", digest_size=16)
    for at in range(0, len(members), STREAMED):
        data = pickle.dumps(members[at : at + STREAMED], protocol=5)
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return int.from_bytes(h.digest(), "big")


def _sorted(values: Any) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # members of mixed kinds: any fixed order will do
        return sorted(values, key=repr)


@dataclass
class Entry:
    """What one decode of a (type, digest bucket) made of entries with raw hash ``raw``."""

    raw: int
    digest: tuple[int, int, int] | None  # None: no records
    records: int
    findings: list[Finding]
    variants: Counter[str]
    times: list[int]  # sorted recency values that are timestamps (microseconds since 1970)
    days: list[int]  # sorted recency values that are dates (ordinals)
    scoped: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # -> (sampled, allowed)

    def recent(self, cutoff: datetime) -> int:
        """Records whose recency value is at or after ``cutoff`` (dates: its date)."""
        at = (cutoff - _EPOCH) // _MICRO
        day = cutoff.date().toordinal()
        return (
            len(self.times)
            - bisect.bisect_left(self.times, at)
            + (len(self.days) - bisect.bisect_left(self.days, day))
        )


def recency_values(mapping: Mapping, records: list[Record]) -> tuple[list[int], list[int]] | None:
    """The records' recency values as (timestamps, dates), sorted; None when one is a
    naive timestamp (it compares with nothing: the bucket is not memoized)."""
    column = mapping.recency_column
    times: list[int] = []
    days: list[int] = []
    if column is None:
        return times, days
    for record in records:
        value = record.get(column)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return None
            times.append((value - _EPOCH) // _MICRO)
        elif isinstance(value, date):
            days.append(value.toordinal())
    return sorted(times), sorted(days)


Memo = dict[str, dict[int, Entry]]  # a work bucket's memos: type -> digest bucket -> entry


@dataclass(frozen=True)
class Memos:
    """The memos of one store's keyspace, and this run's raw hashes."""

    folder: Path
    tag: str  # work buckets and share, in the file names
    raw: RawHashes

    def group_raw(self, mapping: Mapping, w: int, work: int) -> dict[int, int]:
        """The raw hash of each of the type's digest buckets in work bucket ``w``
        (its own entries' and its borrowed entries' together)."""
        out: dict[int, int] = {}
        for type_id in (mapping.type_id, *mapping.borrows):
            for bucket, value in self._by_type.get(type_id, {}).items():
                if bucket % work == w:
                    out[bucket] = (out.get(bucket, 0) + value) & MASK
        return out

    @cached_property
    def _by_type(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (type_id, bucket), value in self.raw.items():
            out.setdefault(type_id, {})[bucket] = value
        return out

    def path(self, w: int) -> Path:
        return self.folder / f"{w:04d}-{self.tag}.pickle"

    def complete(self, work: int) -> bool:
        """Whether a run left a memo file for each of the ``work`` work buckets: then
        most buckets are expected to be answered, and the readers need not spill
        values (:attr:`~phasegate.parity.spill.Folder.reread`)."""
        return all(self.path(w).is_file() for w in range(work))

    def with_raw(self, raw: RawHashes) -> Memos:
        """These memos with this run's raw hashes."""
        return replace(self, raw=raw)

    def load(self, w: int) -> Memo:
        """The work bucket's memos; none when there are none or they cannot be read
        (a memo is only ever a shortcut)."""
        try:
            with self.path(w).open("rb") as fh:
                memo: Memo = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            return {}
        if not isinstance(memo, dict):
            return {}
        # Only what has the shape of a memo is one (another version's file, a fault).
        return {
            type_id: {b: e for b, e in entries.items() if isinstance(e, Entry)}
            for type_id, entries in memo.items()
            if isinstance(type_id, str) and isinstance(entries, dict)
        }

    def save(self, w: int, memo: Memo) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, aside = tempfile.mkstemp(dir=self.folder, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(memo, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(aside, self.path(w))
        except BaseException:
            Path(aside).unlink(missing_ok=True)
            raise


def memos_for(root: Path, kv: redis.Redis, work: int, share: object) -> Memos:
    """The memos under ``root`` of the keyspace ``kv`` reads (by server and DB, never
    its password), for a run of ``work`` work buckets and ``share``; the run's raw
    hashes are added once the keyspace is read (:meth:`Memos.with_raw`)."""
    kwargs = kv.connection_pool.connection_kwargs
    where = "|".join(str(kwargs.get(k)) for k in ("host", "port", "path", "db"))
    store = hashlib.sha256(where.encode()).hexdigest()[:16]
    tag = f"of{work}-share{str(share).replace('/', 'of')}"
    return Memos(root.expanduser() / code_fingerprint() / store, tag, {})


def scope_key(seed: int, rate: float, allow: object) -> bytes:
    """What a comparison's sample and allowed counts depend on besides the data."""
    keys = sorted(getattr(allow, "keys", ()), key=repr)
    return hashlib.sha256(repr((seed, rate, keys)).encode()).digest()[:16]


@cache
def code_fingerprint() -> str:
    """A hash of the code that decodes: phasegate's modules and the mappings' own."""
    files = set(Path(__file__).resolve().parents[1].rglob("*.py"))
    for mapping in MAPPINGS.values():
        for value in vars(mapping).values():
            module = sys.modules.get(getattr(value, "__module__", "") or "")
            source = getattr(module, "__file__", None)
            if source:
                files.add(Path(source).resolve())
    digest = hashlib.sha256(f"{sys.version}|{orjson.__version__}|{DIGEST_BUCKETS}".encode())
    for path in sorted(files):
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
