"""How one statement reaches each table: the facts the index rules judge.

Every SELECT scope (CTEs and subqueries included, via sqlglot's
``traverse_scope``) and the WHERE of an UPDATE or DELETE give one
:class:`Access` per table: the key expressions compared with ``=``/``IN``,
ranges, array containment, the ORDER BY, and whether a LIMIT applies.

>>> from phasegate.shapes.sqltext import parse_one
>>> [a.describe() for a in accesses(parse_one(
...     "SELECT * FROM messages m WHERE m.to_user = $1 AND NOT read "
...     "ORDER BY created_at DESC LIMIT 5"
... ))]
['messages: = to_user; ORDER BY created_at DESC; LIMIT']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from phasegate.shapes.model import SchemaModel, conjuncts
from phasegate.shapes.sqltext import columns_of, key_sql

_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)
_CONTAINS = (exp.ArrayContainsAll, exp.ArrayOverlaps)


@dataclass
class Access:
    """One table as one scope of a statement reads it."""

    table: str
    equals: list[str] = field(default_factory=list)  # key expressions, normalised
    ranges: list[str] = field(default_factory=list)
    contains: list[str] = field(default_factory=list)  # array columns under @> or &&
    conditions: list[str] = field(default_factory=list)  # every conjunct on this table
    order: list[tuple[str, bool]] | None = None  # (key, desc); None: no ORDER BY on it
    limit: bool = False

    @property
    def filtered(self) -> bool:
        return bool(self.conditions)

    def describe(self) -> str:
        parts = [f"= {', '.join(self.equals)}"] if self.equals else []
        if self.ranges:
            parts.append(f"range {', '.join(self.ranges)}")
        if self.contains:
            parts.append(f"@> {', '.join(self.contains)}")
        if self.order:
            parts.append("ORDER BY " + ", ".join(k + (" DESC" if d else "") for k, d in self.order))
        if self.limit:
            parts.append("LIMIT")
        if not (self.equals or self.ranges or self.contains) and self.conditions:
            parts.insert(0, "WHERE " + " AND ".join(self.conditions))
        return f"{self.table}: " + "; ".join(parts)


@dataclass(frozen=True)
class Source:
    """A scope's tables by alias, and the WHERE/ON conditions and ORDER BY it holds."""

    tables: dict[str, str]  # alias -> table name
    conditions: list[exp.Expr]
    order: exp.Order | None
    limit: bool
    columns: list[exp.Column]
    opaque: bool  # reads a derived table or CTE too, so bare names may be its columns
    aggregated: bool = False  # GROUP BY or aggregates: rows are sorted after grouping
    aliases: frozenset[str] = frozenset()  # output names of the select list


def sources_of(tree: exp.Expr) -> Iterator[Source]:
    """One :class:`Source` per scope that reads tables."""
    if isinstance(tree, exp.Update | exp.Delete):
        yield _dml_source(tree)
    # A SELECT has its own scopes; an UPDATE or DELETE only those of its subqueries.
    tops = (
        [tree]
        if isinstance(tree, exp.Query)
        else [q for q in tree.find_all(exp.Query) if q.find_ancestor(exp.Query) is None]
    )
    scopes: list[Scope] = [scope for top in tops for scope in traverse_scope(top)]
    for scope in scopes:
        tables = {
            alias: source.name.lower()
            for alias, source in scope.sources.items()
            if isinstance(source, exp.Table)
        }
        if not tables:
            continue
        select = scope.expression
        where = select.args.get("where")
        conditions = conjuncts(where.this) if where is not None else []
        for join in select.args.get("joins") or []:
            if join.args.get("on") is not None:
                conditions += conjuncts(join.args["on"])
        projection = select.args.get("expressions") or []
        yield Source(
            tables,
            conditions,
            select.args.get("order"),
            select.args.get("limit") is not None or select.args.get("fetch") is not None,
            list(scope.columns),
            opaque=len(tables) < len(scope.sources),
            aggregated=select.args.get("group") is not None
            or any(p.find(exp.AggFunc) is not None for p in projection),
            aliases=frozenset(p.alias.lower() for p in projection if p.alias),
        )


def _dml_source(tree: exp.Update | exp.Delete) -> Source:
    target = tree.this
    alias = target.alias_or_name
    where = tree.args.get("where")
    conditions = conjuncts(where.this) if where is not None else []
    columns = columns_of(where) if where is not None else []
    for assignment in tree.expressions:
        columns.extend(columns_of(assignment))
    return Source({alias: target.name.lower()}, conditions, None, False, columns, opaque=False)


def accesses(tree: exp.Expr, schema: SchemaModel | None = None) -> list[Access]:
    """The :class:`Access` of every table the statement reads, scope by scope."""
    found: list[Access] = []
    for source in sources_of(tree):
        by_alias = {alias: Access(table) for alias, table in source.tables.items()}
        for condition in source.conditions:
            _classify(condition, source, by_alias, schema)
        if source.order is not None:
            owner, keys = _order(source.order, source, schema)
            if owner is not None:
                by_alias[owner].order = keys
        for a in by_alias.values():
            a.limit = source.limit
        found.extend(by_alias.values())
    return found


def owner_of(column: exp.Column, source: Source, schema: SchemaModel | None) -> str | None:
    """The alias a column belongs to, or None when it cannot be told."""
    if column.table:
        return column.table if column.table in source.tables else None
    if len(source.tables) == 1 and not source.opaque:
        return next(iter(source.tables))
    if schema is not None:
        owners = [
            alias
            for alias, table in source.tables.items()
            if table in schema.tables and column.name.lower() in schema.tables[table].columns
        ]
        if len(owners) == 1:
            return owners[0]
    return None


def _owners(node: exp.Expr, source: Source, schema: SchemaModel | None) -> set[str | None]:
    return {owner_of(c, source, schema) for c in columns_of(node)}


def _classify(
    condition: exp.Expr,
    source: Source,
    by_alias: dict[str, Access],
    schema: SchemaModel | None,
) -> None:
    owners = _owners(condition, source, schema)
    for alias in owners:
        if alias is not None:
            by_alias[alias].conditions.append(key_sql(condition))
    if isinstance(condition, exp.EQ | exp.In):
        sides = (
            [(condition.this, condition.expression), (condition.expression, condition.this)]
            if isinstance(condition, exp.EQ)
            else [(condition.this, None)]
        )
        for side, other in sides:
            if isinstance(side, exp.Any | exp.All) or not columns_of(side):
                continue
            mine = _owners(side, source, schema)
            if len(mine) != 1 or None in mine:
                continue
            alias = next(iter(mine))
            assert alias is not None
            if other is not None and alias in _owners(other, source, schema):
                continue
            by_alias[alias].equals.append(key_sql(side))
    elif isinstance(condition, _RANGE):
        side = condition.this
        mine = _owners(side, source, schema) if columns_of(side) else set()
        if len(mine) == 1 and None not in mine:
            by_alias[str(next(iter(mine)))].ranges.append(key_sql(side))
    elif isinstance(condition, _CONTAINS) and isinstance(condition.this, exp.Column):
        alias = owner_of(condition.this, source, schema)
        if alias is not None:
            by_alias[alias].contains.append(key_sql(condition.this))


def _order(
    order: exp.Order, source: Source, schema: SchemaModel | None
) -> tuple[str | None, list[tuple[str, bool]]]:
    """The one alias an ORDER BY sorts on, with its keys; None if it spans tables,
    or sorts groups, aggregates or output names (no index order can serve those)."""
    if source.aggregated:
        return None, []
    keys, owners = [], set()
    for item in order.expressions:
        node = item.this if isinstance(item, exp.Ordered) else item
        if not columns_of(node) or node.find(exp.AggFunc) is not None:
            return None, []
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in source.aliases:
            return None, []
        owners |= _owners(node, source, schema)
        keys.append((key_sql(node), bool(item.args.get("desc"))))
    if len(owners) != 1 or None in owners:
        return None, []
    return next(iter(owners)), keys
