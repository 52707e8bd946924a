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


@dataclass(frozen=True)
class _Rule:
    """A compiled glob: an exact name, a prefix, or (otherwise) a regex."""

    glob: str
    type_id: str  # "" for the KV-only list
    pattern: KeyPattern | None

    @property
    def matcher(self) -> tuple[str, str | re.Pattern[str]]:
        body = self.glob[:-1]
        if not any(ch in self.glob for ch in "*?["):
            return "exact", self.glob
        if self.glob.endswith("*") and not any(ch in body for ch in "*?["):
            return "prefix", body
        return "regex", re.compile(fnmatch.translate(self.glob))


@cache
def _rules() -> dict[str, list[tuple[str, str | re.Pattern[str], _Rule]]]:
    """Rules grouped by their first key segment, for a cheap lookup per key."""
    rules: dict[str, list[tuple[str, str | re.Pattern[str], _Rule]]] = {}
    compiled = [_Rule(p.glob, m.type_id, p) for m in MAPPINGS.values() for p in m.patterns] + [
        _Rule(glob, "", None) for glob in KV_ONLY
    ]
    for rule in compiled:
        how, what = rule.matcher
        rules.setdefault(_head(rule.glob), []).append((how, what, rule))
    return rules


def _matches(key: str, how: str, what: str | re.Pattern[str]) -> bool:
    if how == "prefix":
        return key.startswith(what)  # type: ignore[arg-type]
    if how == "exact":
        return key == what
    return bool(what.match(key))  # type: ignore[union-attr]


def classify(key: str, rtype: str) -> Classified:
    """Classify one key by name and Redis TYPE."""
    expected: list[str] = []
    owner = None
    for how, what, rule in _rules().get(key.split(":", 1)[0], ()):
        if not _matches(key, how, what):
            continue
        if rule.pattern is None:
            return Classified("kv_only")
        if rule.pattern.rtype == rtype:
            return Classified("mapped", rule.type_id, rule.pattern.variant, rule.pattern)
        owner = owner or rule.type_id
        expected.append(rule.pattern.rtype)
    if owner is not None:
        return Classified("wrong_type", owner, expected=tuple(expected))
    return Classified("unmapped")


__all__ = ["KV_ONLY", "MAPPINGS", "TYPE_IDS", "Classified", "Mapping", "classify"]
