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
from datetime import date, datetime, timedelta

import orjson

from phasegate.dualwrite.change import Change
from phasegate.dualwrite.requests import (
    Json,
    State,
    WriteError,
    create,
    decode_value,
    epoch_ms,
    handle,
    request_id,
    text_field,
)
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Record
from phasegate.mappings.board import CATEGORIES
from phasegate.mappings.games import GAME_TYPES
from phasegate.mappings.invites import INVITE_ALPHABET
from phasegate.values import base36

TEXT_LIMIT = 2000
BADGES = (("verified_builder", 7), ("dedicated_builder", 30))


async def send_message(state: State, body: Json, at: datetime) -> Change:
    sender, to = handle(body, "from"), handle(body, "to")
    text = text_field(body, "text", TEXT_LIMIT)
    msg_id = request_id(body, f"msg_{base36(epoch_ms(at))}{secrets.token_hex(2)[:3]}")
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
        "createdAt": epoch_ms(at),
        "read": False,
        "consent": "accepted",
    }
    record = decode_value("messages", "scheme2", f"msg:{msg_id}", orjson.dumps(value))
    return await create(state, "send_message", "messages", record, retried="id" in body)


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
    content = text_field(body, "content", 500)
    category = body.get("category") or "general"
    if category not in CATEGORIES:
        raise WriteError(f"category must be one of {', '.join(CATEGORIES)}")
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise WriteError("tags must be a list of strings")
    entry_id = request_id(body, f"entry_{epoch_ms(at)}_{secrets.token_hex(4)}")
    value: Json = {
        "id": entry_id,
        "author": author,
        "content": content,
        "category": category,
        "tags": tags,
        "timestamp": epoch_ms(at),
        "reactions": {},
        "comments": [],
        "metadata": {},
    }
    record = decode_value("board", "entry", f"board:entry:{entry_id}", orjson.dumps(value))
    return await create(state, "board_post", "board", record, retried="id" in body)


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
    return await create(
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
    game_id = request_id(body, f"game_{base36(epoch_ms(at))}{secrets.token_hex(2)[:3]}")
    return await create(
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
