"""The inventory of a KV store: every key classified, every type decoded.

This is the first thing every gate needs: which keys hold which type in which
variant, how many canonical records they decode to, and what could not be
decoded or mapped. Nothing is skipped silently: an unmapped key or a key of an
unexpected Redis TYPE is a finding naming the key.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field

import redis

from phasegate.findings import Finding, Severity
from phasegate.keyspace import KvEntry, Reader, read_batch, read_untyped, scan_keys
from phasegate.mappings import MAPPINGS, TYPE_IDS, Classified, classify
from phasegate.mappings.base import Decoded, VariantEntry


@dataclass
class TypeInventory:
    """One data type: keys per variant, records decoded, findings."""

    type_id: str
    keys: Counter[str] = field(default_factory=Counter)
    decoded: Decoded = field(default_factory=Decoded)

    @property
    def records(self) -> int:
        return len(self.decoded.records)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.decoded.findings if f.severity == severity)


@dataclass
class Inventory:
    """A whole keyspace, classified and decoded."""

    types: dict[str, TypeInventory]
    kv_only: Counter[str] = field(default_factory=Counter)
    keyspace_findings: list[Finding] = field(default_factory=list)
    total_keys: int = 0

    @property
    def findings(self) -> list[Finding]:
        out = list(self.keyspace_findings)
        for inv in self.types.values():
            out.extend(inv.decoded.findings)
        return out


def key_finding(entry: KvEntry, where: Classified) -> Finding | None:
    """The finding an unmapped or wrong-TYPE key makes; None for every other key."""
    if where.kind == "unmapped":
        return Finding(
            "keyspace",
            "unmapped_key",
            entry.key,
            f"{entry.rtype} key matches no data type and is not on the KV-only list; "
            "map it or add it to the KV-only list",
        )
    if where.kind == "wrong_type":
        assert where.type_id is not None
        return Finding(
            where.type_id,
            "wrong_type",
            entry.key,
            f"Redis TYPE {entry.rtype}, expected {' or '.join(where.expected)}",
        )
    return None


def classified_entries(
    client: redis.Redis,
    wanted: Collection[str] | None = None,
    on_keys: Callable[[int], None] | None = None,
) -> Iterator[tuple[KvEntry, Classified]]:
    """Every key with its classification (made once, while reading); values are
    read only for mapped keys, and only of ``wanted`` types when given."""
    reader = Reader(client)
    for keys in scan_keys(client):  # one plain pass; the TYPEs asked per batch
        yield from classified_batch(reader, "", keys, wanted)
        if on_keys is not None:
            on_keys(len(keys))


def classified_batch(
    reader: Reader, rtype: str, keys: list[bytes], wanted: Collection[str] | None = None
) -> Iterator[tuple[KvEntry, Classified]]:
    """One batch of :func:`~phasegate.keyspace.typed_batches` (or, with ``rtype`` "",
    of plain SCAN), read and classified."""
    known: dict[str, Classified] = {}

    def want(key: str, rtype: str) -> bool:
        where = known[key] = classify(key, rtype)
        return where.kind == "mapped" and (wanted is None or where.type_id in wanted)

    entries = (
        read_untyped(reader, keys, want) if rtype == "" else read_batch(reader, rtype, keys, want)
    )
    for entry in entries:
        where = known.pop(entry.key) if entry.key in known else classify(entry.key, entry.rtype)
        yield entry, where


class _Router:
    """Classifies entries and routes them to each type's decoder (borrows included),
    keeping the inventory's counts; unmapped and wrong-TYPE keys become findings."""

    def __init__(
        self, inventory: Inventory, sinks: dict[str, list[Callable[[VariantEntry], None]]]
    ):
        self.inventory = inventory
        self.sinks = sinks

    def route(self, entry: KvEntry, where: Classified) -> None:
        inventory = self.inventory
        inventory.total_keys += 1
        if where.kind == "kv_only":
            inventory.kv_only[entry.key.split(":", 1)[0]] += 1
        elif where.kind == "unmapped":
            finding = key_finding(entry, where)
            assert finding is not None
            inventory.keyspace_findings.append(finding)
        elif where.kind == "wrong_type":
            assert where.type_id is not None
            if where.type_id in inventory.types:
                finding = key_finding(entry, where)
                assert finding is not None
                inventory.types[where.type_id].decoded.findings.append(finding)
        else:
            assert where.type_id is not None
            assert where.variant is not None
            if where.type_id in inventory.types:
                inventory.types[where.type_id].keys[where.variant] += 1
            for sink in self.sinks.get(where.type_id, ()):
                sink((where.variant, entry))


_DONE = None
_BATCH = 2000


class _DecoderThread(threading.Thread):
    """Decodes one type from a queue of entry batches while the keyspace is read.

    Every decoder iterates its entries once, so it can consume them as they
    arrive: Redis I/O (socket waits, the server's own work on the other core)
    overlaps with decoding.
    """

    def __init__(self, type_id: str) -> None:
        super().__init__(name=f"decode-{type_id}", daemon=True)
        self.type_id = type_id
        self.queue: queue.SimpleQueue[list[VariantEntry] | None] = queue.SimpleQueue()
        self.pending: list[VariantEntry] = []
        self.result: Decoded | None = None
        self.error: BaseException | None = None
        self.drained = False  # the decoder read every entry, to the end marker

    def put(self, item: VariantEntry) -> None:
        self.pending.append(item)
        if len(self.pending) >= _BATCH:
            self.queue.put(self.pending)
            self.pending = []

    def close(self) -> None:
        self.queue.put(self.pending)
        self.queue.put(_DONE)

    def _entries(self) -> Iterator[VariantEntry]:
        while (batch := self.queue.get()) is not _DONE:
            yield from batch
        self.drained = True

    def run(self) -> None:
        try:
            self.result = MAPPINGS[self.type_id].decode(self._entries())
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
            # Drain so the producer never blocks (unless the decoder read to the end:
            # waiting for another end would hang).
            while not self.drained and self.queue.get() is not _DONE:
                pass


def take_inventory(
    client: redis.Redis,
    types: Iterable[str] = TYPE_IDS,
    *,
    on_keys: Callable[[int], None] | None = None,
    on_type: Callable[[str], None] | None = None,
) -> Inventory:
    """Scan the whole keyspace once and decode every requested type (concurrently)."""
    types = tuple(types)
    inventory = Inventory({t: TypeInventory(t) for t in types})
    threads = {t: _DecoderThread(t) for t in types}
    sinks: dict[str, list[Callable[[VariantEntry], None]]] = defaultdict(list)
    for type_id, thread in threads.items():
        for source in (type_id, *MAPPINGS[type_id].borrows):
            sinks[source].append(thread.put)
    router = _Router(inventory, sinks)
    with _cyclic_gc_paused():
        for thread in threads.values():
            thread.start()
        try:
            for entry, where in classified_entries(client, set(sinks), on_keys):
                router.route(entry, where)
        finally:
            for thread in threads.values():
                thread.close()
        for type_id, thread in threads.items():
            thread.join()
            if thread.error is not None:
                raise thread.error
            assert thread.result is not None
            found = inventory.types[type_id].decoded.findings
            thread.result.findings[:0] = found
            inventory.types[type_id].decoded = thread.result
            if on_type is not None:
                on_type(type_id)
    return inventory


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Bulk decoding builds millions of acyclic objects; the cyclic collector's
    passes over them cost a quarter of the time at 6mo and more at 12mo.
    Reference counting still frees memory while it is paused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
