"""Request parameters drawn from the loaded data, so load hits real rows.

Per endpoint of the table (:mod:`phasegate.endpoints`), a list of parameter
sets: for a read path, the rows of its catalogued query's ``-- sample:`` header
(its LIMIT raised to take many), named as the query's parameters, with the read
path's ``load_fixed`` values laid over; for a write op, the rows of its
``load_sample`` (column names are body fields) with its ``load_body``. Written
to a JSON file the locustfiles read (``PHASEGATE_LOAD_PARAMS``); taken from
Postgres (read only), which after a backfill holds what KV holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import sqlglot
from sqlglot import exp

from phasegate.endpoints import READS, WRITES, query_of
from phasegate.errors import UsageError
from phasegate.mappings.declare import ReadPath
from phasegate.queries import for_sqlglot

LIMIT = 200  # parameter sets per endpoint
Sets = dict[str, list[dict[str, Any]]]


def with_limit(sql: str, limit: int) -> str:
    """A sample query taking ``limit`` rows (a query of one constant row stays one).

    >>> with_limit("SELECT to_user, 50 FROM messages GROUP BY to_user LIMIT 1", 200)
    'SELECT to_user, 50 FROM messages GROUP BY to_user LIMIT 200'
    """
    tree = sqlglot.parse_one(for_sqlglot(sql), read="postgres")
    if not isinstance(tree, exp.Select):
        raise UsageError(f"sample {sql!r} is not a SELECT")
    return tree.limit(limit).sql(dialect="postgres")


def _read_sets(conn: psycopg.Connection[Any], read: ReadPath, limit: int) -> list[dict[str, Any]]:
    query = query_of(read)
    if not query.sample:
        raise UsageError(
            f"{query.path}: read path {read.name} has no '-- sample:' header, "
            "so load has no parameters for it"
        )
    rows = conn.execute(with_limit(query.sample, limit)).fetchall()
    names = [p.name for p in query.params]
    fixed = dict(read.load_fixed)
    return [  # a NULL is no parameter the app would send
        {**dict(zip(names, row, strict=True)), **fixed} for row in rows if None not in row
    ]


def sample(conn: psycopg.Connection[Any], limit: int = LIMIT) -> Sets:
    """Parameter sets per loaded endpoint; one with no data of its own falls back to
    real handles for each parameter (small scales), as the app's users would send."""
    out: Sets = {}
    users = [
        r[0] for r in conn.execute("SELECT handle FROM users ORDER BY handle LIMIT %s", (limit,))
    ]
    for name, read in READS.items():
        if read.weight:
            out[name] = _read_sets(conn, read, limit)
    for name, op in WRITES.items():
        if op.weight and op.load_sample:
            cur = conn.execute(with_limit(op.load_sample, limit))
            columns = [d.name for d in cur.description or ()]
            fixed = dict(op.load_body)
            out[name] = [{**dict(zip(columns, row, strict=True)), **fixed} for row in cur]
            if not out[name]:  # every body field a real handle
                out[name] = [{**dict.fromkeys(columns, h), **fixed} for h in users]
    for name, read in READS.items():
        if read.weight and not out[name]:
            names = [p.name for p in query_of(read).params]
            fallback = [{p: 50 if p == "limit" else h for p in names} for h in users]
            out[name] = [{**sets, **dict(read.load_fixed)} for sets in fallback]
    if not users or not any(out.values()):
        raise UsageError(
            "no users and no rows for any endpoint in the database: load needs seeded, "
            "backfilled data",
            hint="phasegate seed, schema apply and backfill first (or run the sandbox default)",
        )
    return out


def write(params: Sets, path: Path) -> Path:
    path.write_text(json.dumps(params, default=str))
    return path
