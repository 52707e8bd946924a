"""The HTTP service (Starlette on uvicorn): routes, pools, modes, injected faults.

Its routes are the endpoint table (:mod:`phasegate.endpoints`): every read path
and write op the registered mappings declare. For /vibe:

=====================================  =========================================
``GET /api/messages/inbox``            ``handle``, ``limit`` (default 50)
``GET /api/messages/thread``           ``handle``, ``other``, ``limit``
``POST /api/messages``                 JSON ``{from, to, text}``
``GET /api/board``                     ``limit``; with ``category``: that category
``POST /api/board``                    JSON ``{author, content, category, tags}``
``GET /api/streaks/{handle}``          one builder's streak
``GET /api/streaks``                   leaderboard, ``limit``
``GET /api/invites``                   ``handle``: the codes it created
``GET /api/connections/pending``       ``handle``: requests awaiting its answer
``GET /api/friends``                   ``handle``: its friends
``GET /api/games``                     ``player``
``GET /api/users/{handle}``            a profile (404 if none)
``GET /health``                        modes and store reachability
``GET /_phasegate/status``             write failures and shadow divergence, alerts
``GET /_phasegate/metrics?since=T``    every request since T: time, endpoint, ms, status
``POST /_phasegate/admin/modes``       per-type read/write switches (admin token)
=====================================  =========================================

The writes (JSON bodies; each may carry ``id`` and ``at`` so a retry is the
same write), one per write op of :data:`phasegate.endpoints.WRITES`:

=====================================  =========================================
``POST /api/messages/read``            ``{handle, other}``: mark a thread read
``POST /api/streaks/checkin``          ``{handle, day?}``
``POST /api/invites``                  ``{handle, code?}``: create
``POST /api/invites/redeem``           ``{code, handle}``
``POST /api/connections``              ``{from, to, message?}``: request
``POST /api/connections/accept``       ``{from, to}`` (``/block`` likewise)
``POST /api/friends``                  ``{handle, friend}``
``POST /api/games``                    ``{type, players, winner?, state?}``
``POST /api/users``                    ``{handle, building?, invited_by?}``
``DELETE /api/users/{handle}``         the user and everything referencing it
=====================================  =========================================

A write answers 201 with ``written`` / ``deleted`` (``type:key`` labels) and
``records`` (the rows written); a retry whose first attempt took effect writes
nothing and lists what it found in ``unchanged`` / ``unchanged_records``.

With ``shadow`` on, every read also reads the other store and compares
(:mod:`phasegate.shadow`); the caller still gets the configured source's answer.

``inject`` adds a delay (ms) or an error ratio (percent) to named endpoints, so a
gate can be shown failing on a slow or failing path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phasegate.app.admin import Metrics, metrics_route, modes_route
from phasegate.app.modes import Modes
from phasegate.app.reads import KvReads, PgReads, jsonable
from phasegate.dualwrite.requests import StoresDownError, WriteError
from phasegate.dualwrite.writer import Writer
from phasegate.endpoints import ENDPOINTS, WRITES, catalog, http_params, required
from phasegate.handles import canonical_handle
from phasegate.journal import Journal
from phasegate.mappings.declare import Params, ReadPath
from phasegate.shadow import Shadow
from phasegate.values import DecodeError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass
class Inject:
    """Faults on purpose: endpoint name -> delay ms, endpoint name -> error percent."""

    delay_ms: dict[str, float] = field(default_factory=dict)
    error_percent: dict[str, float] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def fails(self, name: str) -> bool:
        """Deterministic: every request whose running share crosses the ratio fails."""
        percent = self.error_percent.get(name, 0.0)
        if percent <= 0:
            return False
        n = self._counts[name] = self._counts.get(name, 0) + 1
        return int(n * percent / 100) > int((n - 1) * percent / 100)


def create_app(
    kv_url: str,
    pg_url: str,
    modes: Modes,
    inject: Inject | None = None,
    journal: Journal | None = None,
    *,
    shadow: bool = False,
    divergence_budget_percent: float = 5.0,
    write_failure_budget_percent: float = 1.0,
    store_timeout_s: float = 2.0,
    defects: frozenset[str] = frozenset(),
    admin_token: str | None = None,
) -> Starlette:
    inject = inject or Inject()
    metrics = Metrics()
    queries = catalog()
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            pg_url, min_size=2, max_size=10, kwargs={"autocommit": True}, open=False
        )
        await pool.open(wait=True, timeout=30)
        kv = aioredis.Redis.from_url(
            kv_url,
            max_connections=50,
            socket_timeout=store_timeout_s,
            socket_connect_timeout=store_timeout_s,
        )
        state["kv_client"] = kv
        state["pg"] = PgReads(pool, queries)
        state["kv"] = KvReads(kv, queries)
        state["writer"] = Writer(
            kv,
            pool,
            journal,
            failure_budget_percent=write_failure_budget_percent,
            timeout_s=store_timeout_s,
            defects=defects,
        )
        state["shadows"] = {
            source: Shadow(
                state[source].read,
                state["kv" if source == "pg" else "pg"].read,
                budget_percent=divergence_budget_percent,
                secondary_timeout_s=store_timeout_s,
            )
            for source in ("kv", "pg")
        }
        try:
            yield
        finally:
            await kv.aclose()
            await pool.close()

    def read_route(reads: list[ReadPath]) -> Callable[[Request], Awaitable[Response]]:
        """The read paths served on one path: the first whose required query
        parameters the request carries (most specific first)."""
        needs = sorted(((required(r), r) for r in reads), key=lambda pair: -len(pair[0]))

        async def handle(request: Request) -> Response:
            given = set(request.query_params)
            endpoint = next((r for need, r in needs if need <= given), needs[-1][1])

            async def answer() -> Response:
                p = _params(endpoint, request)
                source = modes.read[endpoint.type_id]
                if source == "pg" and "pg-read-touches-kv" in defects:
                    await state["kv_client"].exists("phasegate:defect")  # the defect itself
                reader = state["shadows"][source] if shadow else state[source]
                rows = await reader.read(endpoint, p)
                if endpoint.one:
                    if not rows:
                        return JSONResponse({"error": "not found"}, status_code=404)
                    return JSONResponse(rows[0], headers={"x-read-source": source})
                return JSONResponse(rows, headers={"x-read-source": source})

            started, status = time.time(), 500  # an unhandled error answers 500
            try:
                response = await _guarded(endpoint.name, inject, answer)
                status = response.status_code
                return response
            finally:
                metrics.record(endpoint.name, started, status)

        return handle

    def write_route(op: str) -> Callable[[Request], Awaitable[Response]]:
        type_id = WRITES[op].type_id

        async def handle(request: Request) -> Response:
            async def answer() -> Response:
                body = await request.json() if await request.body() else {}
                if not isinstance(body, dict):
                    raise WriteError("the body must be a JSON object")
                body.update(request.path_params)
                writer: Writer = state["writer"]
                change = await writer.write(op, modes.write[type_id], body)
                return JSONResponse(
                    {
                        "op": op,
                        "written": [s.label() for s in change.steps if s.action == "put"],
                        "deleted": [s.label() for s in change.steps if s.action == "delete"],
                        "records": [
                            {k: jsonable(v) for k, v in s.record.items()}
                            for s in change.steps
                            if s.action == "put"
                        ],
                        # found already as this write leaves them (a retry)
                        "unchanged": [s.label() for s in change.seen],
                        "unchanged_records": [
                            {k: jsonable(v) for k, v in s.record.items()} for s in change.seen
                        ],
                    },
                    status_code=201,
                )

            started, status = time.time(), 500  # an unhandled error answers 500
            try:
                response = await _guarded(op, inject, answer)
                status = response.status_code
                return response
            finally:
                metrics.record(op, started, status)

        return handle

    async def status(_request: Request) -> Response:
        writer: Writer = state["writer"]
        shadows: dict[str, Shadow] = state["shadows"]
        return JSONResponse(
            {
                "writes": writer.stats.as_json(),
                "journal_pending": len(journal.pending()) if journal else None,
                "shadow": {s: shadows[s].report() for s in shadows} if shadow else None,
                "alerts": [
                    *([a] if (a := writer.stats.alert()) else []),
                    *(a for s in shadows.values() for a in s.alerts()),
                ],
            }
        )

    async def health(_request: Request) -> Response:
        return JSONResponse({"modes": {"read": modes.read, "write": modes.write}})

    by_path: dict[str, list[ReadPath]] = {}
    for endpoint in ENDPOINTS.values():
        by_path.setdefault(endpoint.path, []).append(endpoint)
    routes = [
        Route("/health", health),
        Route("/_phasegate/status", status),
        Route("/_phasegate/metrics", metrics_route(metrics)),
        Route("/_phasegate/admin/modes", modes_route(modes, admin_token, inject), methods=["POST"]),
        *(Route(op.path, write_route(name), methods=[op.method]) for name, op in WRITES.items()),
        *(Route(path, read_route(reads)) for path, reads in by_path.items()),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class _BadRequestError(ValueError):
    pass


def _params(endpoint: ReadPath, request: Request) -> Params:
    """The read path's query parameters from the request (catalog names)."""
    out: Params = {}
    for p in http_params(endpoint):
        raw = (request.path_params if p.where == "path" else request.query_params).get(p.http)
        if p.kind == "limit":
            out[p.name] = _limit(raw)
            continue
        if not raw:
            raise _BadRequestError(f"{p.http} is required")
        if p.kind == "handle":
            try:
                out[p.name] = canonical_handle(str(raw))
            except DecodeError as exc:
                raise _BadRequestError(f"{p.http}: {exc.reason}") from None
        else:
            out[p.name] = str(raw)
    return out


def _limit(raw: str | None) -> int:
    raw = raw or str(DEFAULT_LIMIT)
    if not raw.isdigit() or not 0 < int(raw) <= MAX_LIMIT:
        raise _BadRequestError(f"limit must be 1 to {MAX_LIMIT}")
    return int(raw)


async def _guarded(
    name: str, inject: Inject, answer: Callable[[], Awaitable[Response]]
) -> Response:
    """Injected delay and errors first; bad input is a 400 naming the field."""
    if name in inject.delay_ms:
        await asyncio.sleep(inject.delay_ms[name] / 1000)
    if inject.fails(name):
        return JSONResponse({"error": f"injected failure on {name}"}, status_code=500)
    try:
        return await answer()
    except StoresDownError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    except (_BadRequestError, WriteError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
