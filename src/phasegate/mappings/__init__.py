"""The mappings, one module per data type, and the rule that classifies keys.

The /vibe mappings are the default set; a user's own modules are added to the
registry through ``PHASEGATE_MAPPINGS`` or ``mappings`` in [tool.phasegate]
(comma-separated module names), or a ``phasegate.mappings`` entry point, so
another Redis-backed app uses every data gate without a fork.

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
import importlib
import importlib.metadata
import os
import re
from dataclasses import dataclass
from functools import cache, cached_property
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
# The /vibe types, before a user's own modules add theirs.
BUILT_IN: tuple[str, ...] = tuple(MAPPINGS)
# Stays in KV by design: never migrated, never flagged as unmapped.
_VIBE_KV_ONLY: tuple[str, ...] = (
    "presence:*",
    "session:*",
    "typing:*",
    "ratelimit:*",
    "agent:rate:*",
    "agent:budget:*",
    "observations:count:*",
    "invite:*",
)
# Why a mapping module of the user's could not be loaded (reported by the settings
# layer as a usage error, not here as a traceback at import time).
LOAD_ERRORS: dict[str, str] = {}


def _extra_module_names() -> list[str]:
    """``PHASEGATE_MAPPINGS``, else ``mappings`` in [tool.phasegate], then the
    ``phasegate.mappings`` entry points: comma-separated importable module names."""
    from phasegate.settings import load_pyproject

    raw = os.environ.get("PHASEGATE_MAPPINGS") or str(load_pyproject().get("mappings") or "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    names += [ep.value for ep in importlib.metadata.entry_points(group="phasegate.mappings")]
    return list(dict.fromkeys(names))


def _load_extra() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Add the user's mapping modules to the registry: each defines ``MAPPING`` (or
    ``MAPPINGS``, an iterable) and may extend the KV-only list with ``KV_ONLY``.
    Returns the modules loaded and their KV-only globs."""
    loaded: list[str] = []
    kv_only: list[str] = []
    for name in _extra_module_names():
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # reported by settings.resolve, named, with the cause
            LOAD_ERRORS[name] = f"{type(exc).__name__}: {exc}"
            continue
        found = getattr(module, "MAPPINGS", None) or [getattr(module, "MAPPING", None)]
        mappings = [m for m in found if isinstance(m, Mapping)]
        if not mappings:
            LOAD_ERRORS[name] = "defines no MAPPING (a phasegate.mappings.base.Mapping)"
            continue
        for mapping in mappings:
            if mapping.type_id in MAPPINGS:
                LOAD_ERRORS[name] = f"type {mapping.type_id!r} is already mapped"
                continue
            MAPPINGS[mapping.type_id] = mapping
        kv_only.extend(getattr(module, "KV_ONLY", ()))
        loaded.append(name)
    return tuple(loaded), tuple(kv_only)


VIBE_TYPES = tuple(MAPPINGS)
EXTRA_MODULES, _EXTRA_KV_ONLY = _load_extra()
EXTRA_TYPES = tuple(t for t in MAPPINGS if t not in VIBE_TYPES)  # the user's own
KV_ONLY = (*_VIBE_KV_ONLY, *_EXTRA_KV_ONLY)
TYPE_IDS = tuple(MAPPINGS)


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

    @cached_property
    def mapped(self) -> Classified:
        """What a key of this rule's pattern and TYPE is (one instance: it is frozen)."""
        assert self.pattern is not None
        return Classified("mapped", self.type_id, self.pattern.variant, self.pattern)

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
            return rule.mapped
        owner = owner or rule.type_id
        expected.append(rule.pattern.rtype)
    if owner is not None:
        return Classified("wrong_type", owner, expected=tuple(expected))
    return Classified("unmapped")


def variant_name(type_id: str, key: str) -> str:
    """The variant and key pattern of the KV key a record came from (``key#field``
    inside containers), for grouping differences; a borrowed key (achievements in
    streaks) by its first segment.

    >>> variant_name("messages", "vibe:messages#3"), variant_name("achievements", "streak:al")
    ('scheme1 vibe:messages', 'streak:*')
    """
    base = key.split("#", 1)[0]
    head = base.split(":", 1)[0]
    for how, what, rule in _rules().get(head, ()):
        if rule.type_id == type_id and rule.pattern is not None and _matches(base, how, what):
            return f"{rule.pattern.variant} {rule.glob}"
    return f"{head}:*"


__all__ = [
    "BUILT_IN",
    "EXTRA_MODULES",
    "EXTRA_TYPES",
    "KV_ONLY",
    "LOAD_ERRORS",
    "MAPPINGS",
    "TYPE_IDS",
    "Classified",
    "Mapping",
    "classify",
    "variant_name",
]
