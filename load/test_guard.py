"""Rollback guard (phase C, during and after cutover): with ``--guard-service URL``
the gate watches that running service for ``--guard-window`` seconds and decides
per data type: hold (pass), roll back (fail, with the trigger and evidence) or
inconclusive (too few requests). It only reports; ``phasegate guard --act`` acts.
Ids ``<type>-rollback-guard``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from phasegate import guard
from phasegate.endpoints import ENDPOINT_TYPES
from phasegate.gates.result import CheckResult
from phasegate.plugin import conclude
from phasegate.settings import Settings

pytestmark = pytest.mark.phase("C")

TYPES = sorted(set(ENDPOINT_TYPES.values()))


@pytest.fixture(scope="session")
def guard_watch(phasegate_settings: Settings) -> guard.Watch | None:
    s = phasegate_settings
    if not s.guard_service:
        return None
    service = guard.Service(s.guard_service)
    return guard.watch(service, guard.Triggers.of(s), duration_s=s.guard_window)


@pytest.mark.parametrize("type_id", TYPES, ids=[f"{t}-rollback-guard" for t in TYPES])
def test_rollback_guard(
    type_id: str,
    guard_watch: guard.Watch | None,
    phasegate_settings: Settings,
    record_check: Callable[[CheckResult], None],
) -> None:
    """The type's reads may stay on Postgres: no trigger of the spec fired."""
    if guard_watch is None:
        pytest.skip("no --guard-service: the guard watches a running service")
    result = guard.as_check(guard_watch.decisions[type_id], guard.Triggers.of(phasegate_settings))
    record_check(result)
    conclude(result)
