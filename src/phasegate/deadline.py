"""A deadline that holds even when cancelling the work takes longer.

``asyncio.wait_for`` waits for the cancelled work to finish. Cancelling a
psycopg query on a server that does not answer (stopped with SIGSTOP, or behind
a stalled link) waits for a cancel request of its own, up to 10 s, so a 0.5 s
deadline became 10 s. :func:`within` answers at the deadline and lets the
cancelled work wind down in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
_winding_down: set[asyncio.Task[Any]] = set()  # keep references until they end


async def within(work: Awaitable[T], seconds: float, what: str) -> T:
    """``work``'s result, or :class:`TimeoutError` after ``seconds`` (the work is
    cancelled and finishes in the background)."""
    task = asyncio.ensure_future(work)
    done, _pending = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    task.cancel()
    _winding_down.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"{what} did not answer within {seconds:g} s")


def _forget(task: asyncio.Task[Any]) -> None:
    _winding_down.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a late failure is expected, not news
