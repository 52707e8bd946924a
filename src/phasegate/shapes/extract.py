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

import ast
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from phasegate.errors import UsageError
from phasegate.shapes.result import Statement
from phasegate.shapes.sqltext import (
    colon_placeholders,
    python_placeholders,
    question_placeholders,
    split_statements,
)

JS_SUFFIXES = {".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts"}
PY_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "query"}
SKIP_DIRS = {"node_modules", ".git", ".venv", "venv", "__pycache__", "dist", "build", ".next"}
FORMS = ("sql-file", "js-tagged", "js-call", "py-call", "py-text")
_JS_TAG = re.compile(r"(?<![\w$.])sql\s*`")
_JS_CALL = re.compile(r"(?<![\w$])(?:([\w$]+)\s*\.\s*)?(query|unsafe|sql|execute)\s*\(")
_JS_CONST = re.compile(r"(?<![\w$.])(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::\s*\w+\s*)?=\s*")
_SQL_START = re.compile(
    r"^\s*(?:\(\s*)*(WITH|SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP)\b", re.IGNORECASE
)
# Receivers whose query/execute call is a database call even when its SQL cannot be read.
_DB_RECEIVER = re.compile(
    r"^(sql|db|pool|client|conn|connection|cur|cursor|tx|txn|trx|session|pg|neon|database)$",
    re.IGNORECASE,
)


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


Found = list[tuple[int, str, str]]  # (line, sql, form)
NotRead = list[tuple[int, str, str]]  # (line, form, why)


# --- JavaScript / TypeScript -------------------------------------------------------


def js_statements(source: str) -> tuple[Found, NotRead]:
    """(line, SQL, form) of each statement in a JS/TS module, and the calls not read."""
    constants = _js_constants(source)
    found: Found = []
    unread: NotRead = []
    for match in _JS_TAG.finditer(source):
        if _in_comment(source, match.start()):
            continue
        body = _template_body(source, match.end(), {})
        if body is not None:
            found.append((_line(source, match.start()), body[0].strip(), "js-tagged"))
    for match in _JS_CALL.finditer(source):
        if _in_comment(source, match.start()):
            continue
        receiver, name = match[1], match[2]
        line = _line(source, match.start())
        text, why = _js_string_expression(source, match.end(), constants)
        if text is None:
            if (receiver and _DB_RECEIVER.match(receiver)) or (not receiver and name == "query"):
                unread.append(
                    (line, "js-call", f"{receiver + '.' if receiver else ''}{name}(): {why}")
                )
            continue
        if _SQL_START.match(text):
            only = re.match(r"\s*([A-Za-z_$][\w$]*)\s*[,)]", source[match.end() :])
            if only and only[1] in constants:
                line = constants[only[1]][1]  # the SQL is written where the constant is
            found.append((line, question_placeholders(text.strip()), "js-call"))
    found.sort()
    return found, unread


def _line(source: str, at: int) -> int:
    return source.count("\n", 0, at) + 1


def _js_constants(source: str) -> dict[str, tuple[str, int]]:
    """``const NAME = <strings joined with +>`` at any level, in order of appearance:
    the text and the line it starts on."""
    constants: dict[str, tuple[str, int]] = {}
    for match in _JS_CONST.finditer(source):
        if _in_comment(source, match.start()):
            continue
        text, _why = _js_string_expression(source, match.end(), constants)
        if text is not None:
            constants[match[1]] = (text, _line(source, match.end()))
    return constants


def _js_string_expression(
    source: str, i: int, constants: dict[str, tuple[str, int]]
) -> tuple[str | None, str]:
    """The text of the string expression at ``source[i]``: literals, templates and
    known constants joined with ``+``; (None, why) when it is anything else."""
    parts: list[str] = []
    numbers: dict[str, int] = {}
    while True:
        i = _skip_space(source, i)
        c = source[i : i + 1]
        if c in ("'", '"'):
            literal = _js_quoted(source, i)
            if literal is None:
                return None, "an unterminated string"
            parts.append(literal[0])
            i = literal[1]
        elif c == "`":
            body = _template_body(source, i + 1, numbers)
            if body is None:
                return None, "an unterminated template"
            parts.append(body[0])
            i = body[1]
        else:
            word = re.match(r"[A-Za-z_$][\w$]*", source[i:])
            if word is None:
                return None, "the SQL is not a string"
            if word[0] not in constants:
                return None, f"the SQL comes from {word[0]!r}, built at run time"
            parts.append(constants[word[0]][0])
            i += len(word[0])
        i = _skip_space(source, i)
        if source.startswith("+", i):
            i += 1
            continue
        if source[i : i + 1] in (",", ")", ";", "\n", "") or source.startswith("as ", i):
            return "".join(parts), ""
        return None, "the SQL is an expression phasegate cannot follow"


def _skip_space(source: str, i: int) -> int:
    while i < len(source) and source[i].isspace():
        i += 1
    return i


_JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "v": "\v"}


def _js_quoted(source: str, i: int) -> tuple[str, int] | None:
    """A '...' or "..." literal at ``source[i]``: its text (escapes read) and the end."""
    quote, out, i = source[i], [], i + 1
    while i < len(source):
        c = source[i]
        if c == "\\":
            nxt = source[i + 1 : i + 2]
            out.append("" if nxt == "\n" else _JS_ESCAPES.get(nxt, nxt))
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        elif c == "\n":
            return None
        else:
            out.append(c)
            i += 1
    return None


def _in_comment(source: str, at: int) -> bool:
    """Whether ``at`` sits in a ``//`` or ``/* */`` comment (a heuristic that
    ignores comment markers inside strings on the same line)."""
    line = source[source.rfind("\n", 0, at) + 1 : at]
    if "//" in line and line[: line.index("//")].count("`") % 2 == 0:
        quotes = line[: line.index("//")]
        if quotes.count("'") % 2 == 0 and quotes.count('"') % 2 == 0:
            return True
    return source.rfind("/*", 0, at) > source.rfind("*/", 0, at)


def _template_body(source: str, i: int, numbers: dict[str, int]) -> tuple[str, int] | None:
    """The template starting at ``source[i]`` (after the backtick), placeholders
    numbered (the same expression text gets the same number), and the index after
    its closing backtick."""
    out: list[str] = []
    while i < len(source):
        c = source[i]
        if c == "\\":
            out.append(source[i + 1 : i + 2])
            i += 2
        elif c == "`":
            return "".join(out), i + 1
        elif source.startswith("${", i):
            end = _skip_expression(source, i + 2)
            expression = " ".join(source[i + 2 : end - 1].split())
            number = numbers.setdefault(expression, len(numbers) + 1)
            out.append(f"${number}")
            i = end
        else:
            out.append(c)
            i += 1
    return None  # unterminated template: not SQL we can read


def _skip_expression(source: str, i: int) -> int:
    """The index after the ``}`` closing a ``${`` expression (nested braces and strings)."""
    depth = 1
    while i < len(source) and depth:
        c = source[i]
        if c in "'\"":
            end = i + 1
            while end < len(source) and source[end] != c:
                end += 2 if source[end] == "\\" else 1
            i = end + 1
            continue
        if c == "`":
            body = _template_body(source, i + 1, {})
            i = body[1] if body is not None else len(source)
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        i += 1
    return i


# --- Python --------------------------------------------------------------------------


def python_statements(source: str) -> tuple[Found, NotRead]:
    """(line, SQL, form) of each statement in a Python module, and the calls not read."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []
    names: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = node.value
    found: Found = []
    unread: NotRead = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if method == "text":
            form = "py-text"
        elif isinstance(func, ast.Attribute) and method in PY_CALLS:
            form = "py-call"
        else:
            continue
        arg = node.args[0]
        if _is_text_call(names.get(arg.id) if isinstance(arg, ast.Name) else arg):
            continue  # execute(text("...")) or execute(stmt): the text() call is read itself
        numbers: dict[str, int] = {}
        text = _py_string(arg, names, numbers, set())
        if text is None:
            receiver = func.value if isinstance(func, ast.Attribute) else None
            if form == "py-text" or (
                isinstance(receiver, ast.Name) and _DB_RECEIVER.match(receiver.id)
            ):
                why = f"the SQL comes from {ast.unparse(arg)[:60]!r}, built at run time"
                unread.append((node.lineno, form, f"{method}(): {why}"))
            continue
        if not _SQL_START.match(text):
            continue
        sql = colon_placeholders(text) if form == "py-text" else python_placeholders(text)
        found.append((_py_line(arg, names), sql.strip(), form))
    found.sort()
    return found, unread


def _is_text_call(node: ast.expr | None) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) == "text"


def _py_string(
    node: ast.expr, names: dict[str, ast.expr], numbers: dict[str, int], seen: set[str]
) -> str | None:
    """The text of a string expression: literals, ``+``, names of string
    assignments, f-strings (their fields become ``$n``); None otherwise."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _py_string(node.left, names, numbers, seen)
        right = _py_string(node.right, names, numbers, seen)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name) and node.id in names and node.id not in seen:
        return _py_string(names[node.id], names, numbers, seen | {node.id})
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(part.value)
            elif isinstance(part, ast.FormattedValue):
                expression = ast.unparse(part.value)
                out.append(f"${numbers.setdefault(expression, len(numbers) + 1)}")
            else:
                return None
        return "".join(out)
    return None


def _py_line(node: ast.expr, names: dict[str, ast.expr]) -> int:
    """The line where the SQL text starts (a constant's own line when it is one)."""
    seen: set[str] = set()
    while isinstance(node, ast.Name) and node.id in names and node.id not in seen:
        seen.add(node.id)
        node = names[node.id]
    while isinstance(node, ast.BinOp):
        node = node.left
    return node.lineno


def python_sql(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each string passed to a database call in a Python module."""
    for line, sql, _form in python_statements(source)[0]:
        yield line, sql


def js_templates(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each statement in a JS/TS module (templates and calls)."""
    for line, sql, _form in js_statements(source)[0]:
        yield line, sql
