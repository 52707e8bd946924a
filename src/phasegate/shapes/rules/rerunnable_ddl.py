"""Rule ``rerunnable-ddl``: migration DDL that runs twice, and does not lock a big table.

A migration script is re-run (a failed deploy, a second environment), so each
statement must succeed when its work is already done: ``CREATE TABLE`` and
``CREATE INDEX`` with ``IF NOT EXISTS``, ``ADD COLUMN IF NOT EXISTS``, ``DROP
... IF EXISTS``, and ``ADD CONSTRAINT`` (which has no IF NOT EXISTS) after a
``DROP CONSTRAINT IF EXISTS`` of the same name in the same statement. An index
on a migrated table is built ``CONCURRENTLY``: a plain ``CREATE INDEX`` blocks
every write to the table while it reads all of its rows.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from phasegate.mappings import MAPPINGS
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement

RULE = "rerunnable-ddl"
MIGRATED = frozenset(m.table for m in MAPPINGS.values())


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    if isinstance(tree, exp.Create):
        yield from _create(statement, tree)
    elif isinstance(tree, exp.Alter):
        yield from _alter(statement, tree)
    elif isinstance(tree, exp.Drop) and not tree.args.get("exists"):
        kind = str(tree.args.get("kind") or "").upper()
        yield ShapeFinding(
            RULE,
            statement,
            f"DROP {kind} fails on a re-run once it is gone",
            fix=f"DROP {kind} IF EXISTS ...",
        )


def _create(statement: Statement, tree: exp.Create) -> Iterator[ShapeFinding]:
    kind = str(tree.args.get("kind") or "").upper()
    if kind not in ("TABLE", "INDEX"):
        return
    if not tree.args.get("exists") and not tree.args.get("replace"):
        yield ShapeFinding(
            RULE,
            statement,
            f"CREATE {kind} fails on a re-run once it exists",
            fix=f"CREATE {kind} IF NOT EXISTS ...",
        )
    if kind == "INDEX" and not tree.args.get("concurrently"):
        index = tree.this
        table = index.args.get("table") if isinstance(index, exp.Index) else None
        name = table.name.lower() if isinstance(table, exp.Table) else ""
        if name in MIGRATED:
            yield ShapeFinding(
                RULE,
                statement,
                f"CREATE INDEX on {name}, a migrated table, blocks every write to it while "
                "it reads all its rows",
                fix="CREATE INDEX CONCURRENTLY IF NOT EXISTS ... (outside a transaction block)",
            )


def _alter(statement: Statement, tree: exp.Alter) -> Iterator[ShapeFinding]:
    actions = tree.args.get("actions") or []
    dropped = {
        a.this.name.lower()
        for a in actions
        if isinstance(a, exp.Drop)
        and a.args.get("exists")
        and str(a.args.get("kind") or "").upper() == "CONSTRAINT"
        and isinstance(a.this, exp.Table)
    } | {
        t.name.lower()
        for a in actions
        if isinstance(a, exp.Drop) and a.args.get("exists")
        for t in a.args.get("tables") or []
    }
    table = tree.this.name.lower() if isinstance(tree.this, exp.Table) else "?"
    for action in actions:
        if isinstance(action, exp.AddConstraint):
            for constraint in action.expressions:
                name = constraint.name.lower() if isinstance(constraint, exp.Constraint) else ""
                if name and name in dropped:
                    continue
                yield ShapeFinding(
                    RULE,
                    statement,
                    f"ALTER TABLE {table} ADD CONSTRAINT {name or '(unnamed)'} fails on a re-run "
                    "(Postgres has no ADD CONSTRAINT IF NOT EXISTS)",
                    fix=f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name or '<name>'}, "
                    f"ADD CONSTRAINT {name or '<name>'} ... (or guard it in a DO block "
                    "that checks pg_constraint)",
                )
        elif isinstance(action, exp.ColumnDef) and not action.args.get("exists"):
            yield ShapeFinding(
                RULE,
                statement,
                f"ALTER TABLE {table} ADD COLUMN {action.name} fails on a re-run",
                fix=f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {action.name} ...",
            )
