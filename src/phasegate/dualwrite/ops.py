"""The app's writes, each turning a request into a :class:`Change`.

Creations (send a message, post, create an invite, request a connection, add a
friend, record a game, register) need no current state. Updates (mark a thread
read, check in a streak, redeem an invite, accept or block, delete a user with
its cascade) read the current rows from Postgres, the source of truth during
dual-write; when Postgres cannot be read they are refused (nothing written, the
caller retries), since an update computed from KV alone could overwrite newer
Postgres state. A request may carry its own ``id`` (and ``at``, epoch ms) so a
retry is the same write; a retried update finds its work done and changes
nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from phasegate.deadline import within
from phasegate.dualwrite.change import Change, select_sql
from phasegate.handles import canonical_handle
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Record
from phasegate.mappings.board import CATEGORIES
from phasegate.mappings.games import GAME_TYPES
from phasegate.mappings.invites import INVITE_ALPHABET
from phasegate.values import DecodeError, base36

Json = dict[str, Any]
TEXT_LIMIT = 2000
PG_TIMEOUT_S = 2.0  # wait this long for a Postgres connection before counting it failed
BADGES = (("verified_builder", 7), ("dedicated_builder", 30))


class WriteError(ValueError):
    """A write request the app would refuse (names the field)."""


class StoresDownError(RuntimeError):
    """Nothing was written and nothing acknowledged: the caller keeps the write."""


class State:
    """Current rows, read from Postgres."""

    def __init__(self, pool: AsyncConnectionPool[Any], timeout_s: float = PG_TIMEOUT_S) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self.behind = False  # Postgres has journaled writes it has not received

    async def rows(self, type_id: str, where: str, params: tuple[Any, ...]) -> list[Record]:
        if self.behind:
            raise StoresDownError(
                f"Postgres has journaled writes it has not received yet, so its {type_id} "
                "may be stale: nothing was written (retry)"
            )
        mapping = MAPPINGS[type_id]
        query = select_sql(mapping, where)

        async def fetch() -> list[Record]:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                cur = await conn.execute(query, params)
                return [mapping.from_row(row) for row in await cur.fetchall()]

        try:
            return await within(fetch(), self.timeout_s, "Postgres")
        except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            raise StoresDownError(
                f"Postgres is needed to read the current {type_id} and is unreachable: "
                f"nothing was written ({exc})"
            ) from exc

    async def one(self, type_id: str, where: str, params: tuple[Any, ...]) -> Record | None:
        found = await self.rows(type_id, where, params)
        return found[0] if found else None


Op = Callable[[State, Json, datetime], Awaitable[Change]]


def now_utc(body: Json) -> datetime:
    """The write's moment: the request's ``at`` (epoch ms, for exact retries) or now.

    >>> now_utc({"at": 1767801301123}).isoformat()
    '2026-01-07T15:55:01.123000+00:00'
    """
    at = body.get("at")
    ms = int(at) if isinstance(at, int) else int(time.time() * 1000)
    # whole milliseconds exactly (ms / 1000 as a float can land a microsecond off,
    # and KV keeps milliseconds)
    return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)


def handle(body: Json, name: str) -> str:
    raw = body.get(name)
    if not isinstance(raw, str) or not raw.strip():
        raise WriteError(f"{name} is required")
    try:
        return canonical_handle(raw)
    except DecodeError as exc:
        raise WriteError(f"{name}: {exc.reason}") from None


def _text(body: Json, name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise WriteError(f"{name} must be 1 to {limit} characters")
    return value


def _id(body: Json, made: str) -> str:
    given = body.get("id")
    if given is None:
        return made
    if not isinstance(given, str) or not 0 < len(given) <= 100:
        raise WriteError("id must be a string of 1 to 100 characters")
    return given


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def decode_value(type_id: str, variant: str, key: str, value: bytes) -> Record:
    """A KV value the writer built, decoded by the type's mapping (the Postgres row)."""
    decoded = MAPPINGS[type_id].decode([(variant, KvEntry(key, "string", value))])
    if len(decoded.records) != 1:
        problems = "; ".join(f.detail for f in decoded.findings) or "no record"
        raise WriteError(f"{key}: {problems}")
    return next(iter(decoded.records.values()))


async def _create(state: State, op: str, type_id: str, record: Record, *, retried: bool) -> Change:
    """A create's change: the record, or nothing when the request named the record's
    key (so may be a retry) and Postgres already holds it (upserting it again would
    undo later updates, e.g. a read flag). While Postgres cannot say, the create
    goes ahead: its upsert is idempotent."""
    column = MAPPINGS[type_id].key_columns[0]
    change = Change(op)
    if retried:
        try:
            existing = await state.one(type_id, f"{column} = %s", (record[column],))
        except StoresDownError:
            existing = None
        if existing is not None:
            change.see(type_id, existing)
            return change
    change.put(type_id, record)
    return change


async def send_message(state: State, body: Json, at: datetime) -> Change:
    sender, to = handle(body, "from"), handle(body, "to")
    text = _text(body, "text", TEXT_LIMIT)
    msg_id = _id(body, f"msg_{base36(_ms(at))}{secrets.token_hex(2)[:3]}")
    value = {
        "id": msg_id,
        "from": sender,
        "to": to,
        "text": text,
        "body": text,
        "payload": None,
        "v": 2,
        "signature": None,
        "signatureVerified": False,
        "createdAt": _ms(at),
        "read": False,
        "consent": "accepted",
    }
    record = decode_value("messages", "scheme2", f"msg:{msg_id}", orjson.dumps(value))
    return await _create(state, "send_message", "messages", record, retried="id" in body)


async def mark_thread_read(state: State, body: Json, at: datetime) -> Change:
    """``handle`` has read what ``other`` sent it; each message is rewritten as
    ``msg:{id}``, which takes precedence over its older copies."""
    reader, other = handle(body, "handle"), handle(body, "other")
    sent = await state.rows(
        "messages",
        "LEAST(from_user, to_user) = LEAST(%s, %s) AND GREATEST(from_user, to_user) = "
        "GREATEST(%s, %s) AND to_user = %s AND from_user = %s",
        (reader, other, reader, other, reader, other),
    )
    change = Change("mark_thread_read")
    for record in sorted(sent, key=lambda r: r["id"]):
        if record["read"]:
            change.see("messages", record)
            continue
        meta = dict(record["metadata"] or {})
        meta["kv_schemes"] = sorted({*meta.get("kv_schemes", []), 2})
        change.put("messages", {**record, "read": True, "read_at": at, "metadata": meta})
    return change


async def board_post(state: State, body: Json, at: datetime) -> Change:
    author = handle(body, "author")
    content = _text(body, "content", 500)
    category = body.get("category") or "general"
    if category not in CATEGORIES:
        raise WriteError(f"category must be one of {', '.join(CATEGORIES)}")
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise WriteError("tags must be a list of strings")
    entry_id = _id(body, f"entry_{_ms(at)}_{secrets.token_hex(4)}")
    value: Json = {
        "id": entry_id,
        "author": author,
        "content": content,
        "category": category,
        "tags": tags,
        "timestamp": _ms(at),
        "reactions": {},
        "comments": [],
        "metadata": {},
    }
    record = decode_value("board", "entry", f"board:entry:{entry_id}", orjson.dumps(value))
    return await _create(state, "board_post", "board", record, retried="id" in body)


async def streak_checkin(state: State, body: Json, at: datetime) -> Change:
    """Today counts once; yesterday's streak goes on, an older one restarts at 1.
    JSON-shaped streaks keep their active days and earn badges at 7 and 30 days."""
    who = handle(body, "handle")
    day = at.date()
    if "day" in body:
        try:
            day = date.fromisoformat(str(body["day"]))
        except ValueError:
            raise WriteError("day must be YYYY-MM-DD") from None
    row = await state.one("streaks", "handle = %s", (who,))
    change = Change("streak_checkin")
    if row is not None and row["last_active"] is not None and row["last_active"] >= day:
        change.see("streaks", row)
        return change  # already counted (a retry, or an older day)
    owned = await state.rows("achievements", "handle = %s", (who,))
    current = 1
    if row is not None and row["last_active"] == day - timedelta(days=1):
        current = (row["current_streak"] or 0) + 1
    hash_shaped = row is not None and row["total_days"] is not None
    streak = {
        "handle": who,
        "current_streak": current,
        "longest_streak": max(current, (row or {}).get("longest_streak") or 0),
        "total_days": row["total_days"] + 1 if row is not None and hash_shaped else None,
        "last_active": day,
        "active_days": None if hash_shaped else [*((row or {}).get("active_days") or []), day],
        "metadata": (row or {}).get("metadata"),
    }
    change.put("streaks", streak)
    if not hash_shaped:
        have = {a["badge"] for a in owned}
        for achievement in owned:
            change.put("achievements", achievement)
        for badge, need in BADGES:
            if current >= need and badge not in have:
                change.put("achievements", {"handle": who, "badge": badge, "unlocked_at": at})
    return change


async def invite_create(state: State, body: Json, at: datetime) -> Change:
    creator = handle(body, "handle")
    letters = "".join(ch for ch in creator if ch.isalpha())[:4].upper() or "VIBE"
    picks = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(4))
    code = body.get("code") or f"VIBE-{picks}-{letters}"
    if not isinstance(code, str):
        raise WriteError("code must be a string")
    return await _create(
        state,
        "invite_create",
        "invites",
        {
            "code": code,
            "created_by": creator,
            "used_by": None,
            "used_at": None,
            "expires_at": at + timedelta(days=30),
            "created_at": at,
            "status": "available",
            "bonus_for_inviting": None,
            "metadata": None,
        },
        retried="code" in body,
    )


async def invite_redeem(state: State, body: Json, at: datetime) -> Change:
    who = handle(body, "handle")
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise WriteError("code is required")
    row = await state.one("invites", "code = %s", (code,))
    if row is None:
        raise WriteError(f"invite {code}: no such code")
    change = Change("invite_redeem")
    if row["status"] == "used" and row["used_by"] == who:
        change.see("invites", row)
        return change  # a retry
    if row["status"] != "available":
        raise WriteError(f"invite {code}: status is {row['status']}, not available")
    if row["expires_at"] is not None and row["expires_at"] < at:
        raise WriteError(f"invite {code}: expired at {row['expires_at'].isoformat()}")
    change.put("invites", {**row, "used_by": who, "used_at": at, "status": "used"})
    return change


async def _connection(state: State, body: Json) -> tuple[str, str, Record | None]:
    frm, to = handle(body, "from"), handle(body, "to")
    if frm == to:
        raise WriteError("from and to must differ")
    row = await state.one("connections", "from_user = %s AND to_user = %s", (frm, to))
    return frm, to, row


async def connection_request(state: State, body: Json, at: datetime) -> Change:
    frm, to, row = await _connection(state, body)
    change = Change("connection_request")
    if row is not None:
        change.see("connections", row)
        return change  # asked before: pending, accepted or blocked stays as it is
    message = body.get("message")
    change.put(
        "connections",
        {
            "from_user": frm,
            "to_user": to,
            "status": "pending",
            "requested_at": at,
            "responded_at": None,
            "message": message if isinstance(message, str) else None,
            "grandfathered": None,
            "metadata": None,
        },
    )
    return change


async def _respond(state: State, body: Json, at: datetime, status: str) -> Change:
    frm, to, row = await _connection(state, body)
    change = Change(f"connection_{'accept' if status == 'accepted' else 'block'}")
    if row is not None and row["status"] == status:
        change.see("connections", row)
        return change  # a retry
    if status == "accepted" and (row is None or row["status"] != "pending"):
        raise WriteError(
            f"connection {frm}->{to}: no pending request"
            + ("" if row is None else f" (status {row['status']})")
        )
    base = row or {
        "from_user": frm,
        "to_user": to,
        "requested_at": at,
        "message": None,
        "grandfathered": None,
    }
    meta = {k: v for k, v in ((row or {}).get("metadata") or {}).items() if k != "kv_source"}
    change.put(
        "connections", {**base, "status": status, "responded_at": at, "metadata": meta or None}
    )
    return change


async def connection_accept(state: State, body: Json, at: datetime) -> Change:
    return await _respond(state, body, at, "accepted")


async def connection_block(state: State, body: Json, at: datetime) -> Change:
    return await _respond(state, body, at, "blocked")


async def friend_add(state: State, body: Json, at: datetime) -> Change:
    a, b = handle(body, "handle"), handle(body, "friend")
    if a == b:
        raise WriteError("handle and friend must differ")
    change = Change("friend_add")
    change.put("friends", {"handle": a, "friend": b})
    change.put("friends", {"handle": b, "friend": a})
    return change


async def game_record(state: State, body: Json, at: datetime) -> Change:
    game_type = body.get("type")
    if game_type not in GAME_TYPES:
        raise WriteError(f"type must be one of {', '.join(GAME_TYPES)}")
    players = body.get("players")
    if not isinstance(players, list) or len(players) < 2:
        raise WriteError("players must be a list of at least 2 handles")
    canonical = [handle({"players": p}, "players") for p in players]
    winner = handle(body, "winner") if body.get("winner") else None
    if winner is not None and winner not in canonical:
        raise WriteError("winner must be one of the players")
    state_obj = body.get("state") or {}
    if not isinstance(state_obj, dict):
        raise WriteError("state must be a JSON object")
    game_id = _id(body, f"game_{base36(_ms(at))}{secrets.token_hex(2)[:3]}")
    return await _create(
        state,
        "game_record",
        "games",
        {
            "id": game_id,
            "game_type": game_type,
            "players": canonical,
            "winner": winner,
            "state": state_obj,
            "metadata": None,
            "created_at": at,
            "updated_at": at,
        },
        retried="id" in body,
    )


async def user_register(state: State, body: Json, at: datetime) -> Change:
    who = handle(body, "handle")
    change = Change("user_register")
    existing = await state.one("users", "handle = %s", (who,))
    if existing is not None:
        change.see("users", existing)
        return change  # registered already (a retry, or taken: the profile says which)
    building = body.get("building") or "something cool"
    if not isinstance(building, str) or len(building) > 200:
        raise WriteError("building must be a string of at most 200 characters")
    inviter = handle(body, "invited_by") if body.get("invited_by") else None
    record: Record = {c.name: None for c in MAPPINGS["users"].columns}
    record.update(
        handle=who,
        username=who,
        building=building,
        status="active",
        invited_by=inviter,
        registry="https://slashvibe.dev",
        created_at=at,
        updated_at=at,
        registered_at=at,
        first_active_at=at,
        messages_sent=0,
        genesis=False,
        verified="none",
        is_agent=False,
        registry_status="active",
        metadata={"kv_sources": ["registry", "user"]},
    )
    change.put("users", record)
    return change


async def user_delete(state: State, body: Json, at: datetime) -> Change:
    """The user and every row that references it (what ``ON DELETE CASCADE`` removes),
    each a step of its own so KV loses them too."""
    who = handle(body, "handle")
    change = Change("user_delete")
    user = await state.one("users", "handle = %s", (who,))
    if user is None:
        return change  # gone already
    for type_id, mapping in MAPPINGS.items():
        if type_id == "users" or not mapping.handle_columns:
            continue
        where = " OR ".join(f"{c} = %s" for c in mapping.handle_columns)
        seen = set()
        rows = await state.rows(type_id, where, (who,) * len(mapping.handle_columns))
        for row in rows:
            if mapping.record_key(row) not in seen:
                seen.add(mapping.record_key(row))
                change.delete(type_id, row)
    change.delete("users", user)
    return change


OPS: dict[str, Op] = {
    "send_message": send_message,
    "mark_thread_read": mark_thread_read,
    "board_post": board_post,
    "streak_checkin": streak_checkin,
    "invite_create": invite_create,
    "invite_redeem": invite_redeem,
    "connection_request": connection_request,
    "connection_accept": connection_accept,
    "connection_block": connection_block,
    "friend_add": friend_add,
    "game_record": game_record,
    "user_register": user_register,
    "user_delete": user_delete,
}
# The data type each write is counted under (load stats, reports, Phase B ids).
OP_TYPES = {
    "send_message": "messages",
    "mark_thread_read": "messages",
    "board_post": "board",
    "streak_checkin": "streaks",
    "invite_create": "invites",
    "invite_redeem": "invites",
    "connection_request": "connections",
    "connection_accept": "connections",
    "connection_block": "connections",
    "friend_add": "friends",
    "game_record": "games",
    "user_register": "users",
    "user_delete": "users",
}
