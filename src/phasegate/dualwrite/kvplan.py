"""Where each data type's record lives in KV, as Redis commands (no I/O here).

:func:`commands` turns a :class:`~phasegate.dualwrite.change.Change` into the
commands the app's current writer would issue: a put writes the record in the
type's current shape (``msg:{id}`` with its inbox/outbox/thread lists,
``board:entry:{id}`` with its index lists, ``streak:{handle}`` keeping its HASH
or JSON shape, a ``vibe:invites`` field, ``consent:{from}:{to}`` with its status
sets, ``friends:{h}`` members, a ``vibe:games`` entry, ``user:{h}`` plus the
``vibe:handles`` registry), and removes the other spellings a put supersedes.
A delete removes the record from every shape that can hold it, so a later
decode cannot resurrect it (the app's read-through did). Every command is
idempotent: list pushes remove the element first.

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

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import orjson

from phasegate.dualwrite.change import Change, Step
from phasegate.handles import spellings
from phasegate.mappings.base import Record
from phasegate.mappings.messages import thread_key

Cmd = tuple[Any, ...]
RMW = ("OBJ-SET", "ARRAY-DROP", "LIST-DROP")
STATUS_SETS = ("pending", "accepted", "blocked")
FEED_LENGTH = 100


def commands(change: Change) -> list[Cmd]:
    """The KV commands of a change, in step order."""
    out: list[Cmd] = []
    badges: dict[str, list[Record]] = {}
    for step in change.steps:
        if step.type_id == "achievements" and step.action == "put":
            badges.setdefault(step.record["handle"], []).append(step.record)
    for step in change.steps:
        out.extend(_step(step, badges))
    return out


def _step(step: Step, badges: dict[str, list[Record]]) -> Iterator[Cmd]:
    r, put = step.record, step.action == "put"
    match step.type_id:
        case "messages":
            yield from _message(r) if put else _message_gone(r)
        case "board":
            yield from _board(r, put)
        case "streaks":
            yield from (
                _streak(r, badges.get(r["handle"], []))
                if put
                else _gone_spellings("streak:", r["handle"])
            )
        case "achievements":
            return  # written inside their streak's JSON (see _streak)
        case "invites":
            yield from _invite(r, put)
        case "connections":
            yield from _connection(r, put)
        case "friends":
            yield ("SADD" if put else "SREM", f"friends:{r['handle']}", r["friend"])
        case "games":
            yield ("OBJ-SET", "vibe:games", r["id"], _dumps(_game(r)) if put else None)
        case "users":
            yield from _user(r) if put else _user_gone(r["handle"])
        case other:
            raise ValueError(f"no KV shape for data type {other!r}")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


def _present(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def _pushed(key: str, element: str, push: str = "RPUSH") -> Iterator[Cmd]:
    yield ("LREM", key, 0, element)
    yield (push, key, element)


def message_value(r: Record) -> dict[str, Any]:
    """A ``msg:{id}`` value (scheme 2) that decodes back to ``r``."""
    extra = {k: v for k, v in (r.get("metadata") or {}).items() if k != "kv_schemes"}
    obj = {
        **extra,
        "id": r["id"],
        "from": r["from_user"],
        "to": r["to_user"],
        "text": r["text"],
        "payload": r["payload"],
        **_present(
            {"createdAt": ms(r["created_at"]), "read": r["read"], "readAt": ms(r["read_at"])}
        ),
    }
    if r["text"] is not None and "body" not in extra:
        obj["body"] = r["text"]
    if r["system_msg"]:
        obj["system"] = True
    return obj


def _message(r: Record) -> Iterator[Cmd]:
    yield ("SET", f"msg:{r['id']}", _dumps(message_value(r)))
    for key in _message_lists(r):
        yield from _pushed(key, r["id"])


def _message_lists(r: Record) -> tuple[str, ...]:
    return (
        f"inbox:{r['to_user']}",
        f"outbox:{r['from_user']}",
        thread_key(r["from_user"], r["to_user"]),
    )


def _message_gone(r: Record) -> Iterator[Cmd]:
    yield ("DEL", f"msg:{r['id']}")
    for key in _message_lists(r):
        yield ("LREM", key, 0, r["id"])
    yield ("ARRAY-DROP", "vibe:messages", [r["id"]])
    yield ("LIST-DROP", f"messages:{r['to_user']}", [r["id"]])
    yield ("LIST-DROP", thread_key(r["from_user"], r["to_user"]), [r["id"]])


def board_value(r: Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "author": r["author"],
        "content": r["content"],
        "category": r["category"],
        "tags": r["tags"],
        "timestamp": ms(r["created_at"]),
        "reactions": r["reactions"],
        "comments": r["comments"],
        "metadata": r["metadata"],
    }


def _board(r: Record, put: bool) -> Iterator[Cmd]:
    indexes = ("board:entries", f"board:category:{r['category']}", f"board:user:{r['author']}")
    if not put:
        yield ("DEL", f"board:entry:{r['id']}")
        for key in indexes:
            yield ("LREM", key, 0, r["id"])
        return
    yield ("SET", f"board:entry:{r['id']}", _dumps(board_value(r)))
    for key in indexes:
        yield from _pushed(key, r["id"], "LPUSH")
    yield ("LTRIM", "board:entries", 0, FEED_LENGTH - 1)


def _day(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def _badge(a: Record) -> object:
    return (
        a["badge"]
        if a["unlocked_at"] is None
        else {"id": a["badge"], "unlockedAt": iso(a["unlocked_at"])}
    )


def _streak(r: Record, badges: list[Record]) -> Iterator[Cmd]:
    """HASH if the record has ``total_days`` (only the HASH shape has it), else JSON
    with its badges; other spellings of the key are superseded."""
    key = f"streak:{r['handle']}"
    yield from _gone_spellings("streak:", r["handle"], keep=key)
    extra = r.get("metadata") or {}
    if r["total_days"] is not None:
        fields = {
            **{k: v if isinstance(v, str) else _dumps(v) for k, v in extra.items()},
            "current": str(r["current_streak"]) if r["current_streak"] is not None else b"null",
            "longest": str(r["longest_streak"]) if r["longest_streak"] is not None else b"null",
            "totalDays": str(r["total_days"]),
            "lastActive": _day(r["last_active"]) or b"null",
        }
        yield ("DEL", key)
        yield ("HSET", key, *[x for pair in fields.items() for x in pair])
        return
    obj = {
        **extra,
        "current": r["current_streak"],
        "longest": r["longest_streak"],
        "lastActive": _day(r["last_active"]),
        "badges": [_badge(a) for a in sorted(badges, key=lambda a: a["badge"])],
    }
    if r["active_days"] is not None:
        obj["activeDays"] = [_day(d) for d in r["active_days"]]
    yield ("SET", key, _dumps(obj))


def _gone_spellings(prefix: str, handle: str, keep: str | None = None) -> Iterator[Cmd]:
    for spelling in spellings(handle):
        if f"{prefix}{spelling}" != keep:
            yield ("DEL", f"{prefix}{spelling}")


def invite_value(r: Record) -> dict[str, Any]:
    return {
        **(r.get("metadata") or {}),
        "code": r["code"],
        "created_by": r["created_by"],
        "created_at": iso(r["created_at"]),
        "created_at_ts": ms(r["created_at"]),
        "expires_at": iso(r["expires_at"]),
        "expires_at_ts": ms(r["expires_at"]),
        "used_by": r["used_by"],
        "used_at": iso(r["used_at"]),
        "status": r["status"],
        **(
            {}
            if r["bonus_for_inviting"] is None
            else {"bonus_for_inviting": r["bonus_for_inviting"]}
        ),
    }


def _invite(r: Record, put: bool) -> Iterator[Cmd]:
    index = f"vibe:invites:by:{r['created_by']}" if r.get("created_by") else None
    if put:
        yield ("HSET", "vibe:invites", r["code"], _dumps(invite_value(r)))
        if index:
            yield ("SADD", index, r["code"])
    else:
        yield ("HDEL", "vibe:invites", r["code"])
        if index:
            yield ("SREM", index, r["code"])


def connection_value(r: Record) -> dict[str, Any]:
    return {
        **(r.get("metadata") or {}),
        **_present(
            {
                "status": r["status"],
                "requestedAt": iso(r["requested_at"]),
                "respondedAt": iso(r["responded_at"]),
                "message": r["message"],
                "grandfathered": r["grandfathered"],
            }
        ),
    }


def _connection(r: Record, put: bool) -> Iterator[Cmd]:
    frm, to = r["from_user"], r["to_user"]
    for status in STATUS_SETS:
        yield ("SREM", f"consent:{status}:{to}", frm)
    if put:
        yield ("SET", f"consent:{frm}:{to}", _dumps(connection_value(r)))
        if r["status"] in STATUS_SETS:
            yield ("SADD", f"consent:{r['status']}:{to}", frm)
    else:
        yield ("DEL", f"consent:{frm}:{to}")


def _game(r: Record) -> dict[str, Any]:
    return {
        **(r.get("metadata") or {}),
        "id": r["id"],
        "type": r["game_type"],
        "players": r["players"],
        "state": r["state"],
        **({} if r["winner"] is None else {"winner": r["winner"]}),
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }


_USER_HASH = {
    "username": "username",
    "building": "building",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "invitedBy": "invited_by",
    "inviteCode": "invite_code",
    "publicKey": "public_key",
    "recoveryKey": "recovery_key",
    "registry": "registry",
    "keyRotatedAt": "key_rotated_at",
    "status": "status",
}
_REGISTRY = {
    "registeredAt": "registered_at",
    "first_active_at": "first_active_at",
    "last_active_at": "last_active_at",
    "messages_sent": "messages_sent",
    "genesis": "genesis",
    "verified": "verified",
    "x_handle": "x_handle",
    "github_handle": "github_handle",
    "isAgent": "is_agent",
    "operator": "operator",
    "agentType": "agent_type",
    "capabilities": "capabilities",
    "model": "model",
    "status": "registry_status",
}


def _json_value(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


def user_values(r: Record) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The ``user:{h}`` hash fields and the ``vibe:handles`` JSON of a user record."""
    fields: dict[str, bytes] = {}
    for name, column in _USER_HASH.items():
        value = _json_value(r.get(column))
        if value is not None:
            fields[name] = value.encode() if isinstance(value, str) else _dumps(value)
    meta = r.get("metadata") or {}
    registry = {
        **{k: v for k, v in meta.items() if k != "kv_sources"},
        "handle": r["handle"],
        **_present({name: _json_value(r.get(column)) for name, column in _REGISTRY.items()}),
    }
    for column, name in (("invited_by", "invited_by"), ("invite_code", "invite_code")):
        if r.get(column) is not None and "user" not in meta.get("kv_sources", ["user"]):
            registry[name] = r[column]
    return fields, registry


def _user(r: Record) -> Iterator[Cmd]:
    handle = r["handle"]
    sources = (r.get("metadata") or {}).get("kv_sources") or ["registry", "user"]
    fields, registry = user_values(r)
    yield from _gone_spellings("user:", handle)
    for spelling in spellings(handle)[1:]:
        yield ("HDEL", "vibe:handles", spelling)
    if "user" in sources:
        yield ("HSET", f"user:{handle}", *[x for pair in fields.items() for x in pair])
    if "registry" in sources:
        yield ("HSET", "vibe:handles", handle, _dumps(registry))
    else:
        yield ("HDEL", "vibe:handles", handle)


def _user_gone(handle: str) -> Iterator[Cmd]:
    """The user's own keys and the per-handle index keys; the records that
    reference it are deleted by steps of their own (the cascade)."""
    yield from _gone_spellings("user:", handle)
    for spelling in spellings(handle):
        yield ("HDEL", "vibe:handles", spelling)
    for prefix in ("inbox:", "outbox:", "unread:", "messages:", "friends:", "board:user:"):
        yield ("DEL", f"{prefix}{handle}")
    yield ("DEL", f"vibe:invites:by:{handle}")
    for status in STATUS_SETS:
        yield ("DEL", f"consent:{status}:{handle}")
