"""The HTTP service (Starlette on uvicorn): routes, pools, modes, injected faults.

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
=====================================  =========================================

The writes (JSON bodies; each may carry ``id`` and ``at`` so a retry is the
same write), one per op of :data:`phasegate.dualwrite.ops.OPS`:

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phasegate.app.modes import Modes
from phasegate.app.reads import ENDPOINTS, Endpoint, KvReads, Params, PgReads, jsonable
from phasegate.dualwrite.ops import OP_TYPES
from phasegate.dualwrite.requests import StoresDownError, WriteError
from phasegate.dualwrite.writer import Writer
from phasegate.handles import canonical_handle
from phasegate.journal import Journal
from phasegate.queries import load_catalog
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
) -> Starlette:
    inject = inject or Inject()
    catalog = load_catalog()
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
        state["pg"] = PgReads(pool, catalog)
        state["kv"] = KvReads(kv, catalog)
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

    def read_route(
        endpoint: Endpoint, params: Callable[[Request], Params], one: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            async def answer() -> Response:
                p = params(request)
                source = modes.read[endpoint.type_id]
                reader = state["shadows"][source] if shadow else state[source]
                rows = await reader.read(endpoint, p)
                if one:
                    if not rows:
                        return JSONResponse({"error": "not found"}, status_code=404)
                    return JSONResponse(rows[0], headers={"x-read-source": source})
                return JSONResponse(rows, headers={"x-read-source": source})

            return await _guarded(endpoint.name, inject, answer)

        return handle

    def write_route(op: str) -> Callable[[Request], Awaitable[Response]]:
        type_id = OP_TYPES[op]

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

            return await _guarded(op, inject, answer)

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

    async def board(request: Request) -> Response:
        if "category" in request.query_params:
            return await board_by_category(request)
        return await board_feed(request)

    board_feed = read_route(ENDPOINTS["board_feed"], lambda r: {"limit": _limit(r)})
    board_by_category = read_route(
        ENDPOINTS["board_by_category"],
        lambda r: {"category": r.query_params["category"], "limit": _limit(r)},
    )

    async def health(_request: Request) -> Response:
        return JSONResponse({"modes": {"read": modes.read, "write": modes.write}})

    routes = [
        Route("/health", health),
        Route(
            "/api/messages/inbox",
            read_route(ENDPOINTS["inbox"], lambda r: {"handle": _handle(r), "limit": _limit(r)}),
        ),
        Route(
            "/api/messages/thread",
            read_route(
                ENDPOINTS["thread"],
                lambda r: {
                    "handle": _handle(r),
                    "other": _handle(r, "other"),
                    "limit": _limit(r),
                },
            ),
        ),
        Route("/_phasegate/status", status),
        Route("/api/messages", write_route("send_message"), methods=["POST"]),
        Route("/api/messages/read", write_route("mark_thread_read"), methods=["POST"]),
        Route("/api/board", board),
        Route("/api/board", write_route("board_post"), methods=["POST"]),
        Route("/api/streaks/checkin", write_route("streak_checkin"), methods=["POST"]),
        Route("/api/invites", write_route("invite_create"), methods=["POST"]),
        Route("/api/invites/redeem", write_route("invite_redeem"), methods=["POST"]),
        Route("/api/connections", write_route("connection_request"), methods=["POST"]),
        Route("/api/connections/accept", write_route("connection_accept"), methods=["POST"]),
        Route("/api/connections/block", write_route("connection_block"), methods=["POST"]),
        Route("/api/friends", write_route("friend_add"), methods=["POST"]),
        Route("/api/games", write_route("game_record"), methods=["POST"]),
        Route("/api/users", write_route("user_register"), methods=["POST"]),
        Route("/api/users/{handle}", write_route("user_delete"), methods=["DELETE"]),
        Route(
            "/api/streaks",
            read_route(ENDPOINTS["streak_leaderboard"], lambda r: {"limit": _limit(r)}),
        ),
        Route(
            "/api/streaks/{handle}",
            read_route(
                ENDPOINTS["streak_of_handle"], lambda r: {"handle": _handle(r, path=True)}, one=True
            ),
        ),
        Route(
            "/api/invites",
            read_route(ENDPOINTS["invites_by_creator"], lambda r: {"handle": _handle(r)}),
        ),
        Route(
            "/api/connections/pending",
            read_route(ENDPOINTS["pending_connections"], lambda r: {"handle": _handle(r)}),
        ),
        Route(
            "/api/friends",
            read_route(ENDPOINTS["friends_of_handle"], lambda r: {"handle": _handle(r)}),
        ),
        Route(
            "/api/games",
            read_route(ENDPOINTS["games_by_player"], lambda r: {"handle": _handle(r, "player")}),
        ),
        Route(
            "/api/users/{handle}",
            read_route(
                ENDPOINTS["user_by_handle"], lambda r: {"handle": _handle(r, path=True)}, one=True
            ),
        ),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class _BadRequestError(ValueError):
    pass


def _handle(request: Request, name: str = "handle", *, path: bool = False) -> str:
    raw = request.path_params.get(name) if path else request.query_params.get(name)
    if not raw:
        raise _BadRequestError(f"{name} is required")
    try:
        return canonical_handle(str(raw))
    except DecodeError as exc:
        raise _BadRequestError(f"{name}: {exc.reason}") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
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
