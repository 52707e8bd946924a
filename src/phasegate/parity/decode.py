"""Step 2's decode: a work bucket's KV entries made into records, a digest bucket at a time.

Each type's entries (with those it borrows) are grouped by the digest bucket the
readers routed them to and decoded group by group with the mapping's own
decoder; a group whose decode memo holds (:mod:`phasegate.parity.memo`) is
not decoded at all. :mod:`phasegate.parity.judge` counts and keeps what this
makes.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from phasegate.findings import WHOLE_KEYSPACE_KINDS, Finding
from phasegate.keyspace import KvEntry, Reader, key_text, read_batch
from phasegate.mappings import MAPPINGS, variant_name
from phasegate.mappings.base import Decoded, Mapping, Record, RecordKey, VariantEntry
from phasegate.parity.buckets import record_bucket, split
from phasegate.parity.diff import show_key
from phasegate.parity.digest import DIGEST_BUCKETS, Digests, record_text, row_hash
from phasegate.parity.memo import (
    MASK,
    Entry,
    Memos,
    RawHashes,
    item_hash,
    recency_values,
    scope_key,
)
from phasegate.parity.postgres import AllowList
from phasegate.parity.spill import Folder, read_chunks
from phasegate.stores import kv_from_params

PgDigests = dict[str, dict[int, tuple[int, int, int]] | None]  # None: not made in SQL

RECENT = timedelta(hours=24)


@dataclass(frozen=True)
class Scope:
    """What the workers need to know besides the data."""

    seed: int
    sample_rate: float
    now: datetime
    allow: AllowList
    collect: bool = False  # keep every differing record and Postgres-only key (reconcile)


Groups = dict[str, dict[int, list[VariantEntry]]]  # type -> digest bucket -> entries
Needed = dict[str, set[int] | None]  # spilled type -> digest buckets wanted (None: all)
REREAD_BATCH = 1000  # keys per read when a worker reads entries again


Strays = list[Finding]  # entries read again whose parts all belong to other work buckets


def _entries_by_group(folder: Folder, w: int, needed: Needed) -> tuple[Groups, RawHashes, Strays]:
    """The entries of work bucket ``w`` that ``needed`` asks for, by type and digest
    bucket; with :attr:`Folder.reread`, read again from Redis, with the raw hash
    of each (type, bucket) as read this time (a key changed since the first read
    has another), and a ``misrouted`` finding for each entry read again none of
    whose parts belong here (its route was wrong, or it changed in between)."""
    groups: Groups = defaultdict(lambda: defaultdict(list))
    strays: Strays = []
    if folder.reread is None:
        for path in folder.kv_all(w):
            for _kind, type_id, variant, key, rtype, value, bucket in read_chunks(path):
                groups[type_id][bucket].append((variant, KvEntry(key, rtype, value)))
        return groups, {}, strays
    places: dict[bytes, tuple[str, str, str]] = {}  # key name -> (type, variant, TYPE)
    spilled: set[tuple[str, int]] = set()  # the (type, bucket)s this work bucket holds
    for path in folder.kv_all(w):
        for _kind, type_id, variant, name, rtype, bucket in read_chunks(path):
            if type_id in needed and ((need := needed[type_id]) is None or bucket in need):
                places[name] = (type_id, variant, rtype)
                spilled.add((type_id, bucket))
    raw: RawHashes = {}
    by_rtype: dict[str, list[bytes]] = defaultdict(list)
    for name, (_type, _variant, rtype) in places.items():
        by_rtype[rtype].append(name)
    if not by_rtype:
        return groups, raw, strays
    where = {key_text(name): place for name, place in places.items()}
    client = kv_from_params(folder.reread)
    try:
        reader = Reader(client)
        for rtype, names in by_rtype.items():
            for at in range(0, len(names), REREAD_BATCH):
                # read_batch skips a key gone since the first read
                for entry in read_batch(reader, rtype, names[at : at + REREAD_BATCH], _any):
                    type_id, variant, _rtype = where[entry.key]
                    parts = list(split(MAPPINGS[type_id], variant, entry, DIGEST_BUCKETS))
                    if parts and all(b % folder.work != w for b, _part in parts):
                        strays.append(_stray(type_id, entry.key, w, parts[0][0] % folder.work))
                        continue
                    for bucket, part in parts:
                        if (type_id, bucket) not in spilled:
                            continue  # another bucket's part, or one not asked for
                        groups[type_id][bucket].append((variant, part))
                        item = item_hash(type_id, variant, part.key, part.rtype, part.value)
                        raw[type_id, bucket] = (raw.get((type_id, bucket), 0) + item) & MASK
    finally:
        client.close()
    return groups, raw, strays


def _stray(type_id: str, key: str, w: int, belongs: int) -> Finding:
    return Finding(
        type_id,
        "misrouted",
        key,
        f"read again in work bucket {w}, where the readers' route memo put it, but it "
        f"belongs to work bucket {belongs}: not compared in this pass. The route memo "
        "was wrong (it is dropped; the next pass splits every entry afresh), or the key "
        "changed while the pass ran: run the pass again",
    )


def _any(_key: str, _rtype: str) -> bool:
    return True


def _needed(todo: dict[str, set[int] | None]) -> Needed:
    """What to read for each judged type's ``todo`` buckets: its own entries and
    those it borrows."""
    out: Needed = {}
    for type_id, buckets in todo.items():
        if buckets is not None and not buckets:
            continue
        for source in (type_id, *MAPPINGS[type_id].borrows):
            have = out.get(source, set())
            out[source] = None if have is None or buckets is None else have | buckets
    return out


@dataclass
class Judged:
    """One type's share of a work bucket: the buckets a memo answered, and the
    records decoded afresh (bucket by bucket) with where each belongs."""

    hits: dict[int, Entry] = field(default_factory=dict)
    records: dict[RecordKey, Record] = field(default_factory=dict)
    sources: dict[RecordKey, str] = field(default_factory=dict)
    where: dict[RecordKey, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    variants: Counter[str] = field(default_factory=Counter)
    digests: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    made: dict[int, Entry] = field(default_factory=dict)  # fresh memos (all but misrouted)
    misrouted: bool = False

    @property
    def count(self) -> int:
        return len(self.records) + sum(e.records for e in self.hits.values())


def judge_work_bucket(
    folder: Folder,
    w: int,
    types: tuple[str, ...],
    pg_digests: PgDigests,
    *,
    memos: Memos | None,
    scope: Scope | None,
    counted: bool = True,
) -> dict[str, Judged]:
    """Each type's records of work bucket ``w``, from memos where they hold (see
    :mod:`.memo`) and decoded, a digest bucket at a time, elsewhere. New memos
    hold ``scope``'s sample and allowed counts; a memo is used without them
    unless ``counted`` (a comparison counts them; a backfill does not)."""
    old = memos.load(w) if memos is not None else {}
    key = None if scope is None else scope_key(scope.seed, scope.sample_rate, scope.allow)
    needed = key if counted else None
    out: dict[str, Judged] = {}
    fresh: dict[str, set[int] | None] = {}  # type -> buckets to decode (None: all)
    raws: dict[str, dict[int, int]] = {}
    for type_id in types:
        judged = out[type_id] = Judged()
        if memos is None:
            fresh[type_id] = None
            continue
        mapping = MAPPINGS[type_id]
        theirs, mine = pg_digests.get(type_id), old.get(type_id, {})
        fresh[type_id] = todo = set()
        raws[type_id] = memos.group_raw(mapping, w, folder.work)
        for bucket, raw_hash in raws[type_id].items():
            entry = mine.get(bucket)
            if (
                entry is not None
                and entry.raw == raw_hash
                and theirs is not None
                and theirs.get(bucket) == entry.digest
                and (needed is None or needed in entry.scoped)
            ):
                judged.hits[bucket] = entry
            else:
                todo.add(bucket)
    if any(f is None or f for f in fresh.values()):
        groups, reread, strays = _entries_by_group(folder, w, _needed(fresh))
        for type_id, judged in out.items():
            mapping = MAPPINGS[type_id]
            made = raws.get(type_id)
            if made is not None and folder.reread is not None:
                made = _unchanged(mapping, made, reread, fresh[type_id])
            _decode_fresh(mapping, groups, fresh[type_id], judged, scope=scope, key=key, raws=made)
            if judged.misrouted and judged.hits:
                # A record decoded in another bucket than its entries' (a router that
                # disagrees with the record's bucket): no memo is trusted for the type.
                whole = groups
                if folder.reread is not None:  # only the todo buckets were read: read all
                    whole, _, _ = _entries_by_group(folder, w, _needed({type_id: None}))
                again = out[type_id] = Judged()
                _decode_fresh(mapping, whole, None, again, scope=scope, key=key, raws=None)
        for stray in strays:  # the type's own entry, or one a judged type borrows
            for type_id, judged in out.items():
                if stray.type_id in (type_id, *MAPPINGS[type_id].borrows):
                    judged.findings.append(replace(stray, type_id=type_id))
    if memos is not None:
        memo = {t: e for t, e in old.items() if t not in out}
        for type_id, judged in out.items():
            memo[type_id] = {**judged.hits, **judged.made}
        memos.save(w, memo)
    return out


def _unchanged(
    mapping: Mapping, first: dict[int, int], again: RawHashes, todo: set[int] | None
) -> dict[int, int]:
    """The raw hashes of the first read for the ``todo`` buckets whose entries read
    again the same: only those make memos (what was decoded is what was hashed)."""
    own = (mapping.type_id, *mapping.borrows)
    out = {}
    for bucket, raw_hash in first.items():
        if todo is not None and bucket not in todo:
            continue
        if sum(again.get((t, bucket), 0) for t in own) & MASK == raw_hash:
            out[bucket] = raw_hash
    return out


def _decode_fresh(
    mapping: Mapping,
    groups: Groups,
    buckets: set[int] | None,
    judged: Judged,
    *,
    scope: Scope | None,
    key: bytes | None,
    raws: dict[int, int] | None,
) -> None:
    """Decode ``buckets`` (every bucket when None), a digest bucket at a time, into
    ``judged``; with ``raws`` (memos on), the memo of each."""
    type_id = mapping.type_id
    own = (type_id, *mapping.borrows)
    if buckets is None:
        buckets = {b for t in own for b in groups.get(t, {})}
    digests = Digests()
    misrouted = False
    for bucket in sorted(buckets):
        entries = [e for t in own for e in groups.get(t, {}).get(bucket, ())]
        decoded = decode_naming_the_key(mapping, entries)
        findings = bucket_findings(decoded)
        variants = Counter(variant_name(type_id, s) for s in decoded.sources.values())
        judged.findings.extend(findings)
        judged.variants.update(variants)
        judged.sources.update(decoded.sources)
        alone = Digests()
        for rkey, record in decoded.records.items():
            judged.records[rkey] = record
            judged.where[rkey] = at = record_bucket(mapping, record, DIGEST_BUCKETS)
            text = record_text(mapping, record)
            halves = None if text is None else row_hash(text)  # once, for both digests
            digests.add_hash(at, halves)
            alone.add_hash(at, halves)
            if at != bucket:
                misrouted = True
                judged.findings.append(_misrouted(mapping, rkey, decoded, bucket, at))
        if raws is None or bucket not in raws:
            continue
        recency = recency_values(mapping, list(decoded.records.values()))
        if recency is None or set(alone.buckets) - {bucket}:
            continue
        entry = Entry(
            raws[bucket],
            alone.frozen().get(bucket),
            len(decoded.records),
            findings,
            variants,
            *recency,
        )
        if scope is not None and key is not None:
            entry.scoped[key] = (
                sum(in_sample(scope.seed, k, scope.sample_rate) for k in decoded.records),
                sum(scope.allow.allows(type_id, k, r) for k, r in decoded.records.items()),
            )
        judged.made[bucket] = entry
    judged.digests = digests.frozen()
    judged.misrouted = misrouted
    if misrouted:
        judged.made.clear()


def _misrouted(
    mapping: Mapping, rkey: RecordKey, decoded: Decoded, bucket: int, at: int
) -> Finding:
    source = decoded.sources.get(rkey, show_key(rkey))
    return Finding(
        mapping.type_id,
        "misrouted",
        source,
        f"routed to bucket {bucket}, but its record {show_key(rkey)} belongs to bucket "
        f"{at}: it is compared against the wrong rows (shown missing in one bucket, "
        "extra in the other). The mapping's router is wrong, or a route memo was (route "
        "memos are dropped after such a pass): if the next pass says so again, fix the "
        "router",
    )


def decode_naming_the_key(mapping: Mapping, entries: list[VariantEntry]) -> Decoded:
    """Decode; if the decoder itself breaks (a bug, never bad data: bad data is a
    finding), find the entry it breaks on and name it."""
    try:
        return mapping.decode(entries)
    except Exception as exc:
        for variant, entry in entries:
            try:
                mapping.decode([(variant, entry)])
            except Exception:
                raise RuntimeError(
                    f"decoding {mapping.type_id} broke on key {entry.key} ({variant}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        raise


def bucket_findings(decoded: Decoded) -> list[Finding]:
    """The findings a bucket's decode makes exactly (not those of the whole keyspace:
    :data:`~phasegate.findings.WHOLE_KEYSPACE_KINDS`)."""
    return [f for f in decoded.findings if f.kind not in WHOLE_KEYSPACE_KINDS]


def in_sample(seed: int, key: RecordKey, rate: float) -> bool:
    """Deterministic membership: ``hash(seed, key) mod 100 < rate``, same on both stores.

    >>> in_sample(7, ("msg_1",), 100.0)
    True
    >>> 900 < sum(in_sample(7, (f"m{i}",), 10.0) for i in range(10_000)) < 1100
    True
    """
    digest = hashlib.blake2b(f"{seed}\x1f{show_key(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < rate * 100
