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

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis

from phasegate.backfill import BackfillResult, TypeResult
from phasegate.errors import PhasegateError
from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, Status, verdict
from phasegate.mappings import MAPPINGS
from phasegate.parity.buckets import Share
from phasegate.parity.compare import RECENT, Scope, compare
from phasegate.parity.diff import show_key
from phasegate.parity.postgres import AllowList, PgConn, foreign_keys, orphans
from phasegate.parity.tally import Comparison, Diagnosis, Tally, comparison_to_json
from phasegate.show import shown
from phasegate.stores import DEFAULT_TIMEOUT_S, Watchdog

CHECKS = PHASE_CHECKS["A"]


@dataclass
class RerunEvidence:
    """A second backfill over the same keyspace: its rows changed and its decode."""

    changed: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def between(cls, first: BackfillResult, second: BackfillResult) -> RerunEvidence:
        """What the second of two backfills over one keyspace changed, and why: the
        fields it rewrote, as the first run left them and as the second decoded them."""
        del first  # the first run's rows are what the second found in Postgres
        return cls(
            changed={t: r.changed for t, r in second.types.items()},
            examples={t: rerun_examples(r) for t, r in second.types.items()},
        )


@dataclass
class PhaseA:
    """The Phase A checks over two stores; one bucketed comparison pass serves them all."""

    kv: redis.Redis
    pg: PgConn
    seed: int
    sample_rate: float
    full: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    allow: AllowList = field(default_factory=AllowList)
    rerun: RerunEvidence | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    share: Share = field(default_factory=Share)  # the buckets this run takes (--buckets)
    memo_dir: Path | None = None  # decode memos (phasegate.parity.memo); None: off
    _pass: Comparison | None = None
    _failed: PhasegateError | None = None
    _shipped: bool = False

    @property
    def comparison(self) -> Comparison:
        """The one comparison pass; a store failure during it is kept and raised
        again for every check, so a frozen store costs one timeout, not one per check."""
        if self._failed is not None:
            raise self._failed
        if self._pass is None:
            scope = Scope(self.seed, self.sample_rate, self.now, self.allow)
            try:
                self._pass = compare(
                    self.kv,
                    self.pg,
                    MAPPINGS,
                    scope,
                    timeout_s=self.timeout_s,
                    share=self.share,
                    memo_dir=self.memo_dir,
                )
            except PhasegateError as exc:
                self._failed = exc
                raise
        return self._pass

    def share_pass(self) -> dict[str, object] | None:
        """This share's pass as JSON, once per process (None for a whole run): the
        run's report folder keeps it for ``phasegate report merge``."""
        if self.share.whole or self._shipped:
            return None
        self._shipped = True
        return {
            "share": str(self.share),
            "seed": self.seed,
            "sample_rate": self.sample_rate,
            "full": self.full,
            "now": self.now.isoformat(),
            "comparison": comparison_to_json(self.comparison),
        }

    def _whole_table_check(self, type_id: str, check: str) -> CheckResult | None:
        """Checks over whole tables (not by bucket) run in share 1 only."""
        if self.share.index == 1:
            return None
        return self._skip(
            type_id, check, f"checked by share 1 of {self.share.count} (it reads whole tables)"
        )

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
        facts = self.comparison.keyspace
        return _from_tally(
            "keyspace",
            "coverage",
            facts.unmapped,
            empty="the keyspace is empty: nothing to migrate or compare"
            if facts.total_keys == 0
            else None,
            ok=f"all {facts.total_keys:,} keys are mapped or KV-only",
            bad="{n} unmapped keys: map them or add them to the KV-only list",
            metrics={
                "keys": facts.total_keys,
                "unmapped": facts.unmapped.count,
                "kv_only": sum(facts.kv_only.values()),
            },
        )

    def check_coverage(self, type_id: str) -> CheckResult:
        facts, c = self.comparison.keyspace, self.comparison.types[type_id]
        errors = Tally()
        errors.add(facts.wrong_type.get(type_id, Tally()))
        errors.add(c.errors)
        keys = dict(facts.keys.get(type_id, {}))
        return _from_tally(
            type_id,
            "coverage",
            errors,
            empty=f"no {type_id} records in KV: nothing of this type to judge"
            if c.kv_records == 0
            else None,
            ok=f"{c.kv_records:,} records decoded from {sum(keys.values()):,} keys, no errors",
            bad="{n} values cannot be migrated as they are (fix them in KV or map them)",
            metrics={"keys": keys, "records": c.kv_records, "findings": dict(c.findings)},
        )

    def check_counts(self, type_id: str) -> CheckResult:
        c = self.comparison.types[type_id]
        problems = Tally()
        problems.add(c.missing)
        problems.add(c.extra)
        pg_counted = c.pg_rows - c.pg_only_allowed
        kv_counted = c.kv_records + c.undecodable
        allowed = f" (+{c.pg_only_allowed} allow-listed PG-only)" if c.pg_only_allowed else ""
        lost = f" ({c.undecodable} could not be decoded)" if c.undecodable else ""
        return _from_tally(
            type_id,
            "counts",
            problems,
            empty=f"KV holds no {type_id} records and Postgres no rows: nothing to compare"
            if kv_counted == 0 and c.pg_rows == 0
            else None,
            ok=f"KV {kv_counted:,} records = Postgres {pg_counted:,} rows{allowed}",
            bad=f"KV {kv_counted:,} records{lost}, Postgres {pg_counted:,} rows: "
            f"{c.missing.count} missing, {c.extra.count} extra",
            metrics={
                "kv_records": kv_counted,
                "kv_undecodable": c.undecodable,
                "pg_rows": c.pg_rows,
                "pg_only_allowed": c.pg_only_allowed,
                **_diagnosis(c.diagnosis, "counts", problems.count),
            },
            thresholds={"difference": 0},
            diagnosis=c.diagnosis.lines("counts"),
        )

    def _subset(self, type_id: str, subset: str, what: str) -> CheckResult:
        c = self.comparison.types[type_id]
        compared = c.compared[subset]
        return _from_tally(
            type_id,
            subset,
            c.differences[subset],
            empty=f"no {what} to compare (0 in either store)" if compared == 0 else None,
            ok=f"{compared:,} {what} identical field by field",
            bad="{n} difference{s} among " + f"{compared:,} {what}",
            metrics={
                "compared": compared,
                "differences": c.differences[subset].count,
                **_diagnosis(c.diagnosis, subset, c.differences[subset].count),
            },
            thresholds={"differences": 0},
            diagnosis=c.diagnosis.lines(subset),
        )

    def check_sample(self, type_id: str) -> CheckResult:
        result = self._subset(type_id, "sample", f"sampled records ({self.sample_rate:g}%)")
        metrics = {**result.metrics, "seed": self.seed, "rate_percent": self.sample_rate}
        return dataclasses.replace(result, metrics=metrics)

    def check_recency(self, type_id: str) -> CheckResult:
        if MAPPINGS[type_id].recency_column is None:
            return self._skip(type_id, "recency", f"{type_id} records carry no timestamp")
        cutoff = self.now - RECENT
        what = f"records since {cutoff:%Y-%m-%d %H:%M}Z"
        c = self.comparison.types[type_id]
        if c.compared["recency"] == 0 and c.kv_records + c.pg_rows > 0:
            # The type has data, none of it recent: a fact about the data, not a lack of it.
            return CheckResult(
                "A",
                type_id,
                "recency",
                "pass",
                f"no {what} in either store ({c.kv_records:,} KV records, all older)",
                metrics={"compared": 0, "differences": 0},
                thresholds={"differences": 0},
            )
        return self._subset(type_id, "recency", what)

    def check_full(self, type_id: str) -> CheckResult:
        if not self.full:
            return self._skip(type_id, "full", "the full diff runs on demand: pass --full")
        result = self._subset(type_id, "full", "records")
        c = self.comparison.types[type_id]
        equal = c.digest_buckets - c.fetched_buckets
        how = (
            f" ({equal:,} of {c.digest_buckets:,} buckets equal by digest, "
            f"{c.fetched_buckets:,} fetched and compared)"
        )
        metrics = {
            **result.metrics,
            "digest_buckets": c.digest_buckets,
            "fetched_buckets": c.fetched_buckets,
        }
        return dataclasses.replace(result, message=result.message + how, metrics=metrics)

    def check_refint(self, type_id: str) -> CheckResult:
        if (elsewhere := self._whole_table_check(type_id, "refint")) is not None:
            return elsewhere
        mapping = MAPPINGS[type_id]
        if not mapping.handle_columns and type_id != "games":
            return self._skip(type_id, "refint", f"{type_id} references no handle")
        with Watchdog(self.pg, self.timeout_s, f"checking the references of {mapping.table}"):
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
        if (elsewhere := self._whole_table_check(type_id, "rerun")) is not None:
            return elsewhere
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


def rerun_examples(second: TypeResult, limit: int = 10) -> list[str]:
    """Fields the second backfill rewrote: its decode is not what the first wrote."""
    return [
        f"{second.type_id} {show_key(c.key)} field {c.field}: first run {shown(c.before, 80)}, "
        f"second run {shown(c.after, 80)} -- decoding is not deterministic (now()? random?)"
        for c in second.changes[:limit]
    ]


MAX_DIAGNOSIS = 10  # diagnosis lines before the examples


def _diagnosis(d: Diagnosis, check: str, count: int) -> dict[str, object]:
    """The check's diagnosis groups for summary.json (only when it found something)."""
    return {"diagnosis": d.of(check)[:50]} if count else {}


def _from_tally(
    type_id: str,
    check: str,
    tally: Tally,
    *,
    ok: str,
    bad: str,
    metrics: dict[str, object],
    thresholds: dict[str, object] | None = None,
    empty: str | None = None,
    diagnosis: list[str] | None = None,
) -> CheckResult:
    """Pass when nothing was counted; otherwise fail showing the diagnosis (the
    differences grouped by variant, field and cause, largest first) and then the
    first examples.

    ``empty`` says why there was nothing to judge: then, with nothing counted,
    the check is inconclusive, never a pass.
    """
    status: Status = "fail" if tally.count else "inconclusive" if empty else "pass"
    message = (
        bad.format(n=tally.count, s="" if tally.count == 1 else "s") if tally.count else empty or ok
    )
    return CheckResult(
        "A",
        type_id,
        check,
        status,
        message,
        (*(diagnosis or [])[:MAX_DIAGNOSIS], *tally.shown()) if tally.count else (),
        metrics,
        thresholds or {},
    )
