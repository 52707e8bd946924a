"""Phase C query checks as gate results: one per catalogued query and check.

The gate tests under query_shapes/ and ``phasegate demo`` both report through
these, so a query's verdict reads the same everywhere: type ``<type>:<query>``,
checks ``shape``, ``plan-custom`` and ``plan-generic``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, verdict
from phasegate.plans import MODES, Mode, check_plan
from phasegate.queries import Query
from phasegate.shapes import SchemaModel, Statement, check_schema, check_statement, from_catalog
from phasegate.stores import DEFAULT_TIMEOUT_S, Watchdog

CHECKS = PHASE_CHECKS["C"][:4]  # shape, fk-index, plan-custom, plan-generic


def fk_index_result(table: str, type_id: str, schema: SchemaModel) -> CheckResult:
    """Every foreign key of ``table`` has an index on its referencing columns."""
    keys = [fk for fk in schema.foreign_keys if fk.table == table]
    findings = check_schema(schema, table)
    if not keys:
        return CheckResult(
            "C", f"{type_id}:schema", "fk-index", "skip", f"{table} has no foreign key"
        )
    return verdict(
        "C",
        f"{type_id}:schema",
        "fk-index",
        findings,
        ok=f"{len(keys)} foreign key(s) of {table}, each served by an index ({schema.origin})",
        bad="{n} foreign key(s) of " + table + " without an index",
        metrics={"foreign_keys": [str(k) for k in keys]},
    )


def shape_result(statement: Statement, schema: SchemaModel) -> CheckResult:
    """The static verdict on one catalogued statement."""
    findings = check_statement(statement, schema)
    name = statement.expected_index or ""
    found = schema.find(name, statement.expected_keys) if name else None
    served = found.name if found is not None else name
    also = f" (the catalog's {name})" if served != name else ""
    return verdict(
        "C",
        f"{statement.type_id}:{statement.name}",
        "shape",
        findings,
        ok=f"served by {served}{also} ({schema.origin})",
        bad="{n} shape finding(s) against the " + schema.origin,
        metrics={"origin": statement.origin, "index": served},
    )


def plan_result(
    conn: psycopg.Connection[tuple[Any, ...]],
    query: Query,
    schema: SchemaModel,
    mode: Mode,
    seqscan_rows: int,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> CheckResult:
    """The plan verdict on one catalogued query in one plan mode (a Postgres that
    does not answer within ``timeout_s`` fails it, naming the query)."""
    with Watchdog(conn, timeout_s, f"planning {query.name} ({mode})"):
        check = check_plan(conn, query, schema, mode, seqscan_rows)
    ms = f"{check.run.execution_ms:.3f} ms" if check.run.execution_ms is not None else "not run"
    keys = ", ".join(check.relied_keys) or "its key order"
    return verdict(
        "C",
        f"{query.type_id}:{query.name}",
        f"plan-{mode}",
        check.problems,
        ok=f"{check.index} with Index Cond on {keys}; {ms}",
        bad="{n} plan problem(s)",
        metrics=check.metrics(),
        thresholds={"seqscan_rows": seqscan_rows},
    )


def all_results(
    conn: psycopg.Connection[tuple[Any, ...]],
    catalog: list[Query],
    schema: SchemaModel,
    seqscan_rows: int,
) -> list[CheckResult]:
    """Every shape and plan check of the catalog, on one loaded database."""
    results = [shape_result(s, schema) for s in from_catalog(catalog)]
    results += [plan_result(conn, q, schema, m, seqscan_rows) for q in catalog for m in MODES]
    return results
