"""Plan checks: ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` of each catalogued query.

On a database loaded at realistic volume, each query runs with parameters its
``-- sample:`` header picks from the data, once as a custom plan and once as a
generic plan (``plan_cache_mode``), inside a transaction that is rolled back.
The JSON plan tree is read, never the text form:

- the expected index is used, and its ``Index Cond`` holds every key expression
  the query relies on (both LEAST and GREATEST for the thread query);
- no Seq Scan reads a table of more than ``seqscan_rows`` rows.

A small table rightly gets a Seq Scan; then the query is planned again with
``enable_seqscan = off`` and that plan is judged (``forced`` in the result),
which still shows an Index Cond missing a key.
Statements that write are only EXPLAINed (not run) on a read-only connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
import sqlglot.errors
from psycopg import sql
from sqlglot import exp

from phasegate.errors import UsageError
from phasegate.queries import Query
from phasegate.shapes.analysis import accesses
from phasegate.shapes.model import Index, SchemaModel
from phasegate.shapes.sqltext import key_sql, parse_keys, parse_one

PLAN_SCALE = "6mo"  # the fixture scale plans are judged at in the sandbox
Mode = Literal["custom", "generic"]
MODES: tuple[Mode, ...] = ("custom", "generic")
_INDEX_NODES = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
_COMPARISONS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.ArrayContainsAll, exp.ArrayOverlaps)

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class PlanRun:
    """One EXPLAIN of one query in one mode."""

    mode: Mode
    params: tuple[Any, ...]
    plan: dict[str, Any]  # the "Plan" node of EXPLAIN's JSON
    analyzed: bool
    forced: bool  # planned with enable_seqscan = off
    execution_ms: float | None
    planning_ms: float | None

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.plan]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.get("Plans", [])))

    def scans(self) -> list[str]:
        """One line per scan node, for messages: kind, relation, index, condition."""
        lines = []
        for n in self.nodes():
            kind = n["Node Type"]
            if "Scan" not in kind:
                continue
            on = n.get("Index Name") or n.get("Relation Name", "")
            cond = n.get("Index Cond") or n.get("Recheck Cond") or n.get("Filter") or ""
            lines.append(f"{kind} on {on}" + (f" ({cond})" if cond else ""))
        return lines

    @property
    def shared_hit(self) -> int:
        return int(self.plan.get("Shared Hit Blocks", 0))

    @property
    def shared_read(self) -> int:
        return int(self.plan.get("Shared Read Blocks", 0))


@dataclass(frozen=True)
class PlanCheck:
    """The verdict on one query's plan in one mode."""

    query: Query
    run: PlanRun
    index: str
    relied_keys: tuple[str, ...]
    problems: list[str] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def metrics(self) -> dict[str, Any]:
        return {
            "mode": self.run.mode,
            "params": [str(p) for p in self.run.params],
            "analyzed": self.run.analyzed,
            "forced_index_scan": self.run.forced,
            "execution_ms": self.run.execution_ms,
            "planning_ms": self.run.planning_ms,
            "shared_hit_blocks": self.run.shared_hit,
            "shared_read_blocks": self.run.shared_read,
            "scans": self.run.scans(),
            "table_rows": self.table_rows,
        }


def sample_params(conn: Conn, query: Query) -> tuple[Any, ...]:
    """Realistic parameters from the loaded data (the query's ``-- sample:`` header)."""
    if not query.sample:
        raise UsageError(
            f"{query.path}: no `-- sample:` header, so the plan check has no parameters",
            hint="add `-- sample: SELECT ...` returning one row of parameters",
        )
    row = conn.execute(query.sample.encode()).fetchone()
    if row is None:
        raise UsageError(
            f"{query.path}: its sample query found no rows",
            hint="plan checks need a loaded database (seed and backfill it first)",
        )
    if len(row) != len(query.params):
        raise UsageError(
            f"{query.path}: the sample gives {len(row)} values for {len(query.params)} parameters"
        )
    return tuple(row)


def explain(
    conn: Conn, query: Query, params: tuple[Any, ...], mode: Mode, *, force: bool = False
) -> PlanRun:
    """EXPLAIN one query in a rolled-back transaction; ANALYZE unless it would write
    on a read-only connection."""
    writes = not query.sql.lstrip().upper().startswith(("SELECT", "WITH"))
    analyze = not (writes and conn.read_only)
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    name = sql.Identifier(f"phasegate_plan_{query.name}")
    types = sql.SQL(", ").join(sql.SQL(p.pg_type) for p in query.params)
    values = sql.SQL(", ").join(sql.Literal(v) for v in params)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL plan_cache_mode = {}").format(f"force_{mode}_plan"))
            if force:
                conn.execute("SET LOCAL enable_seqscan = off")
            conn.execute(sql.SQL("PREPARE {} ({}) AS ").format(name, types) + sql.SQL(query.sql))
            statement = sql.SQL("EXPLAIN ({}) EXECUTE {} ({})").format(
                sql.SQL(options), name, values
            )
            row = conn.execute(statement).fetchone()
    finally:  # whether a rollback removes a prepared statement differs by version
        left = conn.execute(
            "SELECT 1 FROM pg_prepared_statements WHERE name = %s",
            (f"phasegate_plan_{query.name}",),
        ).fetchone()
        if left:
            conn.execute(sql.SQL("DEALLOCATE {}").format(name))
    assert row is not None
    document = row[0] if isinstance(row[0], list) else json.loads(row[0])
    top = document[0]
    return PlanRun(
        mode,
        params,
        top["Plan"],
        analyze,
        force,
        top.get("Execution Time"),
        top.get("Planning Time"),
    )


def relied_keys(query: Query, index: Index) -> tuple[str, ...]:
    """The keys Index Cond must hold: the header's, else those the query's conditions reach."""
    if query.keys:
        return parse_keys(query.keys)
    for access in accesses(parse_one(query.sql)):
        if access.table != index.table:
            continue
        if not index.is_btree:
            return tuple(k.sql for k in index.keys[:1] if k.sql in access.contains)
        keys: list[str] = []
        for key in index.keys:
            if key.sql in access.equals:
                keys.append(key.sql)
                continue
            if key.sql in access.ranges:
                keys.append(key.sql)
            break
        return tuple(keys)
    return ()


def cond_keys(cond: str) -> set[str]:
    """Both sides of every comparison in an Index Cond, normalised."""
    try:
        tree = parse_one(f"SELECT 1 WHERE {cond}")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return set()
    found = set()
    for node in tree.find_all(*_COMPARISONS):
        found.add(key_sql(node.this))
        found.add(key_sql(node.expression))
    return found


def table_rows(conn: Conn, table: str) -> int:
    row = conn.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", (table,)
    ).fetchone()
    if row is None or row[0] is None:
        return 0
    if row[0] >= 0:
        return int(row[0])
    counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return int(counted.fetchone()[0])  # type: ignore[index]


def check_plan(
    conn: Conn, query: Query, schema: SchemaModel, mode: Mode, seqscan_rows: int
) -> PlanCheck:
    """Plan ``query`` in ``mode`` and judge the plan against its expected index."""
    index = schema.find(query.index, parse_keys(query.keys))
    if index is None:
        raise UsageError(f"{query.path}: index {query.index} is not in the {schema.origin}")
    params = sample_params(conn, query)
    keys = relied_keys(query, index)
    run = explain(conn, query, params, mode)
    rows: dict[str, int] = {}

    def size(table: str) -> int:  # each table counted once per check
        if table not in rows:
            rows[table] = table_rows(conn, table)
        return rows[table]

    if size(index.table) <= seqscan_rows and not _uses(run, index):
        run = explain(conn, query, params, mode, force=True)
    problems = []
    users = [n for n in run.nodes() if n.get("Index Name") == index.name]
    if not users:
        problems.append(
            f"{mode} plan does not use {index.name}; it scans: " + "; ".join(run.scans())
        )
    elif keys:
        conds = [(n.get("Index Cond", ""), cond_keys(n.get("Index Cond", ""))) for n in users]
        cond, found = max(conds, key=lambda c: len(set(keys) & c[1]))
        missing = [k for k in keys if k not in found]
        if missing:
            problems.append(
                f"{mode} plan uses {index.name} but its Index Cond "
                f"`{cond}` lacks {', '.join(missing)}, so the scan "
                "reads more of the index than the query needs"
            )
    for node in run.nodes():
        if node["Node Type"] == "Seq Scan":
            table = node["Relation Name"]
            if size(table) > seqscan_rows:
                problems.append(
                    f"{mode} plan has a Seq Scan on {table} "
                    f"({rows[table]:,} rows > {seqscan_rows:,})"
                )
    return PlanCheck(query, run, index.name, keys, problems, rows)


def _uses(run: PlanRun, index: Index) -> bool:
    return any(
        n.get("Index Name") == index.name and n["Node Type"] in _INDEX_NODES for n in run.nodes()
    )
