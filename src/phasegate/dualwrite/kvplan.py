"""A change as Redis commands (no I/O here), by each data type's declared KV shape.

:func:`commands` turns a :class:`~phasegate.dualwrite.change.Change` into the
commands the app's current writer would issue: for a put, the mapping's
``kv_put`` (the record in the type's current shape, e.g. ``msg:{id}`` with its
inbox/outbox/thread lists, the other spellings a put supersedes removed); for a
delete, its ``kv_delete`` (the record gone from every shape that can hold it, so
a later decode cannot resurrect it, as the app's read-through did). A type
carried inside another's values (achievements in their streak's JSON) has no
commands of its own: its puts reach the carrier's ``kv_put`` as companions.
Every command is idempotent: list pushes remove the element first.

Three commands read before they write and run in a WATCH transaction
(:mod:`phasegate.dualwrite.kvexec`): ``OBJ-SET key field json|None`` (an entry
of a JSON object string, ``vibe:games``), ``ARRAY-DROP key ids`` (elements of
the ``vibe:messages`` array) and ``LIST-DROP key ids`` (list elements that are
those ids or JSON objects with those ids).

>>> from datetime import datetime, timezone
>>> from phasegate.dualwrite.change import Change
>>> c = Change("friend_add"); c.put("friends", {"handle": "ana", "friend": "bo"})
>>> commands(c)
[('SADD', 'friends:ana', 'bo')]
"""

from __future__ import annotations

from phasegate.dualwrite.change import Change
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Record, RecordKey
from phasegate.mappings.declare import Cmd

RMW = ("OBJ-SET", "ARRAY-DROP", "LIST-DROP")


def commands(change: Change) -> list[Cmd]:
    """The KV commands of a change, in step order."""
    out: list[Cmd] = []
    carried: dict[tuple[str, RecordKey], list[Record]] = {}
    for step in change.steps:
        carrier = MAPPINGS[step.type_id].carried_by
        if carrier and step.action == "put":
            key = tuple(step.record[c] for c in MAPPINGS[carrier].key_columns)
            carried.setdefault((carrier, key), []).append(step.record)
    for step in change.steps:
        mapping = MAPPINGS[step.type_id]
        if mapping.carried_by:
            continue  # written inside the carrier's value
        if step.action == "put":
            if mapping.kv_put is None:
                raise _no_shape(step.type_id, "kv_put")
            out.extend(mapping.kv_put(step.record, carried.get((step.type_id, step.key), [])))
        else:
            if mapping.kv_delete is None:
                raise _no_shape(step.type_id, "kv_delete")
            out.extend(mapping.kv_delete(step.record))
    return out


def _no_shape(type_id: str, what: str) -> ValueError:
    return ValueError(
        f"data type {type_id!r} declares no KV shape: its mapping has no {what} "
        "(see docs/adding-a-data-type.md)"
    )
