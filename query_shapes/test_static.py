"""Phase C gate, static: every catalogued query parses as Postgres and is served by
the index it relies on (sqlglot; no database needed).

Ids ``<type>-<query>``: ``pytest query_shapes -k messages`` checks the message
queries. Indexes come from ``--schema FILE``, else ``--pg-url``'s catalog, else
phasegate's schema.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from phasegate.gates.phase_c_queries import fk_index_result, shape_result
from phasegate.gates.result import CheckResult
from phasegate.mappings import MAPPINGS
from phasegate.plugin import conclude
from phasegate.queries import load_catalog
from phasegate.shapes import SchemaModel, Statement, from_catalog

pytestmark = pytest.mark.phase("C")

STATEMENTS = from_catalog(load_catalog().values())


@pytest.mark.parametrize("statement", STATEMENTS, ids=[f"{s.type_id}-{s.name}" for s in STATEMENTS])
def test_query_shape(
    statement: Statement, shape_schema: SchemaModel, record_check: Callable[[CheckResult], None]
) -> None:
    """The query parses and its WHERE and ORDER BY match the leading keys of its index."""
    result = shape_result(statement, shape_schema)
    record_check(result)
    assert result.passed, result.explain()


@pytest.mark.parametrize("type_id", list(MAPPINGS), ids=[f"{t}-fk-index" for t in MAPPINGS])
def test_foreign_keys_have_indexes(
    type_id: str, shape_schema: SchemaModel, record_check: Callable[[CheckResult], None]
) -> None:
    """Each foreign key of the type's table leads an index (ON DELETE CASCADE scans otherwise)."""
    result = fk_index_result(MAPPINGS[type_id].table, type_id, shape_schema)
    record_check(result)
    conclude(result)
