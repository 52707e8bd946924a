"""The Phase A gate: was the backfill complete and faithful?

Checks per data type: ``coverage`` (every key mapped and decodable), ``counts``
(distinct records KV vs rows PG, allow-listed PG-only rows aside), ``sample``
(a deterministic share, field by field), ``recency`` (every record of the last
24 hours by its own timestamp), ``full`` (every record, on demand), ``refint``
(every referenced handle exists; the foreign keys are in place and validated)
and ``rerun`` (a second backfill changes nothing). Against given servers the
gate only reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis

from phasegate.backfill import BackfillResult
from phasegate.findings import Severity
from phasegate.inventory import Inventory
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Record, RecordKey
from phasegate.parity.diff import diff_records, show_key
from phasegate.parity.full import TypeDiff, full_diff
from phasegate.parity.postgres import AllowList, PgConn, foreign_keys, orphans, read_records
from phasegate.parity.result import CheckResult, Status, verdict

CHECKS = ("coverage", "counts", "sample", "recency", "full", "refint", "rerun")
RECENT = timedelta(hours=24)


def in_sample(seed: int, key: RecordKey, rate: float) -> bool:
    """Deterministic membership: ``hash(seed, key) mod 100 < rate``, same on both stores.

    >>> in_sample(7, ("msg_1",), 100.0)
    True
    >>> 900 < sum(in_sample(7, (f"m{i}",), 10.0) for i in range(10_000)) < 1100
    True
    """
    digest = hashlib.blake2b(f"{seed}\x1f{show_key(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < rate * 100


@dataclass
class RerunEvidence:
    """A second backfill over the same keyspace: its rows changed and its decode."""

    changed: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def between(cls, first: BackfillResult, second: BackfillResult) -> RerunEvidence:
        """What the second of two backfills over one keyspace changed, and why."""
        return cls(
            changed={t: r.changed for t, r in second.types.items()},
            examples={
                t: rerun_examples(t, first.inventory, second.inventory) for t in second.types
            },
        )


@dataclass
class PhaseA:
    """Inputs of the Phase A checks, loaded once per session and cached per type."""

    inventory: Inventory
    kv: redis.Redis
    pg: PgConn
    seed: int
    sample_rate: float
    full: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    allow: AllowList = field(default_factory=AllowList)
    rerun: RerunEvidence | None = None
    _pg_cache: dict[str, dict[RecordKey, Record]] = field(default_factory=dict)
    _full: dict[str, TypeDiff] | None = None

    def pg_records(self, type_id: str) -> dict[RecordKey, Record]:
        if type_id not in self._pg_cache:
            self._pg_cache[type_id] = read_records(self.pg, MAPPINGS[type_id])
        return self._pg_cache[type_id]

    def run(self, check: str, type_id: str) -> CheckResult:
        if check not in CHECKS:
            raise ValueError(f"unknown Phase A check {check!r}")
        if type_id == "keyspace":
            return self.keyspace_coverage()
        method = getattr(self, f"check_{check}")
        result: CheckResult = method(type_id)
        return result

    def _skip(self, type_id: str, check: str, reason: str) -> CheckResult:
        return CheckResult("A", type_id, check, "skip", reason)

    def keyspace_coverage(self) -> CheckResult:
        unmapped = self.inventory.keyspace_findings
        return verdict(
            "A",
            "keyspace",
            "coverage",
            [f"{f.key}: {f.detail}" for f in unmapped],
            ok=f"all {self.inventory.total_keys:,} keys are mapped or KV-only",
            bad="{n} unmapped keys: map them or add them to the KV-only list",
            metrics={
                "keys": self.inventory.total_keys,
                "unmapped": len(unmapped),
                "kv_only": sum(self.inventory.kv_only.values()),
            },
        )

    def check_coverage(self, type_id: str) -> CheckResult:
        inv = self.inventory.types[type_id]
        errors = [f for f in inv.decoded.findings if f.severity == Severity.ERROR]
        by_kind: dict[str, int] = {}
        for f in inv.decoded.findings:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
        return verdict(
            "A",
            type_id,
            "coverage",
            [str(f) for f in errors],
            ok=f"{inv.records:,} records decoded from {sum(inv.keys.values()):,} keys, no errors",
            bad="{n} values cannot be migrated as they are (fix them in KV or map them)",
            metrics={"keys": dict(inv.keys), "records": inv.records, "findings": by_kind},
        )

    def check_counts(self, type_id: str) -> CheckResult:
        kv = self.inventory.types[type_id].decoded.records
        pg = self.pg_records(type_id)
        allowed = self.allow.for_type(type_id, pg)
        missing = [k for k in kv if k not in pg]
        extra = [k for k in pg if k not in kv and k not in allowed]
        sources = self.inventory.types[type_id].decoded.sources
        problems = [f"missing in Postgres: {show_key(k)} ({sources.get(k, '?')})" for k in missing]
        problems += [f"extra in Postgres: {show_key(k)}" for k in extra]
        pg_counted = len(pg) - len(allowed & pg.keys())
        return verdict(
            "A",
            type_id,
            "counts",
            problems,
            ok=f"KV {len(kv):,} records = Postgres {pg_counted:,} rows"
            + (f" (+{len(allowed & pg.keys())} allow-listed PG-only)" if allowed else ""),
            bad=f"KV {len(kv):,} records, Postgres {pg_counted:,} rows: "
            f"{len(missing)} missing, {len(extra)} extra",
            metrics={
                "kv_records": len(kv),
                "pg_rows": len(pg),
                "pg_only_allowed": len(allowed & pg.keys()),
            },
            thresholds={"difference": 0},
        )

    def _compare(
        self, type_id: str, check: str, keys: Iterable[RecordKey], what: str
    ) -> CheckResult:
        decoded = self.inventory.types[type_id].decoded
        pg = self.pg_records(type_id)
        chosen = sorted(set(keys), key=show_key)
        allowed = self.allow.for_type(type_id, pg)
        diffs = list(
            diff_records(
                type_id,
                decoded.records,
                pg,
                chosen,
                sources=decoded.sources,
                allowed_pg_only=allowed,
            )
        )
        return verdict(
            "A",
            type_id,
            check,
            diffs,
            ok=f"{len(chosen):,} {what} identical field by field",
            bad="{n} differences among " + f"{len(chosen):,} {what}",
            metrics={"compared": len(chosen), "differences": len(diffs)},
            thresholds={"differences": 0},
        )

    def check_sample(self, type_id: str) -> CheckResult:
        kv, pg = self.inventory.types[type_id].decoded.records, self.pg_records(type_id)
        keys = [k for k in kv.keys() | pg.keys() if in_sample(self.seed, k, self.sample_rate)]
        result = self._compare(type_id, "sample", keys, f"sampled records ({self.sample_rate:g}%)")
        metrics = {**result.metrics, "seed": self.seed, "rate_percent": self.sample_rate}
        return CheckResult(
            result.phase,
            type_id,
            "sample",
            result.status,
            result.message,
            result.details,
            metrics,
            result.thresholds,
        )

    def check_recency(self, type_id: str) -> CheckResult:
        column = MAPPINGS[type_id].recency_column
        if column is None:
            return self._skip(type_id, "recency", f"{type_id} records carry no timestamp")
        cutoff = self.now - RECENT

        def recent(record: Record) -> bool:
            value = record.get(column)
            if isinstance(value, datetime):
                return value >= cutoff
            return isinstance(value, date) and value >= cutoff.date()

        kv, pg = self.inventory.types[type_id].decoded.records, self.pg_records(type_id)
        keys = [k for k, r in kv.items() if recent(r)] + [k for k, r in pg.items() if recent(r)]
        return self._compare(type_id, "recency", keys, f"records since {cutoff:%Y-%m-%d %H:%M}Z")

    def check_full(self, type_id: str) -> CheckResult:
        if not self.full:
            return self._skip(type_id, "full", "the full diff runs on demand: pass --full")
        if self._full is None:  # one bucketed pass serves every type
            self._full = full_diff(self.kv, self.pg, MAPPINGS, allow=self.allow)
        diff = self._full[type_id]
        shown = tuple(diff.examples)
        if diff.differences > len(shown):
            shown += (f"... and {diff.differences - len(shown)} more",)
        status: Status = "fail" if diff.differences else "pass"
        message = (
            f"{diff.differences} differences among {diff.compared:,} records"
            if diff.differences
            else f"{diff.compared:,} records identical field by field"
        )
        metrics = {
            "compared": diff.compared,
            "differences": diff.differences,
            "kv_records": diff.kv_records,
            "pg_rows": diff.pg_rows,
        }
        return CheckResult(
            "A", type_id, "full", status, message, shown, metrics, {"differences": 0}
        )

    def check_refint(self, type_id: str) -> CheckResult:
        mapping = MAPPINGS[type_id]
        if not mapping.handle_columns and type_id != "games":
            return self._skip(type_id, "refint", f"{type_id} references no handle")
        problems = [
            f"{type_id} {show_key(key)} field {column}: handle {handle!r} is not in users -- "
            "a system account? `phasegate fk add --create-missing-handles`"
            for key, column, handle in orphans(self.pg, mapping)
        ]
        fks = foreign_keys(self.pg, mapping.table)
        for column in mapping.handle_columns:
            validated, action = fks.get(column, (False, ""))
            if column not in fks:
                problems.append(
                    f"{mapping.table}.{column}: no foreign key to users(handle) "
                    "-- run `phasegate fk add`"
                )
            elif not validated or action != "c":
                problems.append(
                    f"{mapping.table}.{column}: foreign key not validated or not ON DELETE CASCADE"
                )
        return verdict(
            "A",
            type_id,
            "refint",
            problems,
            ok=f"every handle in {mapping.table} exists in users; foreign keys validated",
            bad="{n} referential problems",
            metrics={"foreign_keys": sorted(fks)},
        )

    def check_rerun(self, type_id: str) -> CheckResult:
        if self.rerun is None:
            return self._skip(
                type_id,
                "rerun",
                "given servers are only read: the full diff "
                "(--full) proves a re-run would change nothing",
            )
        changed = self.rerun.changed.get(type_id, 0)
        problems = list(self.rerun.examples.get(type_id, []))
        if changed and not problems:
            problems = [f"{changed} rows changed on the second run"]
        return verdict(
            "A",
            type_id,
            "rerun",
            problems,
            ok="a second backfill of the same keyspace changed 0 rows",
            bad=f"a second backfill changed {changed} rows: the backfill is not a no-op",
            metrics={"changed_on_rerun": changed},
            thresholds={"changed_on_rerun": 0},
        )


def rerun_examples(type_id: str, first: Inventory, second: Inventory, limit: int = 10) -> list[str]:
    """Records whose decode differs between two runs over the same keyspace."""
    a, b = first.types[type_id].decoded, second.types[type_id].decoded
    out: list[str] = []
    for key in sorted(a.records.keys() | b.records.keys(), key=show_key):
        if key not in a.records or key not in b.records:
            out.append(f"{type_id} {show_key(key)}: decoded on one run only")
            continue
        mine, theirs = a.records[key], b.records[key]
        out.extend(
            f"{type_id} {show_key(key)} ({a.sources.get(key, '?')}) field {name}: first run "
            f"{mine[name]!r:.80}, second run {theirs[name]!r:.80} -- decoding is not "
            "deterministic (now()? random?)"
            for name in mine
            if mine[name] != theirs.get(name)
        )
        if len(out) >= limit:
            break
    return out
