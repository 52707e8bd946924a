"""Rule ``index`` / ``order-by``: each filtered or top-N read is served by an index.

An index serves a table access when its leading keys are compared with ``=`` or
``IN`` (or the first free key with a range), a partial index's predicate is in
the query, and, when a LIMIT applies, the ORDER BY continues the keys after the
equality prefix in one direction. A GIN index serves ``@>`` and ``&&`` only.
Keys are compared structurally after normalising: ``LEAST(to_user, from_user)``
is not ``LEAST(from_user, to_user)``.

With an expected index (the catalog's ``-- index:`` header) that index is
judged; otherwise any index of the table will do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp

from phasegate.shapes.analysis import Access, accesses
from phasegate.shapes.model import Index, SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement
from phasegate.shapes.sqltext import parse_one

RULE = "index"
NO_INDEX = "no-index"


@dataclass(frozen=True)
class Verdict:
    where: list[str]  # why the index cannot serve the conditions
    order: list[str]  # why it cannot serve the ORDER BY ... LIMIT

    @property
    def serves(self) -> bool:
        return not self.where and not self.order


def judge(index: Index, access: Access) -> Verdict:
    """Whether ``index`` serves ``access``, and if not, why."""
    where: list[str] = []
    missing = [p for p in index.predicate if not implied(p, access)]
    if missing:
        where.append(f"it is partial (WHERE {' AND '.join(index.predicate)}); the query lacks it")
    if not index.is_btree:
        column = index.keys[0].sql
        if column not in access.contains:
            where.append(
                f"it is a {index.method} index on {column}; the query has no "
                f"`{column} @> ...` or `{column} && ...` condition"
            )
        return Verdict(where, [])
    keys = [k.sql for k in index.keys]
    prefix = 0
    while prefix < len(keys) and keys[prefix] in access.equals:
        prefix += 1
    misses = list(_near_misses(index, access))
    where.extend(misses)
    if access.filtered and prefix == 0 and keys[0] not in access.ranges and not misses:
        conditions = " AND ".join(access.conditions)
        where.append(f"it leads with {keys[0]}, which the query does not compare: {conditions}")
    return Verdict(where, _order_problems(index, access, prefix))


def implied(predicate: str, access: Access) -> bool:
    """Whether the query's WHERE implies a partial index's predicate conjunct:
    written the same, ``x IS NOT NULL`` under any comparison of ``x`` (a NULL
    never compares true), or a boolean predicate written as ``= TRUE/FALSE``.

    >>> from phasegate.shapes.analysis import Access
    >>> implied("status IS NOT NULL", Access("t", equals=["status"]))
    True
    >>> implied("NOT read", Access("t", conditions=["read = FALSE"]))
    True
    >>> implied("NOT read", Access("t", conditions=["to_user = $1"]))
    False
    """
    if predicate in access.conditions:
        return True
    not_null = re.fullmatch(r"(.+) IS NOT NULL", predicate)
    if not_null:
        column = not_null[1]
        return column in (*access.equals, *access.ranges, *access.contains)
    if predicate.startswith("NOT "):
        column = predicate[4:]
        return any(c in access.conditions for c in (f"{column} = FALSE", f"{column} IS FALSE"))
    return any(c in access.conditions for c in (f"{predicate} = TRUE", f"{predicate} IS TRUE"))


def _near_misses(index: Index, access: Access) -> Iterator[str]:
    """Keys the query compares in another form: swapped arguments, other casing of a call."""
    for key in index.keys:
        if key.sql in access.equals:
            continue
        try:
            wanted = parse_one(f"SELECT {key.sql}").expressions[0]
        except Exception:
            continue
        for compared in access.equals:
            got = parse_one(f"SELECT {compared}").expressions[0]
            if _same_call_other_arguments(wanted, got):
                yield (
                    f"the query compares {compared}, not the index key {key.sql}: "
                    "argument order matters, so the index cannot use it"
                )


def _same_call_other_arguments(wanted: exp.Expr, got: exp.Expr) -> bool:
    if type(wanted) is not type(got) or wanted == got or not isinstance(wanted, exp.Func):
        return False
    a = sorted(c.sql() for c in wanted.iter_expressions())
    b = sorted(c.sql() for c in got.iter_expressions())
    return a == b


def _order_problems(index: Index, access: Access, prefix: int) -> list[str]:
    if not access.order or not access.limit:
        return []
    wanted = [(k, d) for k, d in access.order if k not in access.equals]
    if not wanted:
        return []
    offered = index.keys[prefix : prefix + len(wanted)]
    same = [k.sql for k in offered] == [k for k, _ in wanted]
    directions = {k.desc == d for k, (_, d) in zip(offered, wanted, strict=False)}
    if same and len(directions) == 1:
        return []
    order = ", ".join(k + (" DESC" if d else "") for k, d in wanted)
    after = ", ".join(str(k) for k in index.keys[prefix:]) or "nothing"
    return [
        f"ORDER BY {order} ... LIMIT is not its key order after the equality prefix "
        f"(it continues with {after}), so Postgres sorts every matching row"
    ]


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    name = statement.expected_index
    expected = schema.find(name, statement.expected_keys) if name else None
    if name and expected is None:
        keys = ", ".join(statement.expected_keys) or "its keys"
        yield ShapeFinding(
            RULE,
            statement,
            f"the index {name} it relies on is not in the {schema.origin} "
            f"(no index has the keys ({keys}) under any name)",
            name,
            "create it (see src/phasegate/sql/schema.sql) or fix the query's `-- index:` header",
        )
        return
    for access in accesses(tree, schema):
        if access.table not in schema.tables:
            continue  # the unknown-name rule reports it
        if expected is not None and expected.table == access.table:
            yield from _expected(statement, access, expected)
        elif expected is None and (access.filtered or (access.order and access.limit)):
            yield from _any(statement, access, schema.indexes_of(access.table))


def _expected(statement: Statement, access: Access, index: Index) -> Iterator[ShapeFinding]:
    verdict = judge(index, access)
    wanted = list(statement.expected_keys)
    leading = [k.sql for k in index.keys[: len(wanted)]]
    if wanted and leading != wanted:
        lacking = [k for k in wanted if k not in leading]
        yield ShapeFinding(
            RULE,
            statement,
            f"the query relies on keys ({', '.join(wanted)}) but {index.name} leads with "
            f"({', '.join(leading)})"
            + (f": it has no key {', '.join(lacking)}" if lacking else ": other order"),
            str(index),
            f"recreate {index.name} with the keys ({', '.join(wanted)}, ...)",
        )
    compared = set(access.equals) | set(access.ranges) | set(access.contains)
    near_misses = " ".join(verdict.where)
    for key in wanted:
        if key not in compared and f"index key {key}:" not in near_misses:
            yield ShapeFinding(
                RULE, statement, f"the query never compares {key}, a key it relies on", str(index)
            )
    for reason in verdict.where:
        yield ShapeFinding(RULE, statement, f"{index.name} cannot serve it: {reason}", str(index))
    for reason in [] if verdict.where else verdict.order:  # a sort follows a wrong lookup
        yield ShapeFinding("order-by", statement, reason, str(index))


def _any(statement: Statement, access: Access, indexes: list[Index]) -> Iterator[ShapeFinding]:
    verdicts = {i.name: judge(i, access) for i in indexes}
    if any(v.serves for v in verdicts.values()):
        return
    for_where = [i for i in indexes if not verdicts[i.name].where]
    if for_where:
        reasons = "; ".join(f"{i.name}: {verdicts[i.name].order[0]}" for i in for_where)
        yield ShapeFinding(
            "order-by",
            statement,
            f"no index of {access.table} serves the ORDER BY: {reasons}",
            ", ".join(str(i) for i in for_where),
        )
        return
    shown = sorted(indexes, key=lambda i: "partial" in verdicts[i.name].where[0])[:3]
    reasons = "; ".join(f"{i.name}: {verdicts[i.name].where[0]}" for i in shown)
    yield ShapeFinding(
        NO_INDEX,
        statement,
        f"no index of {access.table} serves {access.describe()}"
        + (f" ({reasons})" if reasons else " (the table has no indexes)"),
    )
