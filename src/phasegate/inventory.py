"""The inventory of a KV store: every key classified, every type decoded.

This is the first thing every gate needs: which keys hold which type in which
variant, how many canonical records they decode to, and what could not be
decoded or mapped. Nothing is skipped silently: an unmapped key or a key of an
unexpected Redis TYPE is a finding naming the key.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from phasegate.findings import Finding, Severity
from phasegate.keyspace import KvEntry, read_entries
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_keys": self.total_keys,
            "kv_only_keys": dict(self.kv_only),
            "unmapped_keys": [f.key for f in self.keyspace_findings],
            "types": {
                t: {
                    "keys": dict(inv.keys),
                    "records": inv.records,
                    "findings": dict(Counter(f.kind for f in inv.decoded.findings)),
                }
                for t, inv in self.types.items()
            },
        }


def group_entries(
    entries: Iterable[KvEntry],
    types: Iterable[str] = TYPE_IDS,
    known: dict[str, Classified] | None = None,
) -> tuple[dict[str, list[VariantEntry]], Inventory]:
    """Classify entries into per-type lists (``borrows`` included).

    ``known`` holds classifications already made while reading (consumed here).
    """
    known = {} if known is None else known
    wanted = set(types)
    for type_id in list(wanted):
        wanted.update(MAPPINGS[type_id].borrows)
    inventory = Inventory({t: TypeInventory(t) for t in types})
    grouped: dict[str, list[VariantEntry]] = defaultdict(list)
    for entry in entries:
        inventory.total_keys += 1
        where = known.pop(entry.key, None) or classify(entry.key, entry.rtype)
        if where.kind == "kv_only":
            inventory.kv_only[entry.key.split(":", 1)[0]] += 1
        elif where.kind == "unmapped":
            inventory.keyspace_findings.append(
                Finding(
                    "keyspace",
                    "unmapped_key",
                    entry.key,
                    f"{entry.rtype} key matches no data type and is not on the KV-only list; "
                    "map it or add it to the KV-only list",
                )
            )
        elif where.type_id in wanted:
            assert where.type_id is not None
            if where.kind == "wrong_type":
                if where.type_id in inventory.types:
                    inventory.types[where.type_id].decoded.findings.append(
                        Finding(
                            where.type_id,
                            "wrong_type",
                            entry.key,
                            f"Redis TYPE {entry.rtype}, expected {' or '.join(where.expected)}",
                        )
                    )
                continue
            assert where.variant is not None
            grouped[where.type_id].append((where.variant, entry))
            if where.type_id in inventory.types:
                inventory.types[where.type_id].keys[where.variant] += 1
    return grouped, inventory


def take_inventory(
    client: redis.Redis,
    types: Iterable[str] = TYPE_IDS,
    *,
    on_keys: Callable[[int], None] | None = None,
    on_type: Callable[[str], None] | None = None,
) -> Inventory:
    """Scan the whole keyspace once and decode every requested type."""
    types = tuple(types)
    known: dict[str, Classified] = {}

    def want(key: str, rtype: str) -> bool:
        where = known[key] = classify(key, rtype)
        return where.kind == "mapped"

    with _cyclic_gc_paused():
        grouped, inventory = group_entries(
            read_entries(client, want=want, on_batch=on_keys), types, known
        )
        _decode_all(inventory, grouped, types, on_type)
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


def _decode_all(
    inventory: Inventory,
    grouped: dict[str, list[VariantEntry]],
    types: tuple[str, ...],
    on_type: Callable[[str], None] | None,
) -> None:
    for type_id in types:
        mapping = MAPPINGS[type_id]
        entries = list(grouped.get(type_id, []))
        for borrowed in mapping.borrows:
            entries.extend(grouped.get(borrowed, []))
        found = inventory.types[type_id].decoded.findings
        decoded = mapping.decode(entries)
        decoded.findings[:0] = found
        inventory.types[type_id].decoded = decoded
        if on_type is not None:
            on_type(type_id)
