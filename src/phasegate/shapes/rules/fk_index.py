"""Rule ``fk-index``: the referencing columns of every foreign key lead an index.

The spec adds every handle column's foreign key with ``ON DELETE CASCADE``:
deleting a user then deletes its rows in every referencing table, and without
an index whose leading columns are the referencing ones each cascade (and each
check of a deleted or renamed key) reads the whole table. This rule reads the
schema, not statements.
"""

from __future__ import annotations

from collections.abc import Iterator

from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement

RULE = "fk-index"


def check_schema(schema: SchemaModel, table: str | None = None) -> Iterator[ShapeFinding]:
    """One finding per foreign key (of ``table``, or of every table) whose columns no
    btree index leads with."""
    for fk in schema.foreign_keys:
        if table is not None and fk.table != table:
            continue
        width = len(fk.columns)
        served = any(
            index.is_btree
            and not index.predicate
            and {k.sql for k in index.keys[:width]} == set(fk.columns)
            for index in schema.indexes_of(fk.table)
        )
        if served:
            continue
        columns = ", ".join(fk.columns)
        name = f"{fk.table}_{'_'.join(fk.columns)}_idx"
        yield ShapeFinding(
            RULE,
            Statement(fk.origin, f"{schema.origin}: {fk.table}", f"{fk.table} ({columns})"),
            f"the foreign key {fk} has no index on ({columns}): each ON DELETE CASCADE "
            f"from {fk.references} reads all of {fk.table}",
            fix=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {fk.table} ({columns})",
        )
