"""messages, the app side: how a message is written to KV and read from it.

The decode of the three schemes is :mod:`phasegate.mappings.messages`; this
module is the rest of the type (kept apart for size): the current write shape
(scheme 2, ``msg:{id}`` with its inbox/outbox/thread lists), the delete that
removes a message from every scheme, and the KV reads of the inbox and thread
endpoints.

>>> thread_key("zed", "al")
'thread:al:zed'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import orjson

from phasegate.handles import canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings.declare import Cmd, KvSource, Params, Record, dumps, ms, present, pushed


def thread_key(a: str, b: str) -> str:
    """The ``thread:{a}:{b}`` list of a pair (sorted, as the app names it)."""
    first, second = sorted((a, b))
    return f"thread:{first}:{second}"


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
        **present(
            {"createdAt": ms(r["created_at"]), "read": r["read"], "readAt": ms(r["read_at"])}
        ),
    }
    if r["text"] is not None and "body" not in extra:
        obj["body"] = r["text"]
    if r["system_msg"]:
        obj["system"] = True
    return obj


def _lists(r: Record) -> tuple[str, ...]:
    return (
        f"inbox:{r['to_user']}",
        f"outbox:{r['from_user']}",
        thread_key(r["from_user"], r["to_user"]),
    )


def kv_put(r: Record, _companions: Sequence[Record] = ()) -> Iterator[Cmd]:
    yield ("SET", f"msg:{r['id']}", dumps(message_value(r)))
    for key in _lists(r):
        yield from pushed(key, r["id"])


def kv_delete(r: Record) -> Iterator[Cmd]:
    """Gone from every scheme, so a later decode cannot resurrect it."""
    yield ("DEL", f"msg:{r['id']}")
    for key in _lists(r):
        yield ("LREM", key, 0, r["id"])
    yield ("ARRAY-DROP", "vibe:messages", [r["id"]])
    yield ("LIST-DROP", f"messages:{r['to_user']}", [r["id"]])
    yield ("LIST-DROP", thread_key(r["from_user"], r["to_user"]), [r["id"]])


async def _scheme1_for(source: KvSource, *handles: str) -> KvEntry | None:
    """``vibe:messages`` reduced to the messages of ``handles``; the parse is kept
    while the value's length and both ends are unchanged."""
    async with source.kv.pipeline(transaction=False) as pipe:
        pipe.strlen("vibe:messages")
        pipe.getrange("vibe:messages", 0, 127)
        pipe.getrange("vibe:messages", -128, -1)
        length, head, tail = await pipe.execute()
    if not length:
        return None
    stamp = b"%d:" % length + head + tail
    async with source.lock:
        memo = source.memo.get("scheme1")
        if memo is None or memo[0] != stamp:
            raw = cast(bytes | None, await source.kv.get("vibe:messages"))
            by_handle: dict[str, list[Any]] = {}
            try:
                items = orjson.loads(raw or b"[]")
            except orjson.JSONDecodeError:
                items = None
            if not isinstance(items, list):  # undecodable: let the decoder report it
                return KvEntry("vibe:messages", "string", raw)
            for item in items:
                for side in ("from", "to"):
                    value = item.get(side) if isinstance(item, dict) else None
                    if isinstance(value, str):
                        by_handle.setdefault(_canon(value), []).append(item)
            memo = source.memo["scheme1"] = (stamp, by_handle)
    picked = {id(m): m for h in handles for m in memo[1].get(h, [])}
    return KvEntry("vibe:messages", "string", orjson.dumps(list(picked.values())))


async def _messages(source: KvSource, keys: list[str], handles: tuple[str, ...]) -> list[KvEntry]:
    """The lists, the ``msg:{id}`` their bare ids name, and scheme 1's share."""
    entries = await source.entries(keys)
    ids = {
        element.decode(errors="replace")
        for entry in entries
        if entry.rtype == "list" and entry.key.startswith(("inbox:", "thread:"))
        for element in entry.elements()
        if not element.lstrip().startswith(b"{")
    }
    entries += await source.entries([f"msg:{i}" for i in sorted(ids)])
    scheme1 = await _scheme1_for(source, *handles)
    return entries + ([scheme1] if scheme1 else [])


async def inbox(source: KvSource, p: Params) -> list[KvEntry]:
    h = p["handle"]
    return await _messages(source, [f"inbox:{h}", f"messages:{h}", f"unread:{h}"], (h,))


async def thread(source: KvSource, p: Params) -> list[KvEntry]:
    h, o = p["handle"], p["other"]
    return await _messages(source, [thread_key(h, o), f"unread:{h}", f"unread:{o}"], (h, o))


def _canon(raw: str) -> str:
    try:
        return canonical_handle(raw)
    except Exception:
        return raw
