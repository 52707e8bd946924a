"""Shadow reads: answer from the primary store, compare with the secondary.

Both answers are already canonical (the reference service's readers reduce
KV and Postgres to the same JSON through the mappings). A difference is first
*suspect*: after ``recheck_delay_s`` both stores are read again, and only a
difference that is still there counts, so in-flight writes are not divergence.
Divergence is kept per endpoint over a sliding window of comparisons; an
endpoint whose rate passes the budget (default 5%, the spec's) raises an alert.
The caller always gets the primary's answer, on time: the secondary read, the
comparison and the recheck run in the background, and a failure of the
secondary is recorded, never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from phasegate.app.reads import Json
from phasegate.deadline import within
from phasegate.mappings.declare import Params
from phasegate.mappings.declare import ReadPath as Endpoint
from phasegate.show import shown

Read = Callable[[Endpoint, Params], Awaitable[list[Json]]]
MAX_KEPT = 50  # mismatches kept per endpoint for the report


@dataclass(frozen=True)
class Mismatch:
    """A difference that survived the recheck: where, for which request, and what."""

    endpoint: str
    params: dict[str, Any]
    diff: str

    def __str__(self) -> str:
        return f"{self.endpoint} {self.params}: {self.diff}"


def first_difference(primary: list[Json], secondary: list[Json]) -> str | None:
    """The first differing row and field, or None when the answers are equal.

    >>> first_difference([{"id": 1, "text": "a"}], [{"id": 1, "text": "b"}])
    'row 0 (id 1) field text: primary "a", secondary "b"'
    >>> first_difference([{"id": 1}], [])
    'primary has 1 rows, secondary 0'
    """
    if primary == secondary:
        return None
    for i, (a, b) in enumerate(zip(primary, secondary, strict=False)):
        if a != b:
            key = next(iter(a.values()), None)
            for name in a.keys() | b.keys():
                if a.get(name) != b.get(name):
                    return (
                        f"row {i} ({next(iter(a))} {key}) field {name}: "
                        f"primary {shown(a.get(name), 80)}, secondary {shown(b.get(name), 80)}"
                    )
    return f"primary has {len(primary)} rows, secondary {len(secondary)}"


@dataclass
class Window:
    """The last ``size`` comparisons of one endpoint (True: diverged)."""

    size: int
    outcomes: deque[bool] = field(default_factory=deque)

    def add(self, diverged: bool) -> None:
        self.outcomes.append(diverged)
        while len(self.outcomes) > self.size:
            self.outcomes.popleft()

    @property
    def rate_percent(self) -> float:
        return 100.0 * sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0


class Shadow:
    """Reads ``primary`` for the caller and ``secondary`` to compare."""

    def __init__(
        self,
        primary: Read,
        secondary: Read,
        *,
        budget_percent: float = 5.0,
        window: int = 100,
        recheck_delay_s: float = 0.5,
        min_samples: int = 20,
        secondary_timeout_s: float = 2.0,
    ) -> None:
        self.secondary_timeout_s = secondary_timeout_s
        self.primary, self.secondary = primary, secondary
        self.budget_percent = budget_percent
        self.window_size = window
        self.recheck_delay_s = recheck_delay_s
        self.min_samples = min_samples
        self.windows: dict[str, Window] = {}
        self.mismatches: dict[str, list[Mismatch]] = {}
        self.secondary_errors: dict[str, int] = {}
        self.settled_suspects = 0
        self._pending: set[asyncio.Task[None]] = set()

    async def read(self, endpoint: Endpoint, params: Params) -> list[Json]:
        """The primary's answer, as soon as it has it: the secondary is read and
        compared in the background, so it neither changes nor delays the answer."""
        answer = await self.primary(endpoint, params)
        self._background(self._compare(endpoint, dict(params), answer))
        return answer

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _secondary(self, endpoint: Endpoint, params: Params) -> list[Json] | None:
        """The secondary's answer, or None (counted) when it fails or is late."""
        try:
            return await within(
                self.secondary(endpoint, params), self.secondary_timeout_s, "the secondary"
            )
        except Exception:
            self.secondary_errors[endpoint.name] = self.secondary_errors.get(endpoint.name, 0) + 1
            return None

    async def _compare(self, endpoint: Endpoint, params: Params, answer: list[Json]) -> None:
        other = await self._secondary(endpoint, params)
        if other is None:
            return
        if first_difference(answer, other) is None:
            self._window(endpoint).add(False)
        else:
            self._background(self._recheck(endpoint, params))

    async def _recheck(self, endpoint: Endpoint, params: Params) -> None:
        await asyncio.sleep(self.recheck_delay_s)
        try:
            answer = await self.primary(endpoint, params)
        except Exception:
            return  # the primary's own failure is the caller's business, not divergence
        other = await self._secondary(endpoint, params)
        if other is None:
            return
        diff = first_difference(answer, other)
        self._window(endpoint).add(diff is not None)
        if diff is None:
            self.settled_suspects += 1  # an in-flight write: not divergence
            return
        kept = self.mismatches.setdefault(endpoint.name, [])
        if len(kept) < MAX_KEPT:
            kept.append(Mismatch(endpoint.name, dict(params), diff))

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for every pending recheck (tests and reports)."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _window(self, endpoint: Endpoint) -> Window:
        return self.windows.setdefault(endpoint.name, Window(self.window_size))

    def divergence_percent(self, endpoint: str) -> float:
        window = self.windows.get(endpoint)
        return window.rate_percent if window else 0.0

    def alerts(self) -> list[str]:
        """Endpoints whose divergence over the window passes the budget."""
        out = []
        for name, window in sorted(self.windows.items()):
            if (
                len(window.outcomes) >= self.min_samples
                and window.rate_percent > self.budget_percent
            ):
                out.append(
                    f"{name}: {window.rate_percent:.1f}% of the last {len(window.outcomes)} "
                    f"shadow reads diverged (budget {self.budget_percent:g}%)"
                )
        return out

    def report(self) -> dict[str, Any]:
        """Per endpoint: comparisons in the window, divergence, kept mismatches."""
        return {
            name: {
                "compared": len(window.outcomes),
                "divergence_percent": round(window.rate_percent, 3),
                "mismatches": [str(m) for m in self.mismatches.get(name, [])],
                "secondary_errors": self.secondary_errors.get(name, 0),
            }
            for name, window in sorted(self.windows.items())
        }
