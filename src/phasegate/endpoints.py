"""One table of the app's endpoints, gathered from the registered mappings.

Every read path and write op a mapping declares (:mod:`phasegate.mappings.declare`)
is here once, with its data type: the reference service routes them, the burst
rig sends writes by them, the Locust users build their tasks from them and the
shadow comparator and the load gate name them. A read path's parameters are its
catalogued query's (the ``-- params:`` header); their HTTP names and where they
come from (path or query string) follow from the path and the read's ``rename``.

>>> ENDPOINTS["games_by_player"].type_id, WRITES["user_delete"].method
('games', 'DELETE')
>>> [p.http for p in http_params(ENDPOINTS["games_by_player"])]
['player']
>>> request_of(ENDPOINTS["streak_of_handle"], {"handle": "al"})
('/api/streaks/al', {})
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from phasegate.errors import UsageError
from phasegate.mappings import MAPPINGS
from phasegate.mappings.declare import Params, ReadPath, WriteOp
from phasegate.queries import Query, load_catalog


def _gather() -> tuple[dict[str, ReadPath], dict[str, WriteOp]]:
    reads: dict[str, ReadPath] = {}
    writes: dict[str, WriteOp] = {}
    for type_id, mapping in MAPPINGS.items():
        for read in mapping.reads:
            if read.name in reads:
                raise UsageError(f"read path {read.name!r} of {type_id} is also declared earlier")
            reads[read.name] = dataclasses.replace(read, type_id=type_id)
        for op in mapping.writes:
            if op.name in writes or op.name in reads:
                raise UsageError(f"write op {op.name!r} of {type_id} is also declared earlier")
            writes[op.name] = dataclasses.replace(op, type_id=type_id)
    return reads, writes


READS, WRITES = _gather()
# The read paths an endpoint serves (a read path without an HTTP path is a
# query only, loaded in the database profile).
ENDPOINTS = {name: r for name, r in READS.items() if r.path}
# What the load profiles send over HTTP: endpoints with a weight.
LOADED_READS = {name: r for name, r in ENDPOINTS.items() if r.weight}
LOADED_WRITES = {name: w for name, w in WRITES.items() if w.weight}
# Every endpoint's data type, reads and writes (load stats, reports, test ids).
ENDPOINT_TYPES = {name: r.type_id for name, r in ENDPOINTS.items()} | {
    name: w.type_id for name, w in WRITES.items()
}


@dataclass(frozen=True)
class HttpParam:
    """A query parameter as the HTTP endpoint takes it."""

    name: str  # as the catalog names it
    http: str  # as the request names it
    where: Literal["path", "query"]
    kind: Literal["handle", "limit", "text"]


@cache
def catalog() -> dict[str, Query]:
    return load_catalog()


def query_of(read: ReadPath) -> Query:
    """The catalogued query of a read path (a usage error naming it if none)."""
    found = catalog().get(read.query)
    if found is None:
        raise UsageError(
            f"read path {read.name} ({read.type_id}) has no query {read.query!r} in the catalog",
            hint="add its .sql file and name it in the mapping's queries",
        )
    return found


_PARAMS: dict[str, tuple[HttpParam, ...]] = {}


def http_params(read: ReadPath) -> tuple[HttpParam, ...]:
    """The read path's parameters as its endpoint takes them (worked out once)."""
    if read.name not in _PARAMS:
        _PARAMS[read.name] = _http_params(read)
    return _PARAMS[read.name]


def _http_params(read: ReadPath) -> tuple[HttpParam, ...]:
    out = []
    for p in query_of(read).params:
        http = read.http_name(p.name)
        where: Literal["path", "query"] = "path" if f"{{{http}}}" in read.path else "query"
        kind: Literal["handle", "limit", "text"] = (
            "limit" if p.name == "limit" else "handle" if p.name in read.handles else "text"
        )
        out.append(HttpParam(p.name, http, where, kind))
    return tuple(out)


def required(read: ReadPath) -> frozenset[str]:
    """The query-string parameters a request must carry (``limit`` has a default)."""
    return frozenset(p.http for p in http_params(read) if p.where == "query" and p.kind != "limit")


def request_of(read: ReadPath, params: Params) -> tuple[str, dict[str, Any]]:
    """The URL path and query string of a request for ``params`` (catalog names)."""
    path, query = read.path, {}
    for p in http_params(read):
        if p.name not in params:
            continue
        if p.where == "path":
            path = path.replace(f"{{{p.http}}}", urllib.parse.quote(str(params[p.name]), safe=""))
        else:
            query[p.http] = params[p.name]
    return path, query


def write_path(op: WriteOp, body: dict[str, Any]) -> str:
    """The op's path with its ``{name}`` parts filled from the body."""
    return op.path.format(**{k: urllib.parse.quote(str(v), safe="") for k, v in body.items()})
