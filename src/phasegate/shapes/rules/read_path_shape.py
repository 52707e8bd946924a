"""Rule ``read-path-shape``: an app query on a catalogued read path orders and
limits as the catalog does.

An app statement matches a catalogued read path when it reads the same table
with the same equality keys (``LEAST/GREATEST`` pairs included). It must then
sort on the same keys in the same directions, and take the same number of
rows when both say a number: the thread read in ascending order with
``LIMIT 100`` returns the oldest hundred messages where the read path returns
the newest fifty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from sqlglot import exp

from phasegate.queries import load_catalog
from phasegate.shapes.analysis import accesses
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement
from phasegate.shapes.sqltext import parse_one

RULE = "read-path-shape"


@dataclass(frozen=True)
class Shape:
    """What a read path is: its table, equality keys, order and row count."""

    name: str
    table: str
    equals: frozenset[str]
    order: tuple[tuple[str, bool], ...]
    limit: int | None  # a literal LIMIT (or the catalog's `-- limit:`), None when not known

    def describe(self) -> str:
        order = ", ".join(k + (" DESC" if d else "") for k, d in self.order) or "no order"
        return f"ORDER BY {order}" + (f" LIMIT {self.limit}" if self.limit else "")


def shape_of(tree: exp.Expr, name: str, limit: int | None = None) -> Shape | None:
    """The shape of a one-table SELECT with equalities (None for anything else)."""
    if not isinstance(tree, exp.Select) or tree.args.get("group") is not None:
        return None
    if any(p.find(exp.AggFunc) is not None for p in tree.expressions):
        return None  # a count or a sum: one row, whatever the read path's order
    found = [a for a in accesses(tree) if a.equals]
    if len(found) != 1:
        return None
    access = found[0]
    literal = tree.args.get("limit")
    value = literal.expression if isinstance(literal, exp.Limit) else None
    if isinstance(value, exp.Literal) and value.is_int:
        limit = int(value.this)
    order = tuple(k for k in access.order or () if k[0] not in access.equals)
    return Shape(name, access.table, frozenset(access.equals), order, limit)


@cache
def catalog_shapes() -> tuple[Shape, ...]:
    shapes = []
    for query in load_catalog().values():
        shape = shape_of(parse_one(query.sql), query.name, query.limit)
        if shape is not None and shape.order:
            shapes.append(shape)
    return tuple(shapes)


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    if statement.form == "catalog":
        return
    mine = shape_of(tree, statement.name)
    if mine is None:
        return
    for path in catalog_shapes():
        if (path.table, path.equals) != (mine.table, mine.equals):
            continue
        problems = []
        if mine.order != path.order:
            order = ", ".join(k + (" DESC" if d else " ASC") for k, d in mine.order)
            problems.append(f"it orders by {order}" if order else "it has no ORDER BY")
        if path.limit is not None and mine.limit is not None and mine.limit != path.limit:
            problems.append(f"it takes {mine.limit} rows")
        if problems:
            yield ShapeFinding(
                RULE,
                statement,
                f"it reads the {path.name} read path of {path.table} but "
                f"{' and '.join(problems)}; the read path is {path.describe()}",
                fix=f"{path.describe()} (as the catalogued {path.name} query)",
            )
