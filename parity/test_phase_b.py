"""Phase B gate: dual-write under real faults, per data type.

One test per type (ids are the type: ``pytest --phase=B -k messages``). Each
starts its own durable embedded Postgres and Valkey (process faults stop and
kill them), loads them as Phase A left them, sends the type's app writes
through the reference service in ``dual`` mode with shadow reads on, one window
per fault kind, and records five checks: ``faults``, ``acked-durable``,
``retries-idempotent``, ``reconciled``, ``shadow-divergence``
(see :mod:`phasegate.gates.phase_b`). Given ``--kv-url``/``--pg-url`` are never
touched: the burst writes and kills, so it runs on stores of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phasegate.gates import phase_b
from phasegate.gates.result import CheckResult
from phasegate.settings import Settings

pytestmark = [pytest.mark.phase("B"), pytest.mark.own_servers]


@pytest.mark.parametrize("type_id", phase_b.TYPES)
def test_phase_b(
    type_id: str,
    phasegate_settings: Settings,
    tmp_path: Path,
    record_check: Callable[[CheckResult], None],
) -> None:
    """A burst of ``type_id`` writes with every fault kind loses nothing, duplicates
    nothing, reconciles to agreement, and diverges under budget on the clean run."""
    s = phasegate_settings
    results, _burst = phase_b.gate(
        tmp_path,
        type_id,
        seed=s.seed,
        writes=s.burst_writes,
        divergence_budget_percent=s.divergence_budget_percent,
        write_failure_budget_percent=s.write_failure_budget_percent,
    )
    for result in results:
        record_check(result)
    failed = [r for r in results if not r.passed]
    assert not failed, "\n".join(r.explain() for r in failed)
