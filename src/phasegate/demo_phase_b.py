"""The Phase B part of ``phasegate demo``: a dual-write burst with every fault,
the journal it left, reconcile, and divergence before and after."""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from pathlib import Path

from rich.console import Console

from phasegate import burst
from phasegate.burst import Outcome
from phasegate.console import add_window, burst_table, print_reconciled
from phasegate.gates import phase_b, phase_b_stores
from phasegate.gates.result import CheckResult
from phasegate.settings import Settings

DEMO_TYPE = "messages"


def demo_phase_b(settings: Settings, console: Console) -> list[CheckResult]:
    console.rule(
        f"Phase B: dual-write burst of {settings.burst_writes} {DEMO_TYPE} writes with faults"
    )
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="phasegate-burst-")))
        with console.status("starting a durable Postgres and Valkey of our own, loading them"):
            rig = stack.enter_context(
                burst.open_rig(
                    folder,
                    seed=settings.seed,
                    divergence_budget_percent=settings.divergence_budget_percent,
                    write_failure_budget_percent=settings.write_failure_budget_percent,
                )
            )
        table = burst_table()

        def window(kind: str, done: list[Outcome], journaled: int) -> None:
            acked, retried = sum(o.acked for o in done), sum(o.attempts > 1 for o in done)
            add_window(table, kind, (len(done), acked, retried, journaled))

        with console.status("sending writes through the reference service, a fault per window"):
            b = phase_b.run_burst(
                rig, DEMO_TYPE, settings.burst_writes, settings.seed, on_window=window
            )
        console.print(table)
        _show_journal(b, console)
        with console.status("reconcile: replay the journal, compare, repair, re-verify"):
            results = phase_b.judge(
                rig, b, divergence_budget_percent=settings.divergence_budget_percent
            )
        assert b.first is not None
        print_reconciled(b.first, console)
        before = phase_b.percent(len(b.read_diffs_before), b.reads_compared)
        after = phase_b.percent(len(b.read_diffs), b.reads_compared)
        console.print(
            f"divergence: {before:g}% of {b.reads_compared} read requests answered differently "
            f"by KV and Postgres before reconcile, {after:g}% after"
        )
        console.print(
            "  [dim]expected: before reconcile the stores were apart by the writes each "
            "fault made one of them miss; the gate requires 0% after[/]"
        )
        for line in b.read_diffs_before[:2]:
            console.print(f"  [dim]before: {line}[/]")
    return results


def _show_journal(b: phase_b_stores.Burst, console: Console) -> None:
    sides = Counter(e["failed"] for e in b.journal)
    alert = b.end_status["writes"]["alert"]
    console.print(
        f"journal: {len(b.journal)} writes recorded as missed by one store "
        f"({sides['pg']} by Postgres, {sides['kv']} by KV); "
        f"{b.end_status['journal_pending']} still pending at the end of the burst"
    )
    for entry in b.journal[:3]:
        console.print(
            f"  [dim]{entry['op']}: {entry['failed']} missed {', '.join(entry['labels'][:2])}[/]"
        )
    if alert:
        console.print(f"[yellow]write-failure alert: {alert}[/]")
        console.print(
            "  [dim]expected: all but one window inject a fault, so most writes meet a dead, "
            "stalled or paused store and the alert must fire; the gate judges that every "
            "acknowledged write is durable[/]"
        )
