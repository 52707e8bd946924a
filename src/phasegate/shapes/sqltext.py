"""SQL text helpers: split a script into statements, turn driver placeholders
into Postgres ``$n``, parse for sqlglot, and normalise expressions for comparison.

>>> [(line, sql) for line, sql in split_statements("SELECT 1;\\n-- x;\\nSELECT ';'")]
[(1, 'SELECT 1'), (3, "SELECT ';'")]
>>> python_placeholders("SELECT * FROM t WHERE a = %s AND b = %(b)s AND c = %(b)s")
'SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $2'
>>> key_sql(parse_one("SELECT 1 FROM m WHERE LEAST(m.b, A) = 1").find(exp.Least))
'LEAST(b, a)'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import sqlglot
from sqlglot import exp

from phasegate.queries import for_sqlglot

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PY_PARAM = re.compile(r"%\((\w+)\)s|%s")


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """(first line, statement) for each ``;``-separated statement of a script.

    Quotes, dollar quotes and comments are honoured, so a ``;`` inside them
    does not split; statements that are only comments are dropped.
    """
    start, i, line, start_line = 0, 0, 1, 1
    has_code = False
    while i < len(text):
        c = text[i]
        if c == "\n":
            line += 1
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
            continue
        if c in "'\"":
            end = text.find(c, i + 1)
            while end > 0 and text.startswith(c * 2, end):
                end = text.find(c, end + 2)
            end = len(text) if end < 0 else end + 1
            line += text.count("\n", i + 1, end)
            i, has_code = end, True
            continue
        tag = _DOLLAR_TAG.match(text, i) if c == "$" else None
        if tag:
            end = text.find(tag[0], tag.end())
            end = len(text) if end < 0 else end + len(tag[0])
            line += text.count("\n", i + 1, end)
            i, has_code = end, True
            continue
        if c == ";":
            if has_code:
                yield start_line, text[start:i].strip()
            start, has_code = i + 1, False
        elif not c.isspace() and not has_code:
            has_code, start_line = True, line
            start = i
        i += 1
    if has_code:
        yield start_line, text[start:].strip()


def python_placeholders(sql: str) -> str:
    """psycopg's ``%s`` and ``%(name)s`` as ``$n`` (one number per name)."""
    names: dict[str, int] = {}
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match[1] and match[1] in names:
            return f"${names[match[1]]}"
        counter += 1
        if match[1]:
            names[match[1]] = counter
        return f"${counter}"

    return _PY_PARAM.sub(number, sql.replace("%%", "%"))


def _outside_quotes(
    sql: str, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]
) -> str:
    """``pattern`` replaced only outside '...', "..." and $$...$$ (and comments)."""
    out, i = [], 0
    for match in _QUOTED.finditer(sql):
        out.append(pattern.sub(replace, sql[i : match.start()]))
        out.append(match[0])
        i = match.end()
    out.append(pattern.sub(replace, sql[i:]))
    return "".join(out)


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$\$.*?\$\$|--[^\n]*", re.S)
_QUESTION = re.compile(r"(?<![?\w])\?(?![?|&\w])")
_COLON = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def question_placeholders(sql: str) -> str:
    """``?`` placeholders (mysql-style helpers) as ``$1, $2, ...``; left alone when
    the statement already uses ``$n`` or the ``?`` is a jsonb operator (``?|``, ``?&``).

    >>> question_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c = ?")
    "SELECT * FROM t WHERE a = $1 AND b = '?' AND c = $2"
    """
    if re.search(r"\$\d", sql):
        return sql
    counter = iter(range(1, 10_000))
    return _outside_quotes(sql, _QUESTION, lambda _m: f"${next(counter)}")


def colon_placeholders(sql: str) -> str:
    """SQLAlchemy's ``:name`` as ``$n`` (one number per name; ``::type`` casts kept).

    >>> colon_placeholders("SELECT :a::text, :b, ':c', :a")
    "SELECT $1::text, $2, ':c', $1"
    """
    names: dict[str, int] = {}
    return _outside_quotes(sql, _COLON, lambda m: f"${names.setdefault(m[1], len(names) + 1)}")


def parse_one(sql: str) -> exp.Expr:
    """Parse one Postgres statement (raises sqlglot's ParseError or TokenError)."""
    return sqlglot.parse_one(for_sqlglot(sql), read="postgres")


def parse_many(sql: str) -> list[exp.Expr]:
    return [e for e in sqlglot.parse(for_sqlglot(sql), read="postgres") if e is not None]


def normalise(node: exp.Expr) -> exp.Expr:
    """A copy without table qualifiers or redundant parentheses, identifiers
    lower-cased unless quoted: ``LEAST(m.From_User, to_user)`` reads
    ``LEAST(from_user, to_user)``, and argument order is kept."""
    copy = node.copy()
    while isinstance(copy, exp.Paren):
        copy = copy.this
    for column in list(copy.find_all(exp.Column)):
        column.set("table", None)
        column.set("db", None)
        column.set("catalog", None)
    for ident in copy.find_all(exp.Identifier):
        if not ident.quoted:
            ident.set("this", ident.name.lower())
    for paren in list(copy.find_all(exp.Paren)):
        if isinstance(paren.this, exp.Column | exp.Parameter | exp.Literal):
            paren.replace(paren.this)
    return copy


def key_sql(node: exp.Expr) -> str:
    """The normalised SQL of an expression: the form keys are compared in."""
    return normalise(node).sql(dialect="postgres")


def columns_of(node: exp.Expr) -> list[exp.Column]:
    """Columns an expression reads, not counting those inside subqueries."""
    return [c for c in node.find_all(exp.Column) if not c.find_ancestor(exp.Subquery)]


def parse_keys(text: str) -> tuple[str, ...]:
    """Normalised key expressions from a comma-separated list.

    >>> parse_keys("LEAST(From_User, to_user), created_at")
    ('LEAST(from_user, to_user)', 'created_at')
    """
    if not text.strip():
        return ()
    return tuple(key_sql(e) for e in parse_one(f"SELECT {text}").expressions)
