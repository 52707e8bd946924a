"""Handle canonicalisation: one spelling per person in Postgres.

The app normalised handles three ways (or not at all). Canonical form: trim,
strip leading ``@``, lowercase; ``-`` and ``_`` are kept as written, because
real handles such as ``ops-agent`` have hyphens.

>>> canonical_handle("  @Seth ")
'seth'
>>> canonical_handle("ops-agent")
'ops-agent'
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from phasegate.findings import Finding
from phasegate.values import DecodeError

SYSTEM_ACCOUNTS = frozenset(
    {
        "vibe",
        "system",
        "echo",
        "ops-agent",
        "welcome-agent",
        "solienne",
        "scout",
        "claudevibe",
        "gptvibe",
        "geminivibe",
    }
)


def canonical_handle(raw: str, field: str = "handle") -> str:
    """The canonical handle; an empty result is an error.

    >>> canonical_handle("@@Ops-Agent")
    'ops-agent'
    """
    if not isinstance(raw, str):
        raise DecodeError(f"expected a handle, got {raw!r}", field)
    handle = canonical_text(raw)
    if not handle:
        raise DecodeError(f"empty handle {raw!r}", field)
    return handle


@lru_cache(maxsize=1 << 18)
def canonical_text(raw: str) -> str:
    """The canonical form of a handle string, empty when nothing is left (what
    :func:`canonical_handle` calls an error)."""
    # Cached: a keyspace names far fewer people than it holds handle fields (28k
    # spellings in 1.7 million at 12mo), and the readers route every message by its pair.
    return raw.strip().lstrip("@").strip().lower()


class HandleBook:
    """Collects the spellings seen for each canonical handle during one decode.

    >>> book = HandleBook("streaks")
    >>> book.canonical("@Seth", "streak:@Seth")
    'seth'
    >>> book.canonical("seth", "streak:seth")
    'seth'
    >>> [f.kind for f in book.findings()]
    ['merged_spellings']
    """

    def __init__(self, type_id: str) -> None:
        self.type_id = type_id
        self._spellings: dict[str, set[str]] = defaultdict(set)
        self._example: dict[str, str] = {}
        self._seen: dict[str, str] = {}  # raw spelling -> canonical handle

    def canonical(self, raw: str, key: str, field: str = "handle") -> str:
        handle = self._seen.get(raw)
        if handle is None:
            handle = canonical_handle(raw, field)
            self._seen[raw] = handle
            self._spellings[handle].add(raw)
            self._example.setdefault(handle, key)
        return handle

    def findings(self) -> list[Finding]:
        """One ``merged_spellings`` finding per handle written several ways.

        Suspected '-'/'_' duplicates are reported once, by the users mapping.
        """
        out = []
        for handle, spellings in sorted(self._spellings.items()):
            if len(spellings) > 1:
                shown = ", ".join(repr(s) for s in sorted(spellings))
                out.append(
                    Finding(
                        self.type_id,
                        "merged_spellings",
                        self._example[handle],
                        f"handle {handle!r} folded from {shown}",
                    )
                )
        return out


def suspected_duplicates(type_id: str, handles: set[str]) -> list[Finding]:
    """Handles equal once ``-`` and ``_`` are folded: reported, never merged.

    >>> [f.detail for f in suspected_duplicates("users", {"ops-agent", "ops_agent", "x"})]
    ["handles 'ops-agent', 'ops_agent' differ only by '-'/'_' (not merged)"]
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for handle in sorted(handles):
        groups[handle.replace("-", "_")].append(handle)
    out = []
    for members in groups.values():
        if len(members) > 1:
            key = f"user:{members[0]}"
            shown = ", ".join(repr(m) for m in members)
            out.append(
                Finding(
                    type_id,
                    "suspected_duplicate",
                    key,
                    f"handles {shown} differ only by '-'/'_' (not merged)",
                )
            )
    return out


def spellings(handle: str) -> list[str]:
    """The ways the app's un-normalising code paths wrote a handle into key names
    and hash fields (docs/data-model.md), canonical first.

    >>> spellings("seth")
    ['seth', '@seth', 'Seth', '@Seth', 'SETH', '@SETH', ' seth']
    """
    forms = [handle, handle.capitalize(), handle.upper()]
    out = [v for f in forms for v in (f, f"@{f}")] + [f" {handle}"]
    return list(dict.fromkeys(out))
