"""The mappings, one module per data type, and the rule that classifies keys.

A key belongs to the first pattern whose glob and Redis TYPE both match. A key
whose name matches a type but whose TYPE does not is ``wrong_type``; a key in
the KV-only list stays in KV by design; anything else is ``unmapped``.

>>> classify("msg:abc", "string").type_id, classify("msg:abc", "string").variant
('messages', 'scheme2')
>>> classify("consent:pending:bo", "set").variant, classify("consent:al:bo", "string").variant
('status_set', 'record')
>>> classify("presence:al", "hash").kind, classify("cart:1", "string").kind
('kv_only', 'unmapped')
>>> classify("msg:abc", "hash").kind
'wrong_type'
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from phasegate.mappings import (
    achievements,
    board,
    connections,
    friends,
    games,
    invites,
    messages,
    streaks,
    users,
)
from phasegate.mappings.base import KeyPattern, Mapping

# In dependency order: users first (the foreign-key target).
MAPPINGS: dict[str, Mapping] = {
    m.type_id: m
    for m in (
        users.MAPPING,
        messages.MAPPING,
        board.MAPPING,
        streaks.MAPPING,
        achievements.MAPPING,
        invites.MAPPING,
        connections.MAPPING,
        friends.MAPPING,
        games.MAPPING,
    )
}
TYPE_IDS = tuple(MAPPINGS)

# Stays in KV by design: never migrated, never flagged as unmapped.
KV_ONLY = (
    "presence:*",
    "session:*",
    "typing:*",
    "ratelimit:*",
    "agent:rate:*",
    "agent:budget:*",
    "observations:count:*",
    "invite:*",
)


@dataclass(frozen=True)
class Classified:
    """Where a key belongs."""

    kind: Literal["mapped", "wrong_type", "kv_only", "unmapped"]
    type_id: str | None = None
    variant: str | None = None
    pattern: KeyPattern | None = None
    expected: tuple[str, ...] = ()


def _head(glob: str) -> str:
    return glob.split(":", 1)[0]


@cache
def _rules() -> dict[str, list[tuple[re.Pattern[str], str, KeyPattern | None]]]:
    """Patterns grouped by their first key segment, for a cheap lookup per key."""
    rules: dict[str, list[tuple[re.Pattern[str], str, KeyPattern | None]]] = {}
    for mapping in MAPPINGS.values():
        for pattern in mapping.patterns:
            rules.setdefault(_head(pattern.glob), []).append(
                (re.compile(fnmatch.translate(pattern.glob)), mapping.type_id, pattern)
            )
    for glob in KV_ONLY:
        rules.setdefault(_head(glob), []).append((re.compile(fnmatch.translate(glob)), "", None))
    return rules


def classify(key: str, rtype: str) -> Classified:
    """Classify one key by name and Redis TYPE."""
    expected: list[str] = []
    owner = None
    for regex, type_id, pattern in _rules().get(_head(key), ()):
        if not regex.match(key):
            continue
        if pattern is None:
            return Classified("kv_only")
        if pattern.rtype == rtype:
            return Classified("mapped", type_id, pattern.variant, pattern)
        owner = owner or type_id
        expected.append(pattern.rtype)
    if owner is not None:
        return Classified("wrong_type", owner, expected=tuple(expected))
    return Classified("unmapped")


__all__ = ["KV_ONLY", "MAPPINGS", "TYPE_IDS", "Classified", "Mapping", "classify"]
