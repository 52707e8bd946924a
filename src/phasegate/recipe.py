"""The migration recipe, written once: seed, schema apply, backfill, fk add,
(a second backfill as re-run evidence), ANALYZE.

The fixtures, the demo, the Phase B rig and the sandbox loaders all make their
stores through :func:`migrate`; what differs is only how the steps are shown,
which a :class:`Steps` decides (plain calls by default; the CLI's shows
progress bars and tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import redis

from phasegate import schema
from phasegate.backfill import BackfillResult, backfill
from phasegate.fk import FkReport, add_foreign_keys
from phasegate.seed.generator import generate

HOUR_MS = 3_600_000


class Steps:
    """How each step runs; subclass to show progress (the default runs them quietly)."""

    def seed(self, kv: redis.Redis, scale: str, seed: int, anchor_ms: int) -> None:
        generate(scale, seed, anchor_ms).write(kv)

    def backfill(
        self, kv: redis.Redis, pg: psycopg.Connection[tuple[object, ...]], *, rerun: bool
    ) -> BackfillResult:
        return backfill(kv, pg, restart=rerun)

    def apply_schema(self, pg: psycopg.Connection[tuple[object, ...]]) -> None:
        schema.apply(pg)

    def fk_add(self, pg: psycopg.Connection[tuple[object, ...]]) -> FkReport:
        return add_foreign_keys(pg, create_missing=True)

    def analyze(self, pg: psycopg.Connection[tuple[object, ...]]) -> None:
        pg.execute("ANALYZE")


@dataclass(frozen=True)
class Migrated:
    """What the recipe did: the backfills (the second only with ``rerun``) and fk add."""

    first: BackfillResult
    second: BackfillResult | None
    fk: FkReport


def migrate(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    scale: str,
    seed: int,
    anchor_ms: int,
    *,
    rerun: bool = False,
    analyze: bool = False,
    steps: Steps | None = None,
) -> Migrated:
    """Seed ``kv`` at ``scale``, apply the schema to ``pg``, backfill, add the foreign
    keys (stub users for system accounts), then optionally backfill again (the
    re-run evidence) and ANALYZE (after any bulk load, before plans)."""
    steps = steps or Steps()
    steps.seed(kv, scale, seed, anchor_ms)
    steps.apply_schema(pg)
    first = steps.backfill(kv, pg, rerun=False)
    fk = steps.fk_add(pg)
    second = steps.backfill(kv, pg, rerun=True) if rerun else None
    if analyze:
        steps.analyze(pg)
    return Migrated(first, second, fk)


def this_hour_ms(now_ms: int) -> int:
    """The anchor of sandbox data: the start of the current hour, so runs reproduce.

    >>> this_hour_ms(1_767_801_612_345)
    1767801600000
    """
    return now_ms // HOUR_MS * HOUR_MS
