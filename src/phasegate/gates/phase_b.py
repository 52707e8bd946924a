"""Phase B gate: dual-write under real faults loses nothing, duplicates nothing,
reconciles to agreement, and shadow reads stay under budget on a clean run.

One burst per data type (:mod:`phasegate.burst`): the type's app writes through
the reference service in ``dual`` mode, one window per fault kind. Judged:

- ``faults``: every fault kind had an effect (a write journaled or retried),
  so the burst proved something;
- ``acked-durable``: every acknowledged write is in Postgres as acknowledged, or
  in KV as acknowledged with a journal entry saying Postgres missed it
  (checked before reconcile: nothing may depend on it);
- ``retries-idempotent``: a re-sent acknowledged write is acknowledged again and
  stores nothing twice (one row per logical write, one id per KV list, a streak
  counted once per day);
- ``reconciled``: ``reconcile`` replays the journal and repairs; then every
  acknowledged write still holds in Postgres, the full comparison finds no
  difference in any type, every read path of the type answers the same from KV
  and Postgres, and a second run repairs nothing;
- ``shadow-divergence``: on the clean window, shadow reads diverge by no more
  than the budget per endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate import burst
from phasegate.app.reads import ENDPOINTS, KvReads, PgReads, jsonable
from phasegate.burst import Outcome, Rig, Workload
from phasegate.dualwrite.change import key_where, label, select_sql
from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, verdict
from phasegate.mappings import MAPPINGS
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList
from phasegate.queries import load_catalog
from phasegate.reconcile import Reconciled, reconcile
from phasegate.shadow import first_difference
from phasegate.stores import connect_kv

PHASE = "B"
CHECKS = PHASE_CHECKS["B"]
# Data types with writes of their own (achievements come with streak check-ins).
TYPES = ("messages", "board", "streaks", "invites", "connections", "friends", "games", "users")
SETTLE_S = 1.0  # after the clean window, let shadow rechecks finish


@dataclass
class Burst:
    """Everything one type's burst produced, for the checks."""

    type_id: str
    workload: Workload
    outcomes: list[Outcome]
    journal_by_fault: dict[str, int]
    clean_status: dict[str, Any]
    end_status: dict[str, Any]
    journal: list[dict[str, Any]]  # entries: op, failed, labels
    seconds: float
    first: Reconciled | None = None
    second: Reconciled | None = None
    read_diffs: list[str] = field(default_factory=list)  # after reconcile
    reads_compared: int = 0
    read_diffs_before: list[str] = field(default_factory=list)  # before it


def run_burst(
    rig: Rig,
    type_id: str,
    writes: int,
    seed: int,
    *,
    kinds: tuple[str, ...] = burst.FAULTS,
    on_window: Callable[[str, list[Outcome], int], None] | None = None,
) -> Burst:
    """Send the type's burst, one window per fault kind."""
    started = time.monotonic()
    with rig.conn() as pg:
        work = burst.workload(type_id, pg, writes, seed, windows=len(kinds))
    journal_by_fault: dict[str, int] = {}
    clean: dict[str, Any] = {}

    def window_done(kind: str, done: list[Outcome]) -> None:
        journal_by_fault[kind] = len(list(rig.journal.entries())) - sum(journal_by_fault.values())
        if kind == "none":
            time.sleep(SETTLE_S)
            clean.update(rig.status())
        if on_window is not None:
            on_window(kind, done, journal_by_fault[kind])

    outcomes = burst.run(
        rig,
        work.windows,
        reads=burst.shadow_reads(rig, work.reads),
        seed=seed,
        on_window=window_done,
        kinds=kinds,
    )
    end = rig.status()
    entries = [{"op": e.op, "failed": e.failed, "labels": e.labels} for e in rig.journal.entries()]
    return Burst(
        type_id, work, outcomes, journal_by_fault, clean, end, entries, time.monotonic() - started
    )


def reconcile_and_compare(rig: Rig, b: Burst) -> None:
    """Reconcile (twice), then read every request of the workload from both stores."""
    kv = connect_kv(rig.kv_url)
    try:
        with rig.conn() as pg:
            b.first = reconcile(kv, pg, rig.journal)
            b.second = reconcile(kv, pg, rig.journal)
    finally:
        kv.close()
    b.read_diffs, b.reads_compared = asyncio.run(
        read_paths(rig.pg_url, rig.kv_url, b.workload.reads)
    )


async def read_paths(
    pg_url: str, kv_url: str, reads: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], int]:
    """Each read request answered from KV and from Postgres: the differences."""
    catalog = load_catalog()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True, timeout=30)
    kv = aioredis.Redis.from_url(kv_url)
    try:
        from_kv, from_pg = KvReads(kv, catalog), PgReads(pool, catalog)
        diffs = []
        for name, params in reads:
            endpoint = ENDPOINTS[name]
            a = await from_kv.read(endpoint, params)
            b = await from_pg.read(endpoint, params)
            diff = first_difference(a, b)
            if diff is not None:
                said = diff.replace("primary", "KV").replace("secondary", "Postgres")
                diffs.append(f"{name} {params}: {said}")
        return diffs, len(reads)
    finally:
        await kv.aclose()
        await pool.close()


def judge(rig: Rig, b: Burst, *, divergence_budget_percent: float) -> list[CheckResult]:
    """The five Phase B checks of one burst (reconciles as part of it)."""
    before = durability(rig, b, after_reconcile=False)
    idempotent = idempotence(rig, b)
    b.read_diffs_before, _n = asyncio.run(read_paths(rig.pg_url, rig.kv_url, b.workload.reads))
    reconcile_and_compare(rig, b)
    after = durability(rig, b, after_reconcile=True)
    return [
        check_faults(b),
        verdict(
            PHASE,
            b.type_id,
            "acked-durable",
            before,
            ok=f"every one of {_acked(b)} acknowledged writes is in Postgres, or in KV and "
            f"the journal ({len(b.journal)} journaled)",
            bad="{n} acknowledged writes are lost or not as acknowledged",
            metrics=_metrics(b),
        ),
        verdict(
            PHASE,
            b.type_id,
            "retries-idempotent",
            idempotent,
            ok=f"{_resent(b)} re-sent writes and {_retries(b)} retries stored nothing twice",
            bad="{n} writes were not idempotent",
            metrics={
                "resent": _resent(b),
                "retries": _retries(b),
                "resent_unanswered": sum(
                    o.resent is not None and o.resent >= 500 for o in b.outcomes
                ),
            },
        ),
        check_reconciled(b, after),
        check_shadow(b, divergence_budget_percent),
    ]


def _acked(b: Burst) -> int:
    return sum(o.acked for o in b.outcomes)


def _resent(b: Burst) -> int:
    return sum(o.resent is not None for o in b.outcomes)


def _retries(b: Burst) -> int:
    return sum(max(0, o.attempts - 1) for o in b.outcomes)


def _metrics(b: Burst) -> dict[str, Any]:
    failed = {"pg": 0, "kv": 0}
    for entry in b.journal:
        failed[entry["failed"]] += 1
    return {
        "writes": len(b.outcomes),
        "acknowledged": _acked(b),
        "refused": [f"{o.write.op} {o.write.body}: {o.error}" for o in b.outcomes if not o.acked][
            :5
        ],
        "journaled": len(b.journal),
        "journaled_pg_missed": failed["pg"],
        "journaled_kv_missed": failed["kv"],
        "journal_by_fault": b.journal_by_fault,
        "write_failure_percent": b.end_status["writes"]["failure_percent"],
        "write_alert": b.end_status["writes"]["alert"],
        "burst_seconds": round(b.seconds, 1),
    }


def check_faults(b: Burst) -> CheckResult:
    retried: dict[str, int] = {}
    for o in b.outcomes:
        retried[o.fault] = retried.get(o.fault, 0) + (o.attempts > 1)
    idle = [
        f"{kind}: no write was journaled or retried, so the fault proved nothing "
        f"(answers: {sorted(str(o.status) for o in b.outcomes if o.fault == kind)})"
        for kind in burst.FAULTS
        if kind != "none" and not (b.journal_by_fault.get(kind) or retried.get(kind))
    ]
    missing = [f"{kind}: never injected" for kind in burst.FAULTS if kind not in b.journal_by_fault]
    return verdict(
        PHASE,
        b.type_id,
        "faults",
        missing + idle,
        ok=f"all {len(burst.FAULTS) - 1} fault kinds hit writes in flight",
        bad="{n} fault kinds had no effect",
        metrics={"journaled_by_fault": b.journal_by_fault, "retried_by_fault": retried},
    )


# --- durability: acknowledged writes, as acknowledged ------------------------


def _expected(b: Burst) -> dict[str, dict[str, Any] | None]:
    """Label -> the record as last acknowledged (None: deleted)."""
    out: dict[str, dict[str, Any] | None] = {}
    for o in sorted((o for o in b.outcomes if o.acked), key=lambda o: o.done_at):
        for answer in (o.answer, o.resent_answer if o.resent == 201 else {}):
            for name, record in zip(
                answer.get("written", []), answer.get("records", []), strict=True
            ):
                out[name] = record
            for name in answer.get("deleted", []):
                out[name] = None
            for name, record in zip(
                answer.get("unchanged", []), answer.get("unchanged_records", []), strict=True
            ):
                out[name] = record  # a retry: its first attempt left it so
        if o.write.op == "user_delete":
            # A retry whose first attempt took effect answers "gone already" with no
            # steps; acknowledged either way, the user must be gone.
            out[label("users", (o.write.body["handle"],))] = None
    return out


def pg_record(pg: Any, label: str) -> dict[str, Any] | None:
    type_id, _, key = label.partition(":")
    mapping = MAPPINGS[type_id]
    parts = key.split("|") if len(mapping.key_columns) > 1 else [key]
    row = pg.execute(select_sql(mapping, key_where(mapping)), parts).fetchone()
    return None if row is None else {k: jsonable(v) for k, v in mapping.from_row(row).items()}


def _field_diff(want: dict[str, Any], got: dict[str, Any]) -> str | None:
    for name in sorted(want.keys() | got.keys()):
        if want.get(name) != got.get(name):
            return (
                f"field {name}: acknowledged {want.get(name)!r:.60}, stored {got.get(name)!r:.60}"
            )
    return None


def durability(rig: Rig, b: Burst, *, after_reconcile: bool) -> list[str]:
    """Acknowledged writes that are neither in Postgres as acknowledged nor (before
    reconcile) in KV as acknowledged with a journal entry for Postgres."""
    expected = _expected(b)
    journaled_pg = {lab for e in b.journal if e["failed"] == "pg" for lab in e["labels"]}
    kv_side: dict[str, dict[str, Any]] = {}
    problems = []
    with rig.conn() as pg:
        stored = {label: pg_record(pg, label) for label in expected}
        wrong = {lab for lab, want in expected.items() if stored[lab] != want}
        if wrong and not after_reconcile:
            kv_side = _kv_records(rig, {lab.split(":")[0] for lab in wrong}, pg)
    for name in sorted(wrong):
        want, got = expected[name], stored[name]
        if want is None:
            where = "deleted, but still in Postgres"
        elif got is None:
            where = "missing in Postgres"
        else:
            where = f"different in Postgres ({_field_diff(want, got)})"
        if after_reconcile:
            problems.append(f"{name}: acknowledged, {where} after reconcile")
            continue
        in_kv = kv_side.get(name)
        kv_ok = (
            (in_kv is None)
            if want is None
            else (in_kv is not None and _field_diff(want, in_kv) is None)
        )
        if kv_ok and name in journaled_pg:
            continue  # KV has it and the journal will land it in Postgres
        kv_says = (
            "KV has it as acknowledged"
            if kv_ok
            else (
                "KV lacks it" if in_kv is None else f"KV differs ({_field_diff(want or {}, in_kv)})"
            )
        )
        journal_says = "journaled" if name in journaled_pg else "no journal entry for Postgres"
        problems.append(f"{name}: acknowledged (HTTP 201), {where}; {kv_says}; {journal_says}")
    return problems


def _kv_records(rig: Rig, types: Iterable[str], pg: Any) -> dict[str, dict[str, Any]]:
    """KV's records of ``types`` that differ from Postgres (by label)."""
    kv = connect_kv(rig.kv_url)
    try:
        scope = Scope(0, 100.0, datetime.now(UTC), AllowList(), collect=True)
        found = compare(kv, pg, tuple(types), scope)
    finally:
        kv.close()
    out = {}
    for type_id, c in found.types.items():
        mapping = MAPPINGS[type_id]
        for record in c.repairs:
            out[label(type_id, mapping.record_key(record))] = {
                k: jsonable(v) for k, v in record.items()
            }
    return out


# --- idempotence --------------------------------------------------------------

_SIGNATURE = {
    "messages": ("messages", "text"),
    "board": ("board_entries", "content"),
    "games": ("games", "state->>'nonce'"),
}


def idempotence(rig: Rig, b: Burst) -> list[str]:
    problems = [
        f"{o.write.op} {o.write.body}: acknowledged, then the same write sent again got "
        f"HTTP {o.resent} ({o.resent_answer.get('error', '')})"
        for o in b.outcomes
        if o.resent is not None and o.resent != 201 and o.resent < 500
    ]
    with rig.conn() as pg:
        if b.type_id in _SIGNATURE:
            table, column = _SIGNATURE[b.type_id]
            query = (
                f"SELECT {column}, count(*), string_agg(id, ', ' ORDER BY id) FROM {table} "
                f"WHERE {column} LIKE %s GROUP BY 1 HAVING count(*) > 1 ORDER BY 1"
            )
            for signature, count, ids in pg.execute(query, (f"%{b.workload.nonce}%",)):
                problems.append(
                    f"{b.type_id}: one write stored {count} times in Postgres "
                    f"({column} {signature!r}; ids {ids})"
                )
        if b.type_id == "streaks":
            problems += _streak_counts(pg, b)
    problems += _kv_list_duplicates(rig, b)
    return problems


def _streak_counts(pg: Any, b: Burst) -> list[str]:
    """Each handle's streak is the run of acknowledged consecutive days: a day
    counted twice (a non-idempotent check-in) shows as a longer streak."""
    days: dict[str, set[date]] = {}
    for o in b.outcomes:
        if o.acked:
            days.setdefault(o.write.body["handle"], set()).add(
                date.fromisoformat(o.write.body["day"])
            )
    out = []
    for handle, acked in sorted(days.items()):
        last = max(acked)
        run = 0
        while last - timedelta(days=run) in acked:
            run += 1
        row = pg.execute(
            "SELECT current_streak FROM streaks WHERE handle = %s", (handle,)
        ).fetchone()
        if row is None or row[0] != run:
            got = None if row is None else row[0]
            out.append(
                f"streaks:{handle}: current_streak {got}, expected {run} (one per acknowledged day)"
            )
    return out


def _kv_list_duplicates(rig: Rig, b: Burst) -> list[str]:
    """An id listed twice in an index list (inbox, outbox, board category or
    author) is a duplicate the app would show twice."""
    lists = set()
    for o in b.outcomes:
        for record in o.answer.get("records", []):
            if b.type_id == "messages":
                lists |= {f"inbox:{record['to_user']}", f"outbox:{record['from_user']}"}
            elif b.type_id == "board":
                lists |= {f"board:category:{record['category']}", f"board:user:{record['author']}"}
    kv = connect_kv(rig.kv_url)
    try:
        with kv.pipeline(transaction=False) as pipe:
            names = sorted(lists)
            for name in names:
                pipe.lrange(name, 0, -1)
            contents = cast(list[list[bytes]], pipe.execute())
    finally:
        kv.close()
    return [
        f"{b.type_id}: {name} lists {element.decode()} {count} times"
        for name, ids in zip(names, contents, strict=True)
        for element, count in sorted(Counter(ids).items())
        if count > 1
    ]


# --- reconcile and shadow -----------------------------------------------------


def check_reconciled(b: Burst, after: list[str]) -> CheckResult:
    first, second = b.first, b.second
    assert first is not None
    assert second is not None
    problems = list(after)
    problems += [f"journal entry still failing: {f}" for f in first.journal_failed]
    problems += [f"could not repair {n}" for names in first.repair_failed.values() for n in names]
    problems += [
        f"still different after repair: {n}"
        for names in first.still_different.values()
        for n in names
    ]
    problems += [
        f"{t}: {n} records still differ between KV and Postgres after reconcile"
        for t, n in second.differences_before.items()
        if n
    ]
    if second.touched:
        problems.append(f"a second reconcile was not a no-op: {second.verdict()}")
    problems += [f"read path differs: {d}" for d in b.read_diffs]
    return verdict(
        PHASE,
        b.type_id,
        "reconciled",
        problems,
        ok=f"after reconcile ({first.verdict()}; {first.seconds:.1f} s) the stores agree on "
        f"every type and on {b.reads_compared} read requests; a second run repaired nothing",
        bad="{n} gaps left after reconcile",
        metrics={
            "reconcile_seconds": round(first.seconds, 2),
            "journal_replayed": len(first.journal_applied),
            "repaired": sum(map(len, first.repaired.values())),
            "written_to_kv": sum(map(len, first.written_to_kv.values())),
            "pg_only": sum(map(len, first.pg_only.values())),
            "differences_before": sum(first.differences_before.values()),
            "differences_after": sum(second.differences_before.values()),
            "reads_compared": b.reads_compared,
            "divergence_before_percent": percent(len(b.read_diffs_before), b.reads_compared),
            "divergence_after_percent": percent(len(b.read_diffs), b.reads_compared),
            "diverged_before_examples": b.read_diffs_before[:3],
        },
    )


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / max(whole, 1), 2)


def divergence(status: dict[str, Any]) -> dict[str, float]:
    shadow = (status.get("shadow") or {}).get("kv", {})
    return {name: v["divergence_percent"] for name, v in shadow.items()}


def check_shadow(b: Burst, budget: float) -> CheckResult:
    endpoints = sorted({name for name, _ in b.workload.reads})
    shadow = (b.clean_status.get("shadow") or {}).get("kv", {})
    problems = []
    for name in endpoints:
        seen = shadow.get(name)
        if not seen or not seen["compared"]:
            problems.append(f"{name}: no shadow read was compared on the clean run")
        elif seen["divergence_percent"] > budget:
            problems.append(
                f"{name}: {seen['divergence_percent']:.1f}% of {seen['compared']} shadow reads "
                f"diverged (budget {budget:g}%): " + "; ".join(seen["mismatches"][:2])
            )
    return verdict(
        PHASE,
        b.type_id,
        "shadow-divergence",
        problems,
        ok="clean run: "
        + ", ".join(
            f"{n} {shadow[n]['divergence_percent']:g}% of {shadow[n]['compared']}"
            for n in endpoints
            if n in shadow
        )
        + f" (budget {budget:g}%)",
        bad="{n} endpoints over the divergence budget on a clean run",
        metrics={
            "clean": divergence(b.clean_status),
            "during_faults": divergence(b.end_status),
            "mismatches": [m for v in shadow.values() for m in v["mismatches"]][:5],
        },
        thresholds={"divergence_budget_percent": budget},
    )


def gate(
    folder: Path,
    type_id: str,
    *,
    seed: int,
    writes: int,
    divergence_budget_percent: float,
    write_failure_budget_percent: float,
    defects: tuple[str, ...] = (),
) -> tuple[list[CheckResult], Burst]:
    """A rig of its own, the type's burst, and its checks."""
    with burst.open_rig(
        folder,
        seed=seed,
        defects=defects,
        divergence_budget_percent=divergence_budget_percent,
        write_failure_budget_percent=write_failure_budget_percent,
    ) as rig:
        b = run_burst(rig, type_id, writes, seed)
        return judge(rig, b, divergence_budget_percent=divergence_budget_percent), b
