"""SQL in Python: strings passed to ``execute``/``fetch*``/``query`` (psycopg,
asyncpg) and SQLAlchemy ``text()``, following constants, ``+`` and f-strings
(see :mod:`phasegate.shapes.extract`)."""

from __future__ import annotations

import ast

from phasegate.shapes.extract_common import DB_RECEIVER, SQL_START, Found, NotRead
from phasegate.shapes.sqltext import colon_placeholders, python_placeholders

PY_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "query"}


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
        method = _call_name(node)
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
                isinstance(receiver, ast.Name) and DB_RECEIVER.match(receiver.id)
            ):
                why = f"the SQL comes from {ast.unparse(arg)[:60]!r}, built at run time"
                unread.append((node.lineno, form, f"{method}(): {why}"))
            continue
        if not SQL_START.match(text):
            continue
        sql = colon_placeholders(text) if form == "py-text" else python_placeholders(text)
        found.append((_py_line(arg, names), sql.strip(), form))
    found.sort()
    return found, unread


def _call_name(node: ast.Call) -> str:
    """``execute`` of ``cur.execute(...)``, ``text`` of ``text(...)``."""
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _is_text_call(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Call) and _call_name(node) == "text"


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
