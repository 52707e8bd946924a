"""The reference service's metric stream and its run-time switches.

``GET /_phasegate/metrics?since=T`` returns every request answered since ``T``
(epoch seconds; at most the last :data:`KEPT`): time, endpoint, data type,
milliseconds and HTTP status, which the rollback guard (:mod:`phasegate.guard`)
judges. ``POST /_phasegate/admin/modes`` flips per-type read sources and write
modes while the service runs (``{"read": {"messages": "kv"}}``) and, for drills, injected delays
(``{"inject_delay": {"inbox": 600}}``, 0 clears); it needs the
header ``Authorization: Bearer <token>`` with the token the service was started
with (``PHASEGATE_ADMIN_TOKEN``), answers 401 without it, and is off (404)
when the service has no token.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from phasegate.app.modes import READ_SOURCES, WRITE_MODES, Modes
from phasegate.endpoints import ENDPOINT_TYPES

KEPT = 500_000  # requests kept for the metric stream (about 50 MB)


@dataclass
class Metrics:
    """Every answered request: (epoch s, endpoint, ms, HTTP status)."""

    samples: deque[tuple[float, str, float, int]] = field(
        default_factory=lambda: deque(maxlen=KEPT)
    )

    def record(self, endpoint: str, started: float, status: int) -> None:
        now = time.time()
        self.samples.append((now, endpoint, round((now - started) * 1000, 2), status))

    def since(self, t: float) -> list[list[Any]]:
        return [
            [at, name, ENDPOINT_TYPES.get(name, ""), ms, status]
            for at, name, ms, status in self.samples
            if at > t
        ]


def metrics_route(metrics: Metrics) -> Any:
    async def handle(request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            return JSONResponse({"error": "since: epoch seconds expected"}, status_code=400)
        return JSONResponse({"now": time.time(), "samples": metrics.since(since)})

    return handle


def modes_route(modes: Modes, token: str | None, inject: Any) -> Any:
    async def handle(request: Request) -> Response:
        if not token:
            return JSONResponse(
                {
                    "error": "the admin endpoint is off: start the service with "
                    "PHASEGATE_ADMIN_TOKEN"
                },
                status_code=404,
            )
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "a valid admin token is required"}, status_code=401)
        body = await request.json() if await request.body() else {}
        for name, ms in (body.get("inject_delay") or {}).items():  # a drill: slow one endpoint
            if ms:
                inject.delay_ms[name] = float(ms)
            else:
                inject.delay_ms.pop(name, None)
        changes = []
        for kind, allowed, table in (
            ("read", READ_SOURCES, modes.read),
            ("write", WRITE_MODES, modes.write),
        ):
            for type_id, value in (body.get(kind) or {}).items():
                if type_id not in table or value not in allowed:
                    return JSONResponse(
                        {"error": f"{kind} {type_id}={value}: unknown type or mode"},
                        status_code=400,
                    )
                changes.append((table, type_id, value))
        for table, type_id, value in changes:
            table[type_id] = value
        return JSONResponse({"read": modes.read, "write": modes.write})

    return handle
