"""What a bucketed comparison pass reports: counts with their first examples.

Workers return these per bucket; the parent adds them up. Nothing here holds
records, so the pass's memory does not grow with the data.

>>> t = Tally(); t.note("a"); t.note("b"); t.count, t.examples
(2, ['a', 'b'])
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 10
SUBSETS = ("sample", "recency", "full")


@dataclass
class Tally:
    """A count and its first :data:`EXAMPLES` examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.examples.extend(other.examples[: max(0, EXAMPLES - len(self.examples))])

    def shown(self) -> tuple[str, ...]:
        more = self.count - len(self.examples)
        return (*self.examples, f"... and {more} more") if more > 0 else tuple(self.examples)


def _tallies() -> dict[str, Tally]:
    return {s: Tally() for s in SUBSETS}


def _counts() -> dict[str, int]:
    return dict.fromkeys(SUBSETS, 0)


@dataclass
class TypeComparison:
    """One type compared record by record: sizes, per-subset compares and differences."""

    type_id: str
    kv_records: int = 0
    pg_rows: int = 0
    pg_only_allowed: int = 0
    compared: dict[str, int] = field(default_factory=_counts)
    differences: dict[str, Tally] = field(default_factory=_tallies)
    missing: Tally = field(default_factory=Tally)
    extra: Tally = field(default_factory=Tally)
    errors: Tally = field(default_factory=Tally)
    findings: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0  # KV records that could not be decoded: counted as missing
    # With Scope.collect: KV records missing or different in Postgres, Postgres-only keys.
    repairs: list[dict[str, Any]] = field(default_factory=list)
    pg_only: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, other: TypeComparison) -> None:
        self.kv_records += other.kv_records
        self.undecodable += other.undecodable
        self.pg_rows += other.pg_rows
        self.pg_only_allowed += other.pg_only_allowed
        for subset in SUBSETS:
            self.compared[subset] += other.compared[subset]
            self.differences[subset].add(other.differences[subset])
        self.missing.add(other.missing)
        self.extra.add(other.extra)
        self.errors.add(other.errors)
        self.findings.update(other.findings)
        self.repairs.extend(other.repairs)
        self.pg_only.extend(other.pg_only)


@dataclass
class KeyspaceFacts:
    """What the streaming pass saw of the keyspace itself."""

    total_keys: int = 0
    kv_only: Counter[str] = field(default_factory=Counter)
    unmapped: Tally = field(default_factory=Tally)
    keys: dict[str, Counter[str]] = field(default_factory=dict)  # type -> variant -> keys
    wrong_type: dict[str, Tally] = field(default_factory=dict)


@dataclass
class Comparison:
    """The whole pass: keyspace facts and one comparison per type."""

    keyspace: KeyspaceFacts
    types: dict[str, TypeComparison]
