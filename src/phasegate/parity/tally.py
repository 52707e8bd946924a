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

from phasegate.findings import Finding

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


MAX_GROUPS = 200  # diagnosis groups kept per type; the rest are counted as "other"


@dataclass
class Diagnosis:
    """Differences grouped by (check, KV variant, field, cause) over the whole pass,
    with the KV records per variant for shares. Bounded: at most :data:`MAX_GROUPS`
    groups per type, the rest counted under the cause ``other``.

    >>> d = Diagnosis(); d.seen("scheme2 msg:*", 2); d.seen("scheme3 messages:*", 2)
    >>> d.note("counts", "scheme2 msg:*", "", "missing in Postgres")
    >>> d.note("counts", "scheme2 msg:*", "", "missing in Postgres")
    >>> print(*d.lines("counts"))  # doctest: +NORMALIZE_WHITESPACE
    missing in Postgres: 2 of 4 records; by variant: scheme2 msg:* 2 (100% of that variant),
    scheme3 messages:* 0
    """

    groups: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)

    def seen(self, variant: str, records: int = 1) -> None:
        self.variants[variant] += records

    def note(self, check: str, variant: str, field_name: str, cause: str, n: int = 1) -> None:
        key = (check, variant, field_name, cause)
        if key not in self.groups and len(self.groups) >= MAX_GROUPS:
            key = (check, variant, field_name, "other")
        self.groups[key] += n

    def add(self, other: Diagnosis) -> None:
        for key, n in other.groups.items():
            self.note(*key, n=n)
        self.variants.update(other.variants)

    def of(self, check: str) -> list[dict[str, Any]]:
        """The check's groups, largest first, with their share of the variant."""
        out = []
        for (c, variant, field_name, cause), n in self.groups.most_common():
            if c == check:
                total = self.variants.get(variant, 0)
                share = round(100 * n / total, 1) if total else None
                out.append(
                    {
                        "variant": variant,
                        "field": field_name,
                        "cause": cause,
                        "count": n,
                        "of_variant": total,
                        "share_percent": share,
                    }
                )
        return out

    def lines(self, check: str) -> list[str]:
        """People's lines: missing and extra by variant, then each field's groups."""
        groups = self.of(check)
        out = []
        records = sum(self.variants.values())
        for cause in ("missing in Postgres", "extra in Postgres"):
            mine = [g for g in groups if g["cause"] == cause]
            if not mine:
                continue
            n = sum(g["count"] for g in mine)
            if cause.startswith("missing"):
                counted = {g["variant"]: g for g in mine}
                names = sorted(
                    set(self.variants) | set(counted),
                    key=lambda v: (-(counted[v]["count"] if v in counted else 0), v),
                )
                parts = []
                for v in names:
                    g = counted.get(v)
                    if g is None:
                        parts.append(f"{v} 0")
                    elif g["share_percent"] is None:
                        parts.append(f"{v} {g['count']}")
                    else:
                        parts.append(f"{v} {g['count']} ({g['share_percent']:g}% of that variant)")
                out.append(f"{cause}: {n} of {records} records; by variant: " + ", ".join(parts))
            else:
                out.append(f"{cause}: {n} rows KV does not have")
        for g in groups:
            if g["field"]:
                of = f" of {g['of_variant']}" if g["of_variant"] else ""
                out.append(
                    f"field {g['field']} differs on {g['count']}{of} {g['variant']} records: "
                    f"{g['cause']}"
                )
        return out


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
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    # Digest buckets holding records of the type, and how many differed (fetched, diffed).
    digest_buckets: int = 0
    fetched_buckets: int = 0

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
        self.diagnosis.add(other.diagnosis)
        self.digest_buckets += other.digest_buckets
        self.fetched_buckets += other.fetched_buckets


@dataclass
class KeyspaceFacts:
    """What the streaming pass saw of the keyspace itself."""

    total_keys: int = 0
    kv_only: Counter[str] = field(default_factory=Counter)
    unmapped: Tally = field(default_factory=Tally)
    keys: dict[str, Counter[str]] = field(default_factory=dict)  # type -> variant -> keys
    wrong_type: dict[str, Tally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)  # every unmapped / wrong-TYPE key

    def add(self, other: KeyspaceFacts) -> None:
        self.total_keys += other.total_keys
        self.findings.extend(other.findings)
        self.kv_only.update(other.kv_only)
        self.unmapped.add(other.unmapped)
        for type_id, variants in other.keys.items():
            self.keys.setdefault(type_id, Counter()).update(variants)
        for type_id, tally in other.wrong_type.items():
            self.wrong_type.setdefault(type_id, Tally()).add(tally)


@dataclass
class Comparison:
    """The whole pass: keyspace facts and one comparison per type."""

    keyspace: KeyspaceFacts
    types: dict[str, TypeComparison]
