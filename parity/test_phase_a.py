"""Phase A gate: the backfill copied every record, unchanged, with its references.

One test per check per data type, ids ``<type>-<check>``: ``pytest --phase=A -k
messages`` runs exactly the message checks. Against ``--kv-url``/``--pg-url``
the stores are only read; without them a sandbox migration is made and gated.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from phasegate.gates.phase_a import CHECKS, PhaseA
from phasegate.mappings import TYPE_IDS
from phasegate.plugin import conclude

pytestmark = pytest.mark.phase("A")

CASES = [("keyspace", "coverage")] + [(t, c) for t in TYPE_IDS for c in CHECKS]


@pytest.mark.parametrize(("type_id", "check"), CASES, ids=[f"{t}-{c}" for t, c in CASES])
def test_phase_a(
    phase_a: PhaseA, type_id: str, check: str, record_check: Callable[..., None]
) -> None:
    """The Phase A check ``check`` holds for ``type_id``."""
    result = phase_a.run(check, type_id)
    record_check(result, phase_a.share_pass())
    conclude(result)
