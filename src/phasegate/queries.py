"""The query catalog: every SQL query the app's read paths run, one ``.sql`` file each.

The catalog (``src/phasegate/sql/queries/``, plus the files a mapping of the
user's names in its ``queries``) is the single source: the query
checks, the reference service and the shadow reads execute these files, not
copies. Each file starts with a header::

    -- name: thread
    -- type: messages
    -- params: $1 handle text, $2 other text, $3 limit int
    -- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
    -- sample: SELECT from_user, to_user, 50 FROM messages ORDER BY id LIMIT 1
    -- Free text saying what the read path is for.

``index`` names the index and, in parentheses, the key expressions the query
relies on (leading keys of the index, each compared by the query, each in the
plan's Index Cond); without them they are the index keys the query's equalities
reach. ``sample`` (optional) is a query returning one row of realistic parameters
from loaded data, for the plan checks. ``limit`` (optional) is how many rows the
read path returns when its LIMIT is a parameter (the app asks for 50): an app
query on the same path must take as many (the ``read-path-shape`` rule).

Queries use Postgres ``$n`` placeholders (run them with :class:`psycopg.RawCursor`).

>>> for_sqlglot("LEAST($1,$2)")
'LEAST($1 ,$2 )'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phasegate.errors import UsageError
from phasegate.mappings import MAPPINGS, TYPE_IDS

_HEADER = re.compile(r"^--\s*(name|type|params|index|sample|limit):\s*(.*?)\s*$")
_PARAM = re.compile(r"^\$(\d+)\s+(\w+)\s+([\w\[\]]+)$")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_INDEX = re.compile(r"^(\w+)\s*(?:\((.*)\))?$")


@dataclass(frozen=True)
class Param:
    position: int
    name: str
    pg_type: str


@dataclass(frozen=True)
class Query:
    """One catalogued query and what it relies on."""

    name: str
    type_id: str
    params: tuple[Param, ...]
    index: str
    keys: str  # the key expressions relied on, as written in the header ('' if none)
    doc: str
    sql: str
    path: str
    first_line: int = 1  # the file line where the SQL starts
    sample: str = ""  # SQL giving one row of realistic parameters
    limit: int | None = None  # rows the read path returns (its LIMIT parameter's value)


_NEEDS_SPACE = re.compile(r"(\$\d+)(?=[^\d\s])")


def for_sqlglot(sql: str) -> str:
    r"""sqlglot 30 reads ``$1,$2`` as the start of a dollar-quoted string: a space
    after each ``$n`` that something other than a digit or a space follows (all
    its digits kept: ``$11`` stays ``$11``, never ``$1 1``).

    >>> for_sqlglot("SELECT $1,$10\nFROM t WHERE a IN ($11)")
    'SELECT $1 ,$10\nFROM t WHERE a IN ($11 )'
    """
    return _NEEDS_SPACE.sub(r"\1 ", sql)


def parse_query(text: str, path: str) -> Query:
    """A query file's header and body; a malformed header names the file and line."""
    fields: dict[str, str] = {}
    doc: list[str] = []
    body: list[str] = []
    first_line = 1
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match and not body:
            fields[match[1]] = match[2]
        elif line.startswith("--") and not body:
            doc.append(line.lstrip("- ").rstrip())
        elif line.strip():
            if not body:
                first_line = number
            body.append(line)
        if match and body:
            raise UsageError(f"{path}:{number}: header line after the SQL started")
    missing = [f for f in ("name", "type", "params", "index") if f not in fields]
    if missing:
        raise UsageError(
            f"{path}: header lacks {', '.join(missing)}",
            hint="see src/phasegate/queries.py for the header format",
        )
    if fields["type"] not in TYPE_IDS:
        raise UsageError(f"{path}: type {fields['type']!r} is not one of {', '.join(TYPE_IDS)}")
    params = tuple(_param(p, path) for p in fields["params"].split(",") if p.strip())
    sql = "\n".join(body).strip().rstrip(";")
    used = {int(n) for n in _PLACEHOLDER.findall(sql)}
    declared = {p.position for p in params}
    if used != declared or declared != set(range(1, len(params) + 1)):
        raise UsageError(
            f"{path}: parameters declared {sorted(declared)} but the SQL uses {sorted(used)}"
        )
    index = _INDEX.match(fields["index"])
    if index is None:
        raise UsageError(f"{path}: index {fields['index']!r} is not 'name' or 'name (key, ...)'")
    return Query(
        fields["name"],
        fields["type"],
        params,
        index[1],
        index[2] or "",
        " ".join(doc),
        sql,
        path,
        first_line,
        fields.get("sample", ""),
        _limit(fields.get("limit"), path),
    )


def _limit(text: str | None, path: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise UsageError(f"{path}: limit {text!r} is not a whole number of rows")
    return int(text)


def _param(text: str, path: str) -> Param:
    match = _PARAM.match(text.strip())
    if match is None:
        raise UsageError(f"{path}: parameter {text.strip()!r} is not '$n name type'")
    return Param(int(match[1]), match[2], match[3])


def load_catalog(folder: Path | None = None) -> dict[str, Query]:
    """Every query of the catalog by name: by default the packaged one plus the
    ``.sql`` files the registered mappings bring (``Mapping.queries``)."""
    if folder is None:
        files = sorted(
            (f.name, f.read_text())
            for f in resources.files("phasegate").joinpath("sql", "queries").iterdir()
            if f.name.endswith(".sql")
        )
        for mapping in MAPPINGS.values():
            for name in mapping.queries:
                try:
                    files.append((name, Path(name).read_text()))
                except OSError as exc:
                    raise UsageError(
                        f"{mapping.type_id}: query file {name} cannot be read: {exc.strerror}"
                    ) from None
    else:
        files = sorted((str(p), p.read_text()) for p in folder.glob("*.sql"))
    catalog: dict[str, Query] = {}
    for path, text in files:
        query = parse_query(text, path)
        if query.name in catalog:
            raise UsageError(
                f"{path}: query name {query.name!r} is also {catalog[query.name].path}"
            )
        catalog[query.name] = query
    return catalog
