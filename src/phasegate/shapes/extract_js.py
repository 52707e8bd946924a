"""SQL in JavaScript / TypeScript: ``sql`...``` tagged templates and
``query()``-style calls whose first argument is a template, a string, or strings
and ``const`` names joined with ``+`` (see :mod:`phasegate.shapes.extract`)."""

from __future__ import annotations

import re

from phasegate.shapes.extract_common import DB_RECEIVER, SQL_START, Found, NotRead
from phasegate.shapes.sqltext import question_placeholders

_JS_TAG = re.compile(r"(?<![\w$.])sql\s*`")
_JS_CALL = re.compile(r"(?<![\w$])(?:([\w$]+)\s*\.\s*)?(query|unsafe|sql|execute)\s*\(")
_JS_CONST = re.compile(r"(?<![\w$.])(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::\s*\w+\s*)?=\s*")


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
            if (receiver and DB_RECEIVER.match(receiver)) or (not receiver and name == "query"):
                unread.append(
                    (line, "js-call", f"{receiver + '.' if receiver else ''}{name}(): {why}")
                )
            continue
        if SQL_START.match(text):
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
