"""The cast of a seeded /vibe: handles, their messy spellings, and time.

Handles are lowercase words and digits; about 5% have a hyphen (like the real
``ops-agent``) and a few of those have an ``_`` twin, which the users mapping
must report as a suspected duplicate. Spellings are how code paths that did
not normalise wrote a handle: ``@Seth``, ``Seth``, `` seth``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from phasegate.handles import SYSTEM_ACCOUNTS

_WORDS = [
    "ada",
    "ash",
    "bay",
    "bex",
    "cam",
    "cy",
    "dax",
    "eli",
    "fen",
    "gus",
    "hal",
    "ivy",
    "jo",
    "kai",
    "lu",
    "max",
    "nia",
    "oz",
    "pax",
    "quin",
    "rae",
    "sol",
    "tay",
    "uma",
    "vic",
    "wes",
    "xan",
    "yuri",
    "zed",
    "nova",
    "river",
    "maple",
    "echo",
    "pixel",
    "byte",
    "forge",
    "spark",
    "atlas",
    "delta",
    "orbit",
    "comet",
    "lumen",
    "quartz",
    "sage",
    "tide",
    "vale",
    "wren",
]
# System and agent accounts that are registered in vibe:handles (the rest are in neither).
REGISTERED_AGENTS = ("ops-agent", "welcome-agent", "scout", "claudevibe", "gptvibe")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Clock:
    """Timestamps between ``anchor - span`` and ``anchor``; some in the last day."""

    anchor_ms: int
    span_days: int
    recent_share: float = 0.03

    def when(self, rng: random.Random) -> int:
        if rng.random() < self.recent_share:
            return self.anchor_ms - rng.randrange(1, 20 * 3_600_000)
        return self.anchor_ms - rng.randrange(DAY_MS, self.span_days * DAY_MS)


def make_handles(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct canonical user handles, deterministic for ``rng``."""
    handles: list[str] = []
    seen = set(SYSTEM_ACCOUNTS)
    while len(handles) < count:
        roll = rng.random()
        if roll < 0.05:
            handle = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
            if roll < 0.01 and handle.replace("-", "_") not in seen:
                twin = handle.replace("-", "_")
                seen.add(twin)
                handles.append(twin)
        else:
            handle = f"{rng.choice(_WORDS)}{rng.randrange(1, 10_000)}"
        if handle not in seen:
            seen.add(handle)
            handles.append(handle)
    return handles[:count]


def spell(rng: random.Random, handle: str, messy: float) -> str:
    """A spelling of ``handle`` as an un-normalising code path wrote it."""
    if rng.random() >= messy:
        return handle
    return rng.choice((f"@{handle}", handle.capitalize(), f"@{handle.upper()}", f" {handle}"))
