"""phasegate: the gatekeeper for moving a Redis-backed app to Postgres, phase by phase.

The stable surface, importable from here (loaded on first use, so ``import
phasegate`` stays cheap for the pytest plugin and the CLI)::

    from phasegate import resolve, connect_kv, connect_pg, MAPPINGS, PhaseA

    settings = resolve()
    kv, pg = connect_kv(settings.kv_url), connect_pg(settings.pg_url)
    result = PhaseA(kv, pg, settings.seed, settings.sample_rate).run("counts", "messages")

Deeper modules are implementation and may move.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "phasegate.settings",
    "resolve": "phasegate.settings",
    "connect_kv": "phasegate.stores",
    "connect_pg": "phasegate.stores",
    "MAPPINGS": "phasegate.mappings",
    "TYPE_IDS": "phasegate.mappings",
    "Mapping": "phasegate.mappings",
    "classify": "phasegate.mappings",
    "take_inventory": "phasegate.inventory",
    "backfill": "phasegate.backfill",
    "compare": "phasegate.parity.compare",
    "Scope": "phasegate.parity.compare",
    "migrate": "phasegate.recipe",
    "CheckResult": "phasegate.gates.result",
    "PhaseA": "phasegate.gates.phase_a",
    "PhasegateError": "phasegate.errors",
}
__all__ = [
    "MAPPINGS",
    "TYPE_IDS",
    "CheckResult",
    "Mapping",
    "PhaseA",
    "PhasegateError",
    "Scope",
    "Settings",
    "__version__",
    "backfill",
    "classify",
    "compare",
    "connect_kv",
    "connect_pg",
    "migrate",
    "resolve",
    "take_inventory",
]

if TYPE_CHECKING:
    from phasegate.backfill import backfill
    from phasegate.errors import PhasegateError
    from phasegate.gates.phase_a import PhaseA
    from phasegate.gates.result import CheckResult
    from phasegate.inventory import take_inventory
    from phasegate.mappings import MAPPINGS, TYPE_IDS, Mapping, classify
    from phasegate.parity.compare import Scope, compare
    from phasegate.recipe import migrate
    from phasegate.settings import Settings, resolve
    from phasegate.stores import connect_kv, connect_pg


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'phasegate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
