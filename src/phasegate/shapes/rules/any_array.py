"""Rule ``any-array``: ``x = ANY(array_column)`` where a GIN index exists.

A GIN index on an array column serves ``@>`` (contains) and ``&&`` (overlaps),
never ``= ANY(...)``, which reads every row. The rewrite is
``array_column @> ARRAY[x]``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from phasegate.shapes.analysis import owner_of, sources_of
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement
from phasegate.shapes.sqltext import key_sql


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    for source in sources_of(tree):
        for condition in source.conditions:
            if not isinstance(condition, exp.EQ):
                continue
            for value, other in (
                (condition.this, condition.expression),
                (condition.expression, condition.this),
            ):
                inner = other.this if isinstance(other, exp.Any) else None
                while isinstance(inner, exp.Paren):
                    inner = inner.this
                if not isinstance(inner, exp.Column):
                    continue
                alias = owner_of(inner, source, schema)
                table = source.tables.get(alias or "")
                column = key_sql(inner)
                gin = [
                    i
                    for i in schema.indexes_of(table or "")
                    if not i.is_btree and i.keys and i.keys[0].sql == column
                ]
                if gin:
                    value_sql = key_sql(value)
                    yield ShapeFinding(
                        "any-array",
                        statement,
                        f"{value_sql} = ANY({column}) cannot use the {gin[0].method} index "
                        f"{gin[0].name}: Postgres reads every row of {table}",
                        str(gin[0]),
                        f"{column} @> ARRAY[{value_sql}]",
                    )
