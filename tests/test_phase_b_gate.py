"""The Phase B gate fails on each broken dual-write rule, naming type and key, and
passes when the rules hold.

Every test runs real bursts: durable embedded stores behind fault proxies, the
reference service in dual mode. Broken rules: a writer that skips KV when
Postgres fails (the write is lost), a writer that mints a new id on a retry
(a duplicate), a reconcile that misses journal entries (a gap left open), and
a clean run whose shadow reads diverge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
import redis

from phasegate import burst, burst_workloads
from phasegate.gates import phase_b, phase_b_stores
from phasegate.gates.result import CheckResult
from phasegate.journal import Journal

pytestmark = pytest.mark.own_servers
BUDGET = 5.0


def _by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check: r for r in results}


def _gate(
    folder: Path, type_id: str, writes: int, *defects: str
) -> tuple[dict[str, CheckResult], phase_b_stores.Burst]:
    results, burst_ = phase_b.gate(
        folder,
        type_id,
        seed=7,
        writes=writes,
        divergence_budget_percent=BUDGET,
        write_failure_budget_percent=1.0,
        defects=defects,
    )
    return _by_check(results), burst_


def test_a_clean_dual_write_burst_passes_every_check(tmp_path: Path) -> None:
    """Every fault kind, 120 messages writes: all five checks pass."""
    checks, b = _gate(tmp_path, "messages", 120)
    assert all(r.passed for r in checks.values()), "\n".join(r.explain() for r in checks.values())
    durable = checks["acked-durable"].metrics
    closed = checks["reconciled"].metrics
    assert closed["divergence_after_percent"] == 0.0
    assert isinstance(closed["divergence_before_percent"], float)
    assert durable["journaled"] > 0
    assert durable["write_alert"]  # faults made more than 1% of writes miss a store
    assert set(b.journal_by_fault) == set(burst.FAULTS)


def test_a_writer_that_skips_kv_when_postgres_fails_loses_writes(tmp_path: Path) -> None:
    """Acknowledged, but in neither store and not journaled: acked-durable fails
    naming each lost message."""
    checks, _b = _gate(tmp_path, "messages", 60, "kv-skipped-when-pg-fails")
    check = checks["acked-durable"]
    assert check.status == "fail"
    assert "acknowledged writes are lost" in check.message
    assert "messages:msg_pb" in check.details[0]
    assert "missing in Postgres; KV lacks it; no journal entry for Postgres" in check.details[0]


def test_a_writer_that_mints_a_new_id_on_retry_stores_duplicates(tmp_path: Path) -> None:
    """A re-sent message becomes a second row: retries-idempotent fails naming the
    write and both ids."""
    checks, _b = _gate(tmp_path, "messages", 60, "new-id-on-retry")
    check = checks["retries-idempotent"]
    assert check.status == "fail"
    assert any("one write stored 2 times in Postgres" in d for d in check.details)


def test_a_writer_that_replays_out_of_order_reverts_newer_writes(tmp_path: Path) -> None:
    """Without catch-up and fence, an invite created while KV was away is replayed
    into KV after its redemption; reconcile then copies the older record to
    Postgres: the gate names each redeemed invite that went back to available."""
    checks, _b = _gate(tmp_path, "invites", 120, "replay-out-of-order")
    check = checks["reconciled"]
    assert check.status == "fail"
    assert any(d.startswith("invites:VIBE-") and "after reconcile" in d for d in check.details), (
        check.explain()
    )


@pytest.mark.parametrize("missing_entries", [True, False], ids=["entries-missed", "whole-journal"])
def test_a_reconcile_that_misses_journal_entries_leaves_the_stores_apart(
    tmp_path: Path, missing_entries: bool
) -> None:
    """Writes made while KV was cut off are journaled; a reconcile reading a journal
    without them leaves KV behind, and its KV-to-Postgres repair then puts the old
    records back (marked-read messages unread again): the gate names each record
    and field. With the whole journal the same burst reconciles."""
    with burst.open_rig(tmp_path, seed=7) as rig:
        b = phase_b.run_burst(rig, "messages", 24, 7, kinds=("none", "kv-drop"))
        pending = [e for e in rig.journal.pending() if e.failed == "kv"]
        assert pending, "the KV cut journaled nothing"
        if missing_entries:
            partial = Journal(tmp_path / "partial.jsonl")
            for entry in rig.journal.pending():
                if entry.failed != "kv":
                    partial.record(entry.change, failed=entry.failed, error=entry.error)
            rig.journal = partial
        check = _by_check(phase_b.judge(rig, b, divergence_budget_percent=BUDGET))["reconciled"]
    if not missing_entries:
        assert check.passed, check.explain()
        return
    assert check.status == "fail"
    assert check.details[0].startswith("messages:msg_pb")
    assert any(
        "different in Postgres (field read: acknowledged true, stored false) after reconcile" in d
        for d in check.details
    )


def test_a_clean_run_that_diverges_fails_the_shadow_check(tmp_path: Path) -> None:
    """KV records changed behind the writer's back make shadow reads diverge on the
    clean run: shadow-divergence fails naming the endpoint and the field."""
    with burst.open_rig(tmp_path, seed=7) as rig:
        kv = redis.Redis.from_url(rig.kv_url)
        with rig.conn() as pg:
            work = burst_workloads.workload("messages", pg, 24, 7, windows=1)
        for endpoint, params in work.reads:
            if endpoint == "inbox":
                for msg_id in cast(list[bytes], kv.lrange(f"inbox:{params['handle']}", 0, -1)):
                    raw = kv.get(b"msg:" + msg_id)
                    if raw:
                        value = json.loads(raw)
                        value["text"] = "changed in KV only"
                        kv.set(b"msg:" + msg_id, json.dumps(value))
        kv.close()
        b = phase_b.run_burst(rig, "messages", 24, 7, kinds=("none",))
        check = phase_b.check_shadow(b, BUDGET)
    assert check.status == "fail"
    assert "inbox" in check.message or any("inbox" in d for d in check.details)
    assert any("field text" in d for d in check.details)
