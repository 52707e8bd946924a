"""Rule ``idempotent-write``: every INSERT into a migrated table is an upsert.

During dual-write a write may be retried (a lost reply) or replayed from the
journal, so the spec requires ``INSERT ... ON CONFLICT ... DO UPDATE``: a plain
INSERT fails on the retry's duplicate key, and ``ON CONFLICT DO NOTHING`` keeps
the older row, silently dropping the retried write's newer values.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from phasegate.mappings import MAPPINGS
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement

RULE = "idempotent-write"
KEYS = {m.table: m.key_columns for m in MAPPINGS.values()}


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    if not isinstance(tree, exp.Insert):
        return
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    table = target.name.lower() if isinstance(target, exp.Table) else ""
    if table not in KEYS:
        return
    keys = ", ".join(KEYS[table])
    fix = f"INSERT ... ON CONFLICT ({keys}) DO UPDATE SET <column> = EXCLUDED.<column>, ..."
    conflict = tree.args.get("conflict")
    if conflict is None:
        yield ShapeFinding(
            RULE,
            statement,
            f"INSERT into {table} without ON CONFLICT: a retried or replayed dual write "
            "fails on the duplicate key (dual-write needs idempotent writes)",
            fix=fix,
        )
    elif "NOTHING" in str(conflict.args.get("action", "")).upper():
        yield ShapeFinding(
            RULE,
            statement,
            f"INSERT into {table} ... ON CONFLICT DO NOTHING keeps the older row: a retried "
            "write's newer values are dropped (the spec requires DO UPDATE)",
            fix=fix,
        )
