"""SQL found in an application source tree, each statement with its file and line.

- Python: string literals (or module-level string constants) passed to
  ``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval`` and
  ``query``; ``%s`` / ``%(name)s`` become ``$n``.
- ``.sql`` files: every statement of the script.
- JavaScript / TypeScript: tagged templates ``sql`...```, as the Neon driver
  writes them; each ``${...}`` becomes ``$1``, ``$2``, ... in order.

>>> [(line, sql) for line, sql in js_templates("const r = await sql`SELECT *\\n"
...     "FROM users WHERE handle = ${h} AND x = ${f({a: 1})}`;")]
[(1, 'SELECT *\\nFROM users WHERE handle = $1 AND x = $2')]
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from phasegate.errors import UsageError
from phasegate.shapes.result import Statement
from phasegate.shapes.sqltext import python_placeholders, split_statements

JS_SUFFIXES = {".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts"}
PY_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "query"}
SKIP_DIRS = {"node_modules", ".git", ".venv", "venv", "__pycache__", "dist", "build", ".next"}
_JS_TAG = re.compile(r"(?<![\w$.])sql\s*`")
_SQL_START = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def app_statements(root: Path) -> Iterator[Statement]:
    """Every SQL statement under ``root``, in path order."""
    if not root.is_dir():
        raise UsageError(f"--app-src {root} is not a directory")
    for path in sorted(root.rglob("*")):
        if not path.is_file() or SKIP_DIRS.intersection(path.relative_to(root).parts):
            continue
        if path.suffix == ".py":
            found = python_sql(path.read_text(errors="replace"))
        elif path.suffix == ".sql":
            found = split_statements(path.read_text(errors="replace"))
        elif path.suffix in JS_SUFFIXES:
            found = js_templates(path.read_text(errors="replace"))
        else:
            continue
        shown = path.relative_to(root.parent) if root.parent != root else path
        for line, sql in found:
            yield Statement(sql, f"{shown}:{line}", f"{shown}:{line}")


def python_sql(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each string passed to a database call in a Python module."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    constants = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in PY_CALLS
            and node.args
        ):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Name) and arg.id in constants:
            arg = constants[arg.id]
        if (
            isinstance(arg, ast.Constant)
            and isinstance(arg.value, str)
            and _SQL_START.match(arg.value)
        ):
            yield arg.lineno, python_placeholders(arg.value).strip()


def js_templates(source: str) -> Iterator[tuple[int, str]]:
    """(line, SQL) of each ``sql`...``` tagged template; ``${...}`` become ``$n``."""
    for match in _JS_TAG.finditer(source):
        if _in_comment(source, match.start()):
            continue
        line = source.count("\n", 0, match.start()) + 1
        body = _template_body(source, match.end())
        if body is not None:
            yield line, body[0].strip()


def _in_comment(source: str, at: int) -> bool:
    """Whether ``at`` sits in a ``//`` or ``/* */`` comment (a heuristic that
    ignores comment markers inside strings on the same line)."""
    line = source[source.rfind("\n", 0, at) + 1 : at]
    if "//" in line and line[: line.index("//")].count("`") % 2 == 0:
        return True
    return source.rfind("/*", 0, at) > source.rfind("*/", 0, at)


def _template_body(source: str, i: int) -> tuple[str, int] | None:
    """The template starting at ``source[i]`` (after the backtick), placeholders
    numbered (the same expression text gets the same number), and the index after
    its closing backtick."""
    out: list[str] = []
    numbers: dict[str, int] = {}
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
            body = _template_body(source, i + 1)
            i = body[1] if body is not None else len(source)
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        i += 1
    return i
