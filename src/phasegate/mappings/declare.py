"""What a mapping declares about the app around its data, and the helpers for it.

Besides keys, columns and decode (:mod:`phasegate.mappings.base`), a type says

- how a canonical record is written back to KV in the type's current shape:
  ``kv_put(record, companions)`` and ``kv_delete(record)`` return Redis commands
  (tuples, no I/O; see :mod:`phasegate.dualwrite.kvplan` for the three
  read-modify-write commands a shape may use besides plain Redis ones);
- its read paths (:class:`ReadPath`): a catalogued SQL query by name, the HTTP
  path the reference service serves it on, and the KV read that answers the
  same JSON (which keys the app reads, which decoded records it keeps, their
  order);
- its write operations (:class:`WriteOp`): the HTTP route and the function
  turning a request into a change, named as ``"module:function"`` so a mapping
  module never imports the writer machinery (which imports the registry).

Everything here is data and pure functions; the endpoint table
(:mod:`phasegate.endpoints`) gathers them from every registered mapping.

>>> from datetime import UTC
>>> iso(datetime(2026, 1, 7, 12, 0, tzinfo=UTC))
'2026-01-07T12:00:00.000Z'
>>> list(pushed("inbox:bo", "m1"))
[('LREM', 'inbox:bo', 0, 'm1'), ('RPUSH', 'inbox:bo', 'm1')]
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from phasegate.handles import spellings
from phasegate.keyspace import KvEntry

if TYPE_CHECKING:
    import redis.asyncio as aioredis

Cmd = tuple[Any, ...]
Record = dict[str, Any]
Params = dict[str, Any]
KvPut = Callable[[Record, Sequence[Record]], Iterable[Cmd]]
KvDelete = Callable[[Record], Iterable[Cmd]]


class KvSource(Protocol):
    """What a read path's KV read may use (the reference service's KV side)."""

    kv: aioredis.Redis  # the raw client, for reads beyond the helpers
    memo: dict[str, Any]  # kept across requests (a parse that is still valid)
    lock: asyncio.Lock

    async def entries(self, keys: Sequence[str]) -> list[KvEntry]:
        """Each existing key with its TYPE and whole value."""
        ...

    async def scan(self, pattern: str) -> list[str]:
        """Every key matching ``pattern``, sorted."""
        ...


Fetch = Callable[[KvSource, Params], Awaitable[list[KvEntry]]]


def everything(_record: Record, _params: Params) -> bool:
    return True


@dataclass(frozen=True)
class ReadPath:
    """One read path of the app, named as its catalogued query.

    ``path`` is the HTTP GET route (``{name}`` parts are taken from the path);
    the other parameters of the query come from the query string, named as in
    the catalog unless ``rename`` says otherwise; those in ``handles`` are
    canonicalized as handles, ``limit`` defaults to 50. A read path without a
    ``path`` is a query the app runs that no endpoint serves (it is loaded in
    the database profile only). ``one``: the endpoint answers one object, 404
    when there is none. ``weight`` is its share of load traffic (0: not loaded),
    ``load_fixed`` parameter values the load uses instead of sampled ones.
    """

    name: str
    path: str = ""
    fetch: Fetch | None = None
    wanted: Callable[[Record, Params], bool] = everything
    order: tuple[tuple[str, bool], ...] = ()  # (column, descending), as the SQL orders
    one: bool = False
    rename: tuple[tuple[str, str], ...] = ()  # (catalog name, HTTP name)
    handles: tuple[str, ...] = ("handle", "other")
    weight: int = 1
    load_fixed: tuple[tuple[str, Any], ...] = ()
    type_id: str = ""  # set by the endpoint table from the declaring mapping

    @property
    def query(self) -> str:
        return self.name

    def http_name(self, param: str) -> str:
        return dict(self.rename).get(param, param)


@dataclass(frozen=True)
class WriteOp:
    """One app write: its route, and the function (``"module:function"``, an
    ``async (state, body, at) -> Change``) that turns a request into a change.

    For load, ``load_sample`` is SQL whose rows (column names = body fields)
    give real values, ``load_body`` the fixed fields; ``weight`` 0 leaves the
    write out of load.
    """

    name: str
    method: str
    path: str
    run: str
    weight: int = 0
    load_sample: str = ""
    load_body: tuple[tuple[str, Any], ...] = ()
    type_id: str = ""  # set by the endpoint table from the declaring mapping

    def function(self) -> Callable[..., Awaitable[Any]]:
        """The op's function (its module imported on first use, then from sys.modules)."""
        module, _, name = self.run.partition(":")
        try:
            return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"write op {self.name}: cannot load {self.run!r}: {exc}") from exc


# The helpers KV shapes are written with.


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def day(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def present(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def pushed(key: str, element: str, push: str = "RPUSH") -> Iterator[Cmd]:
    """Push ``element`` once: removed first, so a retry leaves one copy."""
    yield ("LREM", key, 0, element)
    yield (push, key, element)


def hset(key: str, fields: dict[str, Any]) -> Cmd:
    return ("HSET", key, *[x for pair in fields.items() for x in pair])


def gone_spellings(prefix: str, handle: str, keep: str | None = None) -> Iterator[Cmd]:
    """``DEL`` of ``prefix{spelling}`` for every spelling of the handle but ``keep``."""
    for spelling in spellings(handle):
        if f"{prefix}{spelling}" != keep:
            yield ("DEL", f"{prefix}{spelling}")


def keys_of(*templates: str) -> Fetch:
    """A KV read of fixed keys, ``{handle}`` in a template read in every spelling."""

    async def fetch(source: KvSource, params: Params) -> list[KvEntry]:
        keys: list[str] = []
        for template in templates:
            if "{handle}" in template:
                keys += [template.format(handle=s) for s in spellings(params["handle"])]
            else:
                keys.append(template.format(**params))
        return await source.entries(keys)

    return fetch


def where_equal(**columns: str) -> Callable[[Record, Params], bool]:
    """Records whose ``column`` equals the parameter named beside it."""

    def wanted(record: Record, params: Params) -> bool:
        return all(record[c] == params[p] for c, p in columns.items())

    return wanted
