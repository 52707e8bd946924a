"""Rules ``or-pairs`` and ``in-pairs``: a two-way pair lookup written so no index serves it.

``(a = $1 AND b = $2) OR (a = $2 AND b = $1)``, ``a IN ($1, $2) AND b IN ($1,
$2)`` and ``(a, b) IN (($1, $2), ($2, $1))`` all ask for the rows between two
values in either direction. Neither can
use the pair's expression index, and the IN form also matches ``a = b = $1``.
The rewrite is ``LEAST(a, b) = LEAST($1, $2) AND GREATEST(a, b) = GREATEST($1, $2)``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from phasegate.shapes.model import SchemaModel, conjuncts
from phasegate.shapes.result import ShapeFinding, Statement
from phasegate.shapes.sqltext import key_sql


def _rewrite(a: str, b: str, x: str, y: str) -> str:
    return f"LEAST({a}, {b}) = LEAST({x}, {y}) AND GREATEST({a}, {b}) = GREATEST({x}, {y})"


def _pair_index(schema: SchemaModel, a: str, b: str) -> str:
    for index in schema.indexes:
        if index.keys and index.keys[0].sql == f"LEAST({a}, {b})":
            return str(index)
    return ""


def _branches(node: exp.Expr) -> list[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Or):
        return _branches(node.this) + _branches(node.expression)
    return [node]


def _equalities(branch: exp.Expr) -> dict[str, str] | None:
    """{column: value} when a branch is exactly ``col = value AND col = value``."""
    found = {}
    for part in conjuncts(branch):
        if not isinstance(part, exp.EQ):
            return None
        left, right = part.this, part.expression
        if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
            left, right = right, left
        if not isinstance(left, exp.Column):
            return None
        found[key_sql(left)] = key_sql(right)
    return found if len(found) == 2 else None


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    for where in tree.find_all(exp.Where):
        for node in where.find_all(exp.Or):
            if isinstance(node.parent, exp.Or):
                continue  # judged as part of the outermost OR
            pairs = [_equalities(b) for b in _branches(node)]
            if len(pairs) != 2 or pairs[0] is None or pairs[1] is None:
                continue
            (a, x), (b, y) = pairs[0].items()
            if pairs[1] == {a: y, b: x} and x != y:
                yield ShapeFinding(
                    "or-pairs",
                    statement,
                    f"an OR of the swapped pairs ({a}, {b}) = ({x}, {y}) / ({y}, {x}) "
                    "cannot use a pair index: Postgres ORs two bitmap scans and sorts",
                    _pair_index(schema, a, b),
                    _rewrite(a, b, x, y),
                )
        yield from _in_pairs(statement, where, schema)


def _in_pairs(
    statement: Statement, where: exp.Where, schema: SchemaModel
) -> Iterator[ShapeFinding]:
    lists: dict[tuple[str, ...], list[str]] = {}
    for part in conjuncts(where.this):
        if isinstance(part, exp.In) and isinstance(part.this, exp.Column):
            values = tuple(sorted(key_sql(v) for v in part.expressions))
            if len(values) == 2:
                lists.setdefault(values, []).append(key_sql(part.this))
    for part in conjuncts(where.this):
        swapped = _tuple_pairs(part)
        if swapped is not None:
            a, b, x, y = swapped
            yield ShapeFinding(
                "in-pairs",
                statement,
                f"({a}, {b}) IN (({x}, {y}), ({y}, {x})) cannot use a pair index: Postgres "
                "reads the rows of each column separately",
                _pair_index(schema, a, b),
                _rewrite(a, b, x, y),
            )
    for (x, y), columns in lists.items():
        if len(columns) == 2:
            a, b = columns
            yield ShapeFinding(
                "in-pairs",
                statement,
                f"{a} IN ({x}, {y}) AND {b} IN ({x}, {y}) cannot use a pair index and also "
                f"matches rows where {a} = {b}",
                _pair_index(schema, a, b),
                _rewrite(a, b, x, y),
            )


def _tuple_pairs(part: exp.Expr) -> tuple[str, str, str, str] | None:
    """(a, b, x, y) when ``part`` is ``(a, b) IN ((x, y), (y, x))``."""
    if not isinstance(part, exp.In) or not isinstance(part.this, exp.Tuple):
        return None
    columns = part.this.expressions
    rows = [e.expressions for e in part.expressions if isinstance(e, exp.Tuple)]
    if len(columns) != 2 or not all(isinstance(c, exp.Column) for c in columns):
        return None
    if len(rows) != 2 or any(len(row) != 2 for row in rows):
        return None
    (x, y), (y2, x2) = ([key_sql(v) for v in row] for row in rows)
    if (x, y) != (x2, y2) or x == y:
        return None
    return key_sql(columns[0]), key_sql(columns[1]), x, y
