"""Phase C gate, plans: EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of every catalogued
query at realistic volume, custom and generic plan.

The expected index is used with every key it relies on in its Index Cond, and no
Seq Scan reads a table above ``--seqscan-rows``. Ids ``<type>-<query>-<mode>``.
Execution time and buffers go to the report. The database is ``--pg-url`` (only
read) or the sandbox loaded at the 6mo scale.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from phasegate.gates.phase_c_queries import plan_result
from phasegate.gates.result import CheckResult
from phasegate.plans import MODES, Mode
from phasegate.queries import load_catalog
from phasegate.settings import Settings
from phasegate.shapes import SchemaModel

pytestmark = pytest.mark.phase("C")

CATALOG = load_catalog()
CASES = [(q, mode) for q in CATALOG.values() for mode in MODES]


@pytest.mark.parametrize(
    ("name", "mode"),
    [(q.name, m) for q, m in CASES],
    ids=[f"{q.type_id}-{q.name}-{m}" for q, m in CASES],
)
def test_query_plan(
    name: str,
    mode: Mode,
    plan_db: psycopg.Connection[tuple[object, ...]],
    phasegate_settings: Settings,
    record_check: Callable[[CheckResult], None],
) -> None:
    """The plan uses the expected index with its keys in Index Cond; no large Seq Scan."""
    schema = SchemaModel.from_database(plan_db)
    s = phasegate_settings
    result = plan_result(
        plan_db, CATALOG[name], schema, mode, s.seqscan_rows, timeout_s=s.store_timeout
    )
    record_check(result)
    assert result.passed, result.explain()
