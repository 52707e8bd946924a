"""The query catalog: every SQL query the app's read paths run, one ``.sql`` file each.

The catalog (``src/phasegate/sql/queries/``) is the single source: the query
checks, the reference service and the shadow reads execute these files, not
copies. Each file starts with a header::

    -- name: thread
    -- type: messages
    -- params: $1 handle text, $2 other text, $3 limit int
    -- index: messages_thread_idx
    -- Free text saying what the read path is for.

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
from phasegate.mappings import TYPE_IDS

_HEADER = re.compile(r"^--\s*(name|type|params|index):\s*(.*?)\s*$")
_PARAM = re.compile(r"^\$(\d+)\s+(\w+)\s+([\w\[\]]+)$")
_PLACEHOLDER = re.compile(r"\$(\d+)")


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
    doc: str
    sql: str
    path: str


def for_sqlglot(sql: str) -> str:
    """sqlglot 30 reads ``$1,$2`` as the start of a dollar-quoted string: space after ``$n``."""
    return re.sub(r"(\$\d+)(?=\S)", r"\1 ", sql)


def parse_query(text: str, path: str) -> Query:
    """A query file's header and body; a malformed header names the file and line."""
    fields: dict[str, str] = {}
    doc: list[str] = []
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match and not body:
            fields[match[1]] = match[2]
        elif line.startswith("--") and not body:
            doc.append(line.lstrip("- ").rstrip())
        elif line.strip():
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
    return Query(fields["name"], fields["type"], params, fields["index"], " ".join(doc), sql, path)


def _param(text: str, path: str) -> Param:
    match = _PARAM.match(text.strip())
    if match is None:
        raise UsageError(f"{path}: parameter {text.strip()!r} is not '$n name type'")
    return Param(int(match[1]), match[2], match[3])


def load_catalog(folder: Path | None = None) -> dict[str, Query]:
    """Every query of the catalog (the packaged one by default), by name."""
    if folder is None:
        files = sorted(
            (f.name, f.read_text())
            for f in resources.files("phasegate").joinpath("sql", "queries").iterdir()
            if f.name.endswith(".sql")
        )
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
