"""Step 1 of the comparison pass: the keyspace read once, by reader processes.

The parent walks the keyspace (one plain SCAN: key names only) and hands each
batch of names to one of the readers in turn. A reader asks the batch's TYPEs,
reads its values (MGET, then one native read per container key, the batch's
sent at once), classifies every key, splits each mapped entry by record bucket
(:func:`~phasegate.parity.buckets.split`) and spills it to its own file per work
bucket (or only where it is, when memos are expected to answer:
:attr:`~phasegate.parity.spill.Folder.reread`). Reading values, parsing replies
and routing is most of the work, and readers do it on both cores at once
(threads would share one GIL). A reader's error (a store that stops answering)
is raised in the parent as it was raised.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import redis

from phasegate.inventory import classified_batch, key_finding
from phasegate.keyspace import KvEntry, Reader, key_text, scan_keys
from phasegate.mappings import MAPPINGS
from phasegate.parity.buckets import WHOLE, Share, split
from phasegate.parity.digest import DIGEST_BUCKETS
from phasegate.parity.memo import MASK, item_hash
from phasegate.parity.routes import Route, RouteMemo
from phasegate.parity.spill import Folder, Spill
from phasegate.parity.tally import KeyspaceFacts, Tally
from phasegate.parity.workers import Worker
from phasegate.stores import kv_from_params, kv_params

Batch = tuple[str, list[bytes]]


def read_kv(
    kv: redis.Redis,
    types: tuple[str, ...],
    folder: Folder,
    on_keys: Callable[[int], None] | None = None,
    share: Share = WHOLE,
    *,
    hashing: bool = False,
) -> KeyspaceFacts:
    """Read and spill every key (of ``share``); ``folder.readers`` processes, or this
    one when 0. ``on_keys`` hears of each batch of key names as it is handed out;
    ``hashing``: the facts hold the raw hashes for the decode memos."""
    params = kv_params(kv)
    if folder.readers == 0 or params is None:
        batches = (("", keys) for keys in _counted(scan_keys(kv), on_keys))
        return spill_batches(kv, batches, types, folder, 0, share=share, hashing=hashing)
    readers: list[Worker] = []
    try:
        for r in range(folder.readers):
            readers.append(Worker())
            readers[-1].send(("read", params, types, folder, r, share, hashing))
        # Plain SCAN (one pass, no TYPE filter): each reader asks the TYPEs of its batch.
        for i, keys in enumerate(_counted(scan_keys(kv), on_keys)):
            if not readers[i % len(readers)].send(("", keys)):
                break  # that reader stopped: its error is raised below
    except BaseException:
        for reader in readers:
            reader.kill()
        raise
    facts = KeyspaceFacts()
    errors: list[Exception] = []
    for reader in readers:  # every reader finished, whatever one of them raised
        try:
            reader.send(None)  # the end of its batches
            facts.add(reader.answer())
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return facts


def _counted(
    batches: Iterable[list[bytes]], on_keys: Callable[[int], None] | None
) -> Iterator[list[bytes]]:
    for keys in batches:
        yield keys
        if on_keys is not None:
            on_keys(len(keys))


def spill_batches(
    client: redis.Redis,
    batches: Iterable[Batch],
    types: tuple[str, ...],
    folder: Folder,
    me: int,
    *,
    share: Share = WHOLE,
    hashing: bool = False,
) -> KeyspaceFacts:
    """Read, classify and split each batch into this reader's spill files: the
    entries (or parts) in ``share``'s buckets, the facts of the keys it owns; with
    ``hashing``, the raw hash of each (type, digest bucket) (:mod:`.memo`)."""
    wanted = set(types)
    for borrowing in types:
        wanted.update(MAPPINGS[borrowing].borrows)
    facts = KeyspaceFacts()
    raw = facts.raw
    spill = Spill([folder.kv(me, w) for w in range(folder.work)])
    reader = Reader(client)
    lazy = folder.reread is not None
    memo_path = folder.route_memo(me) if hashing else None
    routes = None if memo_path is None else RouteMemo(memo_path)
    ok = False
    try:
        for rtype, keys in batches:
            names: dict[str, bytes] | None = None
            last = {} if routes is None else routes.last()
            kept: dict[int, Route] = {}
            for entry, where in classified_batch(reader, rtype, keys, wanted):
                mine = share.owns_key(entry.key)
                facts.total_keys += mine
                finding = key_finding(entry, where)
                if finding is not None and mine:
                    facts.findings.append(finding)
                if where.kind == "kv_only":
                    if mine:
                        facts.kv_only[entry.key.split(":", 1)[0]] += 1
                elif finding is not None and where.kind == "unmapped":
                    if mine:
                        facts.unmapped.note(f"{finding.key}: {finding.detail}")
                elif finding is not None:
                    if mine:
                        facts.wrong_type.setdefault(finding.type_id, Tally()).note(str(finding))
                else:
                    type_id, variant = where.type_id, where.variant
                    assert type_id is not None
                    assert variant is not None
                    if mine:
                        counts = facts.keys.get(type_id)
                        if counts is None:
                            counts = facts.keys[type_id] = Counter()
                        counts[variant] += 1
                    mapping = MAPPINGS[type_id]
                    if entry.value is None or variant in mapping.index_variants:
                        continue  # nothing to split (see split)
                    if lazy:
                        if "\\" in entry.key:  # maybe escaped bytes: the name as SCAN gave it
                            names = names or {key_text(k): k for k in keys}
                            name = names[entry.key]
                        else:
                            name = entry.key.encode()
                    if not hashing:
                        for bucket, part in split(mapping, variant, entry, DIGEST_BUCKETS):
                            if share.owns(bucket):
                                item = (type_id, variant, part.key, part.rtype, part.value)
                                spill.put(bucket % folder.work, ("kv", *item, bucket))
                        continue
                    whole = item_hash(type_id, variant, entry.key, entry.rtype, entry.value)
                    route = last.get(whole)
                    split_parts: list[tuple[int, KvEntry]] | None = None
                    if route is None or not (lazy or isinstance(route, int)):
                        split_parts = list(split(mapping, variant, entry, DIGEST_BUCKETS))
                        route = _route(type_id, variant, entry, split_parts)
                    kept[whole] = route
                    if isinstance(route, int):
                        parts: Iterable[tuple[int, str, int]] = ((route, entry.rtype, whole),)
                    else:
                        parts = route
                    for i, (bucket, part_rtype, part_hash) in enumerate(parts):
                        if not share.owns(bucket):
                            continue
                        if lazy:
                            where_it_is = (type_id, variant, name, part_rtype)
                            spill.put(bucket % folder.work, ("at", *where_it_is, bucket))
                        else:
                            part = entry if split_parts is None else split_parts[i][1]
                            item = (type_id, variant, part.key, part.rtype, part.value)
                            spill.put(bucket % folder.work, ("kv", *item, bucket))
                        at = (type_id, bucket)
                        raw[at] = (raw.get(at, 0) + part_hash) & MASK
            if routes is not None:
                routes.keep(kept)
        ok = True
    finally:
        spill.close()
        if routes is not None:
            routes.close(ok=ok)
    return facts


def _route(type_id: str, variant: str, entry: KvEntry, parts: list[tuple[int, KvEntry]]) -> Route:
    """Where the entry's parts go (:mod:`.routes`): its bucket when it goes whole to one."""
    if len(parts) == 1:
        bucket, part = parts[0]
        if part is entry or (part.key, part.rtype, part.value) == (
            entry.key,
            entry.rtype,
            entry.value,
        ):
            return bucket
    return tuple(
        (b, p.rtype, item_hash(type_id, variant, p.key, p.rtype, p.value)) for b, p in parts
    )


def reader_main(job: tuple[Any, ...], stream: IO[bytes]) -> KeyspaceFacts:
    """In a reader process: batches from ``stream`` until None."""
    _kind, params, types, folder, me, share, hashing = job
    client = kv_from_params(params)

    def batches() -> Iterator[Batch]:
        while (batch := pickle.load(stream)) is not None:
            yield batch

    try:
        return spill_batches(client, batches(), types, folder, me, share=share, hashing=hashing)
    finally:
        client.close()
