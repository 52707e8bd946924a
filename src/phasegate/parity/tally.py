"""What a bucketed comparison pass reports: counts with their examples.

Workers return these per bucket; the parent adds them up. Nothing here holds
records, so the pass's memory does not grow with the data. The examples a tally
keeps are its :data:`EXAMPLES` smallest (by text), so the sum of any split of a
pass (work buckets over workers, shares over runs) keeps the same examples as
the whole pass, in the same order; :func:`comparison_to_json` and
:func:`comparison_from_json` carry a share's pass to ``phasegate report merge``.

>>> t = Tally(); t.note("b"); t.note("a"); t.count, t.examples
(2, ['a', 'b'])
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from phasegate.findings import Finding

EXAMPLES = 10
SUBSETS = ("sample", "recency", "full")


@dataclass
class Tally:
    """A count and its :data:`EXAMPLES` smallest examples, sorted."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            bisect.insort(self.examples, text)
        elif text < self.examples[-1]:
            bisect.insort(self.examples, text)
            self.examples.pop()

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.examples = sorted(self.examples + other.examples)[:EXAMPLES]

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
        """The check's groups, largest first (ties by name), with their share of the variant."""
        out = []
        ordered = sorted(self.groups.items(), key=lambda group: (-group[1], group[0]))
        for (c, variant, field_name, cause), n in ordered:
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
    # (type, digest bucket) -> the raw hash of its spilled entries (decode memos only)
    raw: dict[tuple[str, int], int] = field(default_factory=dict, compare=False, repr=False)

    def add(self, other: KeyspaceFacts) -> None:
        self.total_keys += other.total_keys
        for at, value in other.raw.items():
            self.raw[at] = (self.raw.get(at, 0) + value) & ((1 << 128) - 1)
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


# --- a share's pass as JSON, for `phasegate report merge` -------------------------


def _tally_json(t: Tally) -> dict[str, Any]:
    return {"count": t.count, "examples": list(t.examples)}


def _tally(data: dict[str, Any]) -> Tally:
    return Tally(int(data["count"]), [str(e) for e in data["examples"]])


def _type_json(c: TypeComparison) -> dict[str, Any]:
    if c.repairs or c.pg_only:
        raise ValueError(f"{c.type_id}: a collecting pass (reconcile) is not carried as JSON")
    return {
        "type": c.type_id,
        "kv_records": c.kv_records,
        "pg_rows": c.pg_rows,
        "pg_only_allowed": c.pg_only_allowed,
        "compared": dict(c.compared),
        "differences": {k: _tally_json(v) for k, v in c.differences.items()},
        "missing": _tally_json(c.missing),
        "extra": _tally_json(c.extra),
        "errors": _tally_json(c.errors),
        "findings": dict(c.findings),
        "undecodable": c.undecodable,
        "diagnosis": {
            "groups": [[*key, n] for key, n in sorted(c.diagnosis.groups.items())],
            "variants": dict(c.diagnosis.variants),
        },
        "digest_buckets": c.digest_buckets,
        "fetched_buckets": c.fetched_buckets,
    }


def _type(data: dict[str, Any]) -> TypeComparison:
    diagnosis = Diagnosis(
        Counter({(g[0], g[1], g[2], g[3]): int(g[4]) for g in data["diagnosis"]["groups"]}),
        Counter(data["diagnosis"]["variants"]),
    )
    return TypeComparison(
        data["type"],
        int(data["kv_records"]),
        int(data["pg_rows"]),
        int(data["pg_only_allowed"]),
        compared={k: int(v) for k, v in data["compared"].items()},
        differences={k: _tally(v) for k, v in data["differences"].items()},
        missing=_tally(data["missing"]),
        extra=_tally(data["extra"]),
        errors=_tally(data["errors"]),
        findings=Counter(data["findings"]),
        undecodable=int(data["undecodable"]),
        diagnosis=diagnosis,
        digest_buckets=int(data["digest_buckets"]),
        fetched_buckets=int(data["fetched_buckets"]),
    )


def comparison_to_json(c: Comparison) -> dict[str, Any]:
    """A pass as plain JSON (every count, example and diagnosis group; findings whole).

    >>> c = Comparison(KeyspaceFacts(3), {"users": TypeComparison("users", 2)})
    >>> comparison_from_json(comparison_to_json(c)) == c
    True
    """
    k = c.keyspace
    return {
        "keyspace": {
            "total_keys": k.total_keys,
            "kv_only": dict(k.kv_only),
            "unmapped": _tally_json(k.unmapped),
            "keys": {t: dict(v) for t, v in k.keys.items()},
            "wrong_type": {t: _tally_json(v) for t, v in k.wrong_type.items()},
            "findings": [dataclasses.asdict(f) for f in k.findings],
        },
        "types": {t: _type_json(v) for t, v in c.types.items()},
    }


def comparison_from_json(data: dict[str, Any]) -> Comparison:
    """The pass :func:`comparison_to_json` wrote."""
    k = data["keyspace"]
    facts = KeyspaceFacts(
        int(k["total_keys"]),
        Counter(k["kv_only"]),
        _tally(k["unmapped"]),
        {t: Counter(v) for t, v in k["keys"].items()},
        {t: _tally(v) for t, v in k["wrong_type"].items()},
        [Finding(**f) for f in k["findings"]],
    )
    return Comparison(facts, {t: _type(v) for t, v in data["types"].items()})


def merged(parts: list[Comparison]) -> Comparison:
    """Shares' passes added up into one (as the whole pass would have counted them)."""
    facts = KeyspaceFacts()
    types: dict[str, TypeComparison] = {}
    for part in parts:
        facts.add(part.keyspace)
        for type_id, c in part.types.items():
            types.setdefault(type_id, TypeComparison(type_id)).add(c)
    facts.findings.sort(key=_finding_order)
    return Comparison(facts, types)


def _finding_order(f: Finding) -> tuple[str, str, str, str]:
    return (f.type_id, f.key, f.kind, f.field or "")
