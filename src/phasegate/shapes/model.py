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
from functools import cache
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
class ForeignKey:
    """A foreign key: its referencing columns, and where it was declared."""

    table: str
    columns: tuple[str, ...]
    references: str
    origin: str  # the DDL text, or "phasegate fk add"

    def __str__(self) -> str:
        return f"{self.table} ({', '.join(self.columns)}) REFERENCES {self.references}"


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
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # DDL statements not understood

    def indexes_of(self, table: str) -> list[Index]:
        return [i for i in self.indexes if i.table == table]

    def index(self, name: str) -> Index | None:
        return next((i for i in self.indexes if i.name == name), None)

    def find(self, name: str, keys: tuple[str, ...] = ()) -> Index | None:
        """The index a catalogued query relies on, matched by what it is, not what it
        is called: an index of the same table (phasegate's own index of that name
        says which) with the same leading keys, method and predicate. ``name``
        decides only between equals; ``keys`` are the keys relied on (default: all
        of the reference index's).

        >>> theirs = SchemaModel.from_ddl(
        ...     "CREATE TABLE messages (id text PRIMARY KEY, from_user text, to_user text);"
        ...     "CREATE INDEX app_pair ON messages (LEAST(from_user, to_user),"
        ...     " GREATEST(from_user, to_user))")
        >>> pair = ("LEAST(from_user, to_user)", "GREATEST(from_user, to_user)")
        >>> theirs.find("messages_thread_idx", pair).name
        'app_pair'
        """
        reference = _project_index(name)
        named = self.index(name)
        if reference is None:
            return named
        wanted = keys or tuple(k.sql for k in reference.keys)

        def fits(index: Index) -> bool:
            leading = tuple(k.sql for k in index.keys[: len(wanted)])
            return (
                index.table == reference.table
                and leading == wanted
                and index.method == reference.method
                and set(index.predicate) <= set(reference.predicate)
            )

        if named is not None and fits(named):
            return named
        same = [i for i in self.indexes_of(reference.table) if fits(i)]
        same.sort(key=lambda i: (i.predicate != reference.predicate, len(i.keys)))
        return same[0] if same else named

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
                model._add_table(tree, sql)
            elif isinstance(tree, exp.Create) and tree.kind == "INDEX":
                model._add_index(tree, sql)
            elif isinstance(tree, exp.Alter) and isinstance(tree.this, exp.Table):
                for constraint in tree.find_all(exp.ForeignKey):
                    model._add_foreign_key(tree.this.name.lower(), constraint, sql)
        return model

    @classmethod
    def project(cls) -> SchemaModel:
        """The schema phasegate applies (``src/phasegate/sql/schema.sql``), with the
        foreign keys ``phasegate fk add`` adds (every handle column to users)."""
        from phasegate.mappings import MAPPINGS

        model = cls.from_ddl(schema_sql(), "project schema (phasegate/sql/schema.sql)")
        for mapping in MAPPINGS.values():
            for column in mapping.handle_columns:
                fk = ForeignKey(mapping.table, (column,), "users", "phasegate fk add")
                model.foreign_keys.append(fk)
        return model

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
        for table, fk_columns, references, definition in conn.execute(
            "SELECT c.conrelid::regclass::text, "
            "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), "
            "c.confrelid::regclass::text, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE c.contype = 'f' AND n.nspname = current_schema() ORDER BY 1, 2"
        ):
            assert isinstance(fk_columns, list)
            model.foreign_keys.append(
                ForeignKey(
                    str(table).lower(),
                    tuple(str(c).lower() for c in fk_columns),
                    str(references).lower(),
                    f"ALTER TABLE {table} ADD {definition}",
                )
            )
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

    def _add_table(self, tree: exp.Create, ddl: str = "") -> None:
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
                for reference in (c for c in constraints if isinstance(c, exp.Reference)):
                    target = reference.this
                    table = target.this if isinstance(target, exp.Schema) else target
                    self.foreign_keys.append(ForeignKey(name, (column,), table.name.lower(), ddl))
            elif isinstance(item, exp.PrimaryKey):
                primary = [e.name.lower() for e in item.expressions]
            elif isinstance(item, exp.ForeignKey):
                self._add_foreign_key(name, item, ddl)
        self.tables[name] = Table(name, columns)
        if primary:
            keys = tuple(IndexKey(c) for c in primary)
            self.indexes.append(Index(f"{name}_pkey", name, keys))

    def _add_foreign_key(self, table: str, key: exp.ForeignKey, ddl: str) -> None:
        reference = key.args.get("reference")
        target = reference.this if reference is not None else None
        ref = target.this if isinstance(target, exp.Schema) else target
        columns = tuple(e.name.lower() for e in key.expressions)
        self.foreign_keys.append(
            ForeignKey(table, columns, ref.name.lower() if ref is not None else "?", ddl)
        )

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


@cache
def _project_index(name: str) -> Index | None:
    """phasegate's own index of that name: the table, keys and predicate a
    catalogued query's ``-- index:`` header means."""
    return SchemaModel.project().index(name)


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
