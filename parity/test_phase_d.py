"""Phase D gate: KV can go. Its archive holds every key as it is, restores whole
into an empty Redis (and that KV still matches Postgres), and is kept 30 days.

Ids ``<type>-<check>``: ``pytest --phase=D -k messages`` runs the message checks.
Against ``--kv-url``/``--pg-url`` the stores are only read (an archive is taken
of the store unless ``--archive DIR`` names one); the drill restores into a
scratch Redis of the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from phasegate.gates.phase_d import ARCHIVE, KEYSPACE, PhaseD
from phasegate.gates.result import CheckResult
from phasegate.mappings import TYPE_IDS
from phasegate.plugin import conclude

pytestmark = pytest.mark.phase("D")

CASES = [
    *((t, c) for t in (KEYSPACE, *TYPE_IDS) for c in ("archive-complete", "restore-drill")),
    *((t, c) for t in TYPE_IDS for c in ("kv-free-reads", "kv-writes-stopped")),
    (ARCHIVE, "retention"),
]


@pytest.mark.parametrize(("type_id", "check"), CASES, ids=[f"{t}-{c}" for t, c in CASES])
def test_phase_d(
    phase_d: PhaseD, type_id: str, check: str, record_check: Callable[[CheckResult], None]
) -> None:
    """The Phase D check ``check`` holds for ``type_id``."""
    result = phase_d.run(check, type_id)
    record_check(result)
    conclude(result)
