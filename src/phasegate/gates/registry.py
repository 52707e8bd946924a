"""Every gate check by phase, in the order reports show them.

The phase modules take their check names from here, so a check is named once;
the plugin and the report order and group results by this table alone.

>>> CHECK_ORDER.index("counts") < CHECK_ORDER.index("plan-custom")
True
"""

from __future__ import annotations

PHASE_CHECKS: dict[str, tuple[str, ...]] = {
    "A": ("coverage", "counts", "sample", "recency", "full", "refint", "rerun"),
    "B": ("faults", "acked-durable", "retries-idempotent", "reconciled", "shadow-divergence"),
    "C": (
        "shape",
        "fk-index",
        "plan-custom",
        "plan-generic",
        "load-p95",
        "load-errors",
        "load-baseline",
        "throughput",
        "rollback-guard",
    ),
    "D": ("archive-complete", "restore-drill", "kv-free-reads", "kv-writes-stopped", "retention"),
}
CHECK_ORDER: tuple[str, ...] = tuple(c for checks in PHASE_CHECKS.values() for c in checks)


def order_of(check: str) -> int:
    """A check's place in reports (unknown checks last)."""
    return CHECK_ORDER.index(check) if check in CHECK_ORDER else len(CHECK_ORDER)
