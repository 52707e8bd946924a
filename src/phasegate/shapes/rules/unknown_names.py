"""Rule ``unknown-name``: every table and column the statement names is in the schema.

The system catalogs (``information_schema.*``, ``pg_catalog.*`` and the ``pg_*``
relations) are Postgres's own and always there.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from phasegate.shapes.analysis import owner_of, sources_of
from phasegate.shapes.model import SchemaModel
from phasegate.shapes.result import ShapeFinding, Statement

RULE = "unknown-name"
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


def is_system(table: exp.Table) -> bool:
    """A system catalog relation (``information_schema.tables``, ``pg_class``...)."""
    return table.db.lower() in SYSTEM_SCHEMAS or table.name.lower().startswith("pg_")


def check(statement: Statement, tree: exp.Expr, schema: SchemaModel) -> Iterator[ShapeFinding]:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    reported: set[str] = set()
    system = {t.alias_or_name.lower() for t in tree.find_all(exp.Table) if is_system(t)}
    for node in tree.find_all(exp.Table):
        name = node.name.lower()
        if is_system(node):
            continue
        if name and name not in ctes and name not in schema.tables and name not in reported:
            reported.add(name)
            yield ShapeFinding(RULE, statement, f"table {name} is not in the {schema.origin}")
    for source in sources_of(tree):
        for column in source.columns:
            name = column.name.lower()
            if not name or isinstance(column.this, exp.Star):
                continue
            alias = owner_of(column, source, schema)
            if alias in system or (alias is None and system & set(source.tables)):
                continue  # a system catalog's column
            table = source.tables.get(alias) if alias else None
            if table is None:
                if column.table or source.opaque:
                    continue  # a derived table's column, or an alias we cannot see into
                candidates = [t for t in source.tables.values() if t in schema.tables]
                if not candidates or any(name in schema.tables[t].columns for t in candidates):
                    continue
                where = ", ".join(sorted(set(candidates)))
            elif table not in schema.tables or name in schema.tables[table].columns:
                continue
            else:
                where = table
            if f"{where}.{name}" not in reported:
                reported.add(f"{where}.{name}")
                yield ShapeFinding(
                    RULE, statement, f"column {name} is not a column of {where} ({schema.origin})"
                )
