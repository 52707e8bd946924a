r"""SQL found in an application source tree, each statement with its file and line.

Forms read (the name in parentheses is the statement's ``form``):

- ``.sql`` files: every statement of the script (``sql-file``).
- JavaScript / TypeScript: tagged templates ``sql`...``` as the Neon driver
  writes them (``js-tagged``), and calls that take the SQL as their first
  argument (``js-call``): ``query(...)``, ``pool.query(...)``,
  ``client.query(...)``, ``db.query(...)``, ``sql(...)``, ``sql.unsafe(...)``,
  ``x.execute(...)``. The argument may be a template literal, a plain string,
  or strings and ``const`` names joined with ``+``.
- Python: strings passed to ``execute``, ``executemany``, ``fetch``,
  ``fetchrow``, ``fetchval``, ``query`` (psycopg, asyncpg) (``py-call``), and to
  SQLAlchemy's ``text(...)`` (``py-text``). Module constants, ``+`` and implicit
  concatenation and f-strings are followed.

Parameters become Postgres ``$n``: ``${expr}`` and f-string fields (the same
expression text gets the same number), psycopg's ``%s`` / ``%(name)s``,
SQLAlchemy's ``:name`` and ``?``. A call whose SQL is built at run time (a
variable phasegate cannot follow) is not dropped: it is listed as *unread* with
its file, line and why.

>>> [(line, sql) for line, sql, _form in js_statements("const r = await sql`SELECT *\n"
...     "FROM users WHERE handle = ${h} AND x = ${f({a: 1})}`;")[0]]
[(1, 'SELECT *\nFROM users WHERE handle = $1 AND x = $2')]
>>> [(line, sql) for line, sql, _form in js_statements(
...     "const Q = 'SELECT id FROM t ' +\n  'WHERE a = ?';\nawait pool.query(Q, [a]);")[0]]
[(1, 'SELECT id FROM t WHERE a = $1')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from phasegate.errors import UsageError
from phasegate.shapes.extract_js import js_statements
from phasegate.shapes.extract_python import python_statements
from phasegate.shapes.result import Statement
from phasegate.shapes.sqltext import split_statements

JS_SUFFIXES = {".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts"}
SKIP_DIRS = {"node_modules", ".git", ".venv", "venv", "__pycache__", "dist", "build", ".next"}


@dataclass(frozen=True)
class Unread:
    """A database call whose SQL could not be read (built at run time)."""

    origin: str
    form: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin} [{self.form}] not read: {self.reason}"


@dataclass
class Extraction:
    """What a source tree holds: statements by form, and the calls not read."""

    statements: list[Statement] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)

    @property
    def forms(self) -> Counter[str]:
        return Counter(s.form for s in self.statements)

    def summary(self) -> str:
        """``12 statements: js-call 5, js-tagged 4, ...; 1 call not read``."""
        forms = ", ".join(f"{f} {n}" for f, n in sorted(self.forms.items()))
        unread = f"; {len(self.unread)} calls not read" if self.unread else ""
        return f"{len(self.statements)} statements found ({forms or 'none'}){unread}"


def extract(root: Path) -> Extraction:
    """Every SQL statement under ``root`` (in path order), and the calls not read."""
    if not root.is_dir():
        raise UsageError(f"--app-src {root} is not a directory")
    out = Extraction()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or SKIP_DIRS.intersection(path.relative_to(root).parts):
            continue
        shown = path.relative_to(root.parent) if root.parent != root else path
        text = path.read_text(errors="replace")
        if path.suffix == ".py":
            found, unread = python_statements(text)
        elif path.suffix == ".sql":
            found, unread = [(line, sql, "sql-file") for line, sql in split_statements(text)], []
        elif path.suffix in JS_SUFFIXES:
            found, unread = js_statements(text)
        else:
            continue
        for line, sql, form in found:
            out.statements.append(Statement(sql, f"{shown}:{line}", f"{shown}:{line}", form=form))
        out.unread.extend(Unread(f"{shown}:{line}", form, why) for line, form, why in unread)
    return out


def app_statements(root: Path) -> Iterator[Statement]:
    """Every SQL statement under ``root``, in path order."""
    yield from extract(root).statements


def python_sql(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each string passed to a database call in a Python module."""
    for line, sql, _form in python_statements(source)[0]:
        yield line, sql


def js_templates(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each statement in a JS/TS module (templates and calls)."""
    for line, sql, _form in js_statements(source)[0]:
        yield line, sql
