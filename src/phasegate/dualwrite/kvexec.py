"""Run :mod:`~phasegate.dualwrite.kvplan` commands on Redis, sync or async.

Plain commands go out in one MULTI/EXEC. The read-modify-write commands each
run in a WATCH transaction that is retried when the key changed underneath, so
two writers editing ``vibe:games`` at once both land.
"""

from __future__ import annotations

from typing import cast

import orjson
import redis
import redis.asyncio as aioredis

from phasegate.dualwrite.kvplan import RMW
from phasegate.mappings.declare import Cmd

RETRIES = 50


def edited(cmd: Cmd, current: bytes | None) -> bytes | None:
    """The new value of a read-modify-write key, or None when nothing changes.

    >>> edited(("OBJ-SET", "vibe:games", "g1", b'{"id":"g1"}'), b'{}')
    b'{"g1":{"id":"g1"}}'
    >>> edited(("ARRAY-DROP", "vibe:messages", ["m1"]), b'[{"id":"m1"},{"id":"m2"}]')
    b'[{"id":"m2"}]'
    >>> edited(("ARRAY-DROP", "vibe:messages", ["m9"]), b'[{"id":"m1"}]') is None
    True
    """
    name, _key, *args = cmd
    if name == "OBJ-SET":
        field, value = args
        obj = orjson.loads(current) if current else {}
        if value is None:
            if field not in obj:
                return None
            del obj[field]
        else:
            new = orjson.loads(value)
            if obj.get(field) == new:
                return None
            obj[field] = new
        return orjson.dumps(obj)
    if name == "ARRAY-DROP":
        if not current:
            return None
        items = orjson.loads(current)
        ids = set(args[0])
        kept = [i for i in items if not (isinstance(i, dict) and i.get("id") in ids)]
        return None if len(kept) == len(items) else orjson.dumps(kept)
    raise ValueError(f"not a read-modify-write string command: {name}")


def list_drops(cmd: Cmd, elements: list[bytes]) -> list[bytes]:
    """The elements of a list that ``LIST-DROP`` removes: bare ids or JSON objects with those ids.

    >>> list_drops(("LIST-DROP", "thread:a:b", ["m1"]), [b"m1", b'{"id":"m1"}', b"m2"])
    [b'm1', b'{"id":"m1"}']
    """
    ids = {i.encode() for i in cmd[2]}
    out = []
    for element in elements:
        if element in ids:
            out.append(element)
        elif element.lstrip().startswith(b"{"):
            try:
                obj = orjson.loads(element)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and str(obj.get("id", "")).encode() in ids:
                out.append(element)
    return out


def _split(cmds: list[Cmd]) -> tuple[list[Cmd], list[Cmd]]:
    plain = [c for c in cmds if c[0] not in RMW]
    rmw = [c for c in cmds if c[0] in RMW]
    return plain, rmw


def apply(kv: redis.Redis, cmds: list[Cmd]) -> None:
    plain, rmw = _split(cmds)
    if plain:
        with kv.pipeline(transaction=True) as pipe:
            for cmd in plain:
                pipe.execute_command(*cmd)  # type: ignore[no-untyped-call]
            pipe.execute()
    for cmd in rmw:
        key = cmd[1]
        for _ in range(RETRIES):
            with kv.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    if cmd[0] == "LIST-DROP":
                        elements = cast(list[bytes], pipe.lrange(key, 0, -1))
                        drops = list_drops(cmd, elements)
                        if not drops:
                            break
                        pipe.multi()
                        for element in drops:
                            pipe.lrem(key, 0, element)  # type: ignore[arg-type]
                    else:
                        value = edited(cmd, cast(bytes | None, pipe.get(key)))
                        if value is None:
                            break
                        pipe.multi()
                        pipe.set(key, value)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        else:
            raise redis.RedisError(f"{key}: changed underneath {RETRIES} times, not written")


async def apply_async(kv: aioredis.Redis, cmds: list[Cmd]) -> None:
    plain, rmw = _split(cmds)
    if plain:
        async with kv.pipeline(transaction=True) as pipe:
            for cmd in plain:
                pipe.execute_command(*cmd)
            await pipe.execute()
    for cmd in rmw:
        key = cmd[1]
        for _ in range(RETRIES):
            async with kv.pipeline(transaction=True) as apipe:
                try:
                    await apipe.watch(key)
                    if cmd[0] == "LIST-DROP":
                        elements = cast(list[bytes], await apipe.lrange(key, 0, -1))
                        drops = list_drops(cmd, elements)
                        if not drops:
                            break
                        apipe.multi()  # type: ignore[no-untyped-call]
                        for element in drops:
                            apipe.lrem(key, 0, element)  # type: ignore[arg-type]
                    else:
                        current = cast(bytes | None, await apipe.get(key))
                        value = edited(cmd, current)
                        if value is None:
                            break
                        apipe.multi()  # type: ignore[no-untyped-call]
                        apipe.set(key, value)
                    await apipe.execute()
                    break
                except redis.WatchError:
                    continue
        else:
            raise redis.RedisError(f"{key}: changed underneath {RETRIES} times, not written")
