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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from phasegate import burst, burst_workloads
from phasegate.app.reads import KvReads, PgReads
from phasegate.burst import Outcome, Rig
from phasegate.endpoints import ENDPOINTS
from phasegate.gates.phase_b_stores import Burst, durability, idempotence
from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, verdict
from phasegate.queries import load_catalog
from phasegate.reconcile import reconcile
from phasegate.shadow import first_difference
from phasegate.stores import connect_kv

PHASE = "B"
CHECKS = PHASE_CHECKS["B"]
# Data types with writes of their own (achievements come with streak check-ins).
TYPES = ("messages", "board", "streaks", "invites", "connections", "friends", "games", "users")
SETTLE_S = 1.0  # after the clean window, let shadow rechecks finish


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
        work = burst_workloads.workload(type_id, pg, writes, seed, windows=len(kinds))
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
        reads=burst_workloads.shadow_reads(rig, work.reads),
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
