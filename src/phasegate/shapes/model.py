"""What the shape checks know of a schema: tables, columns, and index keys.

Read from DDL text (the project's schema by default, or a user's ``schema.sql``)
or from a live database's catalog. Both go through one parser: Postgres gives
its indexes back as ``CREATE INDEX`` text (``pg_indexes.indexdef``).

>>> model = SchemaModel.from_ddl(
...     "CREATE TABLE m (id text PRIMARY KEY, a text, b text);"
...     "CREATE INDEX m_pair ON m (LEAST(a, b), GREATEST(a, b), id DESC)"
... )
>>> [str(i) for i in model.indexes_of("m")]
['m_pkey (id)', 'm_pair (LEAST(a, b), GREATEST(a, b), id DESC)']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import sqlglot.errors
from sqlglot import exp

from phasegate.errors import UsageError
from phasegate.schema import schema_sql
from phasegate.shapes.sqltext import key_sql, parse_one, split_statements


@dataclass(frozen=True)
class IndexKey:
    """One key of an index: its normalised expression and direction."""

    sql: str
    desc: bool = False

    def __str__(self) -> str:
        return self.sql + (" DESC" if self.desc else "")


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    keys: tuple[IndexKey, ...]
    method: str = "btree"
    predicate: tuple[str, ...] = ()  # conjuncts of a partial index's WHERE, normalised
    ddl: str = ""

    @property
    def is_btree(self) -> bool:
        return self.method == "btree"

    def __str__(self) -> str:
        keys = ", ".join(str(k) for k in self.keys)
        using = "" if self.is_btree else f" USING {self.method}"
        where = f" WHERE {' AND '.join(self.predicate)}" if self.predicate else ""
        return f"{self.name}{using} ({keys}){where}"


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]  # column -> type as written (``text[]`` for arrays)

    def is_array(self, column: str) -> bool:
        return self.columns.get(column, "").endswith("[]")


@dataclass
class SchemaModel:
    """Tables and indexes, by table name; ``origin`` says where they were read."""

    origin: str = "project schema"
    tables: dict[str, Table] = field(default_factory=dict)
    indexes: list[Index] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # DDL statements not understood

    def indexes_of(self, table: str) -> list[Index]:
        return [i for i in self.indexes if i.table == table]

    def index(self, name: str) -> Index | None:
        return next((i for i in self.indexes if i.name == name), None)

    @classmethod
    def from_ddl(cls, text: str, origin: str = "DDL") -> SchemaModel:
        """Tables and indexes of a DDL script; other statements are noted, not fatal."""
        model = cls(origin)
        for line, sql in split_statements(text):
            try:
                tree = parse_one(sql)
            except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
                model.skipped.append(f"{origin}:{line}: not understood, skipped")
                continue
            if isinstance(tree, exp.Create) and tree.kind == "TABLE":
                model._add_table(tree)
            elif isinstance(tree, exp.Create) and tree.kind == "INDEX":
                model._add_index(tree, sql)
        return model

    @classmethod
    def project(cls) -> SchemaModel:
        """The schema phasegate applies (``src/phasegate/sql/schema.sql``)."""
        return cls.from_ddl(schema_sql(), "project schema (phasegate/sql/schema.sql)")

    @classmethod
    def from_file(cls, path: Path) -> SchemaModel:
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"cannot read the schema file {path}: {e.strerror}") from e
        model = cls.from_ddl(text, str(path))
        if not model.tables:
            raise UsageError(
                f"{path} defines no tables (no CREATE TABLE statement understood)",
                hint="--schema takes the DDL of the target database, e.g. schema.sql",
            )
        return model

    @classmethod
    def from_database(cls, conn: psycopg.Connection[tuple[object, ...]]) -> SchemaModel:
        """The tables and indexes of the connection's current schema."""
        model = cls(f"database {conn.info.dbname}")
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table, column, data_type, udt in rows:
            kind = f"{str(udt).removeprefix('_')}[]" if data_type == "ARRAY" else str(udt)
            columns.setdefault(str(table), {})[str(column)] = kind
        model.tables = {name: Table(name, cols) for name, cols in columns.items()}
        for (indexdef,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "ORDER BY tablename, indexname"
        ):
            model._add_index(parse_one(str(indexdef)), str(indexdef))
        return model

    @classmethod
    def resolve(
        cls, schema_file: str | None, conn: psycopg.Connection[tuple[object, ...]] | None
    ) -> SchemaModel:
        """A DDL file when given, else the live catalog when connected, else the project's."""
        if schema_file:
            return cls.from_file(Path(schema_file))
        if conn is not None:
            return cls.from_database(conn)
        return cls.project()

    @classmethod
    def for_target(cls, schema_file: str | None, pg_url: str | None) -> SchemaModel:
        """:meth:`resolve` for settings: ``--schema``, else ``--pg-url``'s catalog (read
        only, connected just for this), else the project's."""
        if schema_file or not pg_url:
            return cls.resolve(schema_file, None)
        from phasegate.stores import connect_pg

        with connect_pg(pg_url) as conn:
            conn.read_only = True
            return cls.from_database(conn)

    def _add_table(self, tree: exp.Create) -> None:
        schema = tree.this
        name = schema.this.name.lower()
        columns: dict[str, str] = {}
        primary: list[str] = []
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                column = item.name.lower()
                columns[column] = _type_name(item.args.get("kind"))
                constraints = [c.args.get("kind") for c in item.args.get("constraints") or []]
                if any(isinstance(c, exp.PrimaryKeyColumnConstraint) for c in constraints):
                    primary = [column]
                if any(isinstance(c, exp.UniqueColumnConstraint) for c in constraints):
                    self.indexes.append(Index(f"{name}_{column}_key", name, (IndexKey(column),)))
            elif isinstance(item, exp.PrimaryKey):
                primary = [e.name.lower() for e in item.expressions]
        self.tables[name] = Table(name, columns)
        if primary:
            keys = tuple(IndexKey(c) for c in primary)
            self.indexes.append(Index(f"{name}_pkey", name, keys))

    def _add_index(self, tree: exp.Expr, ddl: str) -> None:
        index = tree.this
        params = index.args.get("params")
        if not isinstance(index, exp.Index) or params is None:
            self.skipped.append(f"{ddl[:60]}: not an index definition")
            return
        keys = tuple(
            IndexKey(key_sql(o.this), bool(o.args.get("desc")))
            if isinstance(o, exp.Ordered)
            else IndexKey(key_sql(o))
            for o in params.args.get("columns") or []
        )
        using = params.args.get("using")
        where = params.args.get("where")
        self.indexes.append(
            Index(
                index.name.lower(),
                index.args["table"].name.lower(),
                keys,
                using.name.lower() if using is not None else "btree",
                tuple(key_sql(c) for c in conjuncts(where.this)) if where is not None else (),
                ddl,
            )
        )


def _type_name(kind: exp.Expr | None) -> str:
    if not isinstance(kind, exp.DataType):
        return ""
    if kind.is_type(exp.DataType.Type.ARRAY) and kind.expressions:
        return f"{kind.expressions[0].sql(dialect='postgres').lower()}[]"
    return kind.sql(dialect="postgres").lower()


def conjuncts(node: exp.Expr) -> list[exp.Expr]:
    """The operands of a chain of ANDs, parentheses removed."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    return [node]
