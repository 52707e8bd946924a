"""Static query-shape checks: will each statement be served by the index it needs?

Each statement is parsed as Postgres by sqlglot, then judged by one rule per
module under ``rules/`` against a :class:`SchemaModel` (project DDL, a DDL
file, or a live catalog)::

    >>> schema = SchemaModel.project()
    >>> stmt = Statement(
    ...     "SELECT id FROM messages WHERE (from_user = $1 AND to_user = $2) "
    ...     "OR (from_user = $2 AND to_user = $1)", "app.js:3", "app.js:3")
    >>> sorted({f.rule for f in check_statement(stmt, schema)})
    ['or-pairs']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import pglast.parser
import sqlglot.errors
from sqlglot import exp

from phasegate.queries import Query
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement
from phasegate.shapes.rules import (
    any_array,
    fk_index,
    idempotent_write,
    index_use,
    pairs,
    read_path_shape,
    rerunnable_ddl,
    unknown_names,
)
from phasegate.shapes.sqltext import parse_keys, parse_many

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # we report what it cannot read

__all__ = [
    "NOTICES",
    "SchemaModel",
    "ShapeFinding",
    "Statement",
    "check_all",
    "check_schema",
    "check_statement",
    "from_catalog",
]

Rule = Callable[[Statement, exp.Expr, SchemaModel], Iterator[ShapeFinding]]
RULES: tuple[Rule, ...] = (
    unknown_names.check,
    index_use.check,
    pairs.check,
    any_array.check,
    idempotent_write.check,
    read_path_shape.check,
)
# Rules for statements that define the schema (a migration script).
DDL_RULES: tuple[Rule, ...] = (rerunnable_ddl.check,)
_DDL = (exp.Create, exp.Drop, exp.Alter)
# Statements that administer rather than define, read or write.
_NOT_DML = (
    exp.Transaction,
    exp.Set,
    exp.Grant,
    exp.Comment,
    exp.Analyze,
)
_ANTI_PATTERNS = {"or-pairs", "in-pairs", "any-array"}
# Listed, but not a defect: the statement is valid and simply was not checked.
NOT_UNDERSTOOD = "not-understood"
NOTICES = frozenset({NOT_UNDERSTOOD})
# Administrative statements sqlglot keeps as opaque commands; anything else opaque
# is a statement it could not read.
_ADMIN_COMMANDS = {"VACUUM", "DO", "REVOKE", "REINDEX", "CLUSTER", "REFRESH", "LISTEN", "NOTIFY"}


def from_catalog(catalog: Iterable[Query]) -> list[Statement]:
    """The catalogued queries as statements, each expecting its header's index."""
    return [
        Statement(q.sql, f"{q.path}:{q.first_line}", q.name, q.type_id, q.index, parse_keys(q.keys))
        for q in catalog
    ]


def check_statement(statement: Statement, schema: SchemaModel) -> list[ShapeFinding]:
    """Every finding of every rule for one statement (parse errors included).

    Postgres's own grammar (libpg_query, through pglast) decides whether it is
    valid SQL; sqlglot then reads it for the rules. Valid SQL that sqlglot
    cannot read is listed as ``not-understood``: found, not checked, not failed.
    """
    try:
        pglast.parser.parse_sql(statement.sql)
    except pglast.parser.ParseError as e:
        return [ShapeFinding("parse", statement, f"Postgres rejects it: {e}")]
    try:
        trees = parse_many(statement.sql)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as e:
        return [
            ShapeFinding(
                NOT_UNDERSTOOD,
                statement,
                f"valid Postgres that the checks cannot read, so not checked: {_reason(e)}",
            )
        ]
    findings: list[ShapeFinding] = []
    for tree in trees:
        if isinstance(tree, _DDL):
            for rule in DDL_RULES:
                findings.extend(rule(statement, tree, schema))
            continue
        if isinstance(tree, _NOT_DML) or (
            isinstance(tree, exp.Command) and str(tree.this).upper() in _ADMIN_COMMANDS
        ):
            continue
        if not isinstance(tree, exp.Query | exp.DML):
            findings.append(
                ShapeFinding(
                    "parse", statement, f"not a statement Postgres would run: {tree.sql()[:60]}"
                )
            )
            continue
        for rule in RULES:
            findings.extend(rule(statement, tree, schema))
    if any(f.rule in _ANTI_PATTERNS for f in findings):
        # the anti-pattern says why no index serves it, and how to rewrite it
        findings = [f for f in findings if f.rule != index_use.NO_INDEX]
    return findings


def _reason(error: Exception) -> str:
    details = getattr(error, "errors", None)
    if details:
        first = details[0]
        return f"{first['description']} (line {first['line']}, column {first['col']})"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def check_all(statements: Iterable[Statement], schema: SchemaModel) -> list[ShapeFinding]:
    return [f for s in statements for f in check_statement(s, schema)]


def check_schema(schema: SchemaModel, table: str | None = None) -> list[ShapeFinding]:
    """Findings of the schema itself (foreign keys without an index), of one table or all."""
    return list(fk_index.check_schema(schema, table))
