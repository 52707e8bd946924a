"""``phasegate seed``: a /vibe keyspace in every real shape, deterministic per seed.

The same ``(seed, scale, anchor)`` always gives the same keyspace. Proportions
(see :data:`SHARES`) follow docs/data-model.md: all three message schemes at
once, mixed thread lists, dangling ids, both streak types, both consent
schemes, un-normalised and hyphenated handles, ``null`` hash fields, emoji and
long texts, KV-only keys with TTLs. No undecodable value is written: a seeded
store is a clean (if messy) migration; tests inject defects on top.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from phasegate.handles import SYSTEM_ACCOUNTS
from phasegate.mappings import EXTRA_TYPES, MAPPINGS
from phasegate.mappings.board import CATEGORIES
from phasegate.mappings.games import GAME_TYPES
from phasegate.seed import messages, own
from phasegate.seed.people import DAY_MS, REGISTERED_AGENTS, Clock, make_handles, spell
from phasegate.seed.shapes import (
    INVITE_ALPHABET,
    base36,
    dumps,
    hash_value,
    invite_code,
    iso,
    streak_hash,
    streak_json,
)
from phasegate.seed.writer import Keyspace


@dataclass(frozen=True)
class Scale:
    users: int
    messages: int
    board: int
    streaks: int
    invites: int
    connections: int
    friendships: int
    games: int
    span_days: int


# The spec's volumes: now, in 6 months, and at the 12-month upgrade trigger. The
# spec gives no number of games; game ids carry their creation time, so they
# change with the anchor hour, and at 20 games about one hour in seven had none
# in the 10% sample (the clean demo then said INCONCLUSIVE). With 100 games the
# chance is 0.9^100, about 3 in 100,000.
SCALES = {
    "now": Scale(100, 1_000, 500, 50, 200, 150, 150, 100, 90),
    "6mo": Scale(1_000, 50_000, 5_000, 500, 2_000, 1_500, 1_500, 200, 180),
    "12mo": Scale(10_000, 500_000, 50_000, 5_000, 20_000, 15_000, 15_000, 2_000, 365),
    # Ten times 12mo over the same year (5 million messages): the benchmarks' proof
    # that time grows linearly and memory stays flat. About 4 GB in Redis.
    "10x": Scale(100_000, 5_000_000, 500_000, 50_000, 200_000, 150_000, 150_000, 20_000, 365),
}
SPEC_SCALES = ("now", "6mo", "12mo")  # the spec's own volumes (tests run each)

SHARES = {
    "user_in_both_sources": 0.70,  # else half user:{h} only, half vibe:handles only
    "user_key_second_spelling": 0.02,  # user:{Spelling} beside user:{handle}, same data
    "user_null_field": 0.05,  # a hash field holding the bytes 'null'
    "user_missing_created": 0.05,  # no createdAt at all (stays NULL, never now())
    "board_newer_shape": 0.5,  # reactions/comments/metadata present
    "board_messy_author": 0.10,
    "streak_json": 0.5,  # else HASH
    "streak_second_spelling": 0.03,  # streak:@Name beside streak:name, older data
    "invite_used": 0.4,
    "consent_both_schemes": 0.6,  # else split between record only and set only
    "consent_stray_source": 0.1,
    "friend_one_sided": 0.03,
    "game_messy_player": 0.10,
}
STREAK_SPELLING_MESSY = 0.2


def generate(scale: str, seed: int, anchor_ms: int) -> Keyspace:
    """The whole keyspace for ``scale``, in memory."""
    size = SCALES[scale]
    rng = random.Random(f"phasegate:{seed}:{scale}")
    clock = Clock(anchor_ms, size.span_days)
    ks = Keyspace()
    people = make_handles(rng, size.users)
    _users(rng, clock, people, ks)
    messages.generate(rng, clock, people, size.messages, ks)
    _board(rng, clock, people, size.board, ks)
    _streaks(rng, clock, people, size.streaks, ks)
    _invites(rng, clock, people, size.invites, ks)
    _connections(rng, clock, people, size.connections, ks)
    _friends(rng, people, size.friendships, ks)
    _games(rng, clock, people, size.games, ks)
    _kv_only(rng, clock, people, ks)
    for type_id in EXTRA_TYPES:  # a user's own types, through their KV shape
        own_rng = random.Random(f"phasegate:{seed}:{scale}:{type_id}")
        own.seed(MAPPINGS[type_id], own_rng, clock, people, count=size.users, into=ks)
    return ks


def _users(rng: random.Random, clock: Clock, people: list[str], ks: Keyspace) -> None:
    for handle in [*people, *REGISTERED_AGENTS]:
        agent = handle in SYSTEM_ACCOUNTS
        roll = rng.random()
        in_hash = not agent and roll < SHARES["user_in_both_sources"] + 0.15
        in_registry = agent or roll < SHARES["user_in_both_sources"] or roll >= 0.85
        created = clock.when(rng)
        inviter = rng.choice(people) if rng.random() < 0.3 else None
        if in_hash:
            fields: dict[str, object] = {
                "username": handle,
                "building": rng.choice(("a game engine", "an agent", "something cool", None)),
                "createdAt": iso(created),
                "updatedAt": iso(created + rng.randrange(DAY_MS)),
                "invitedBy": inviter,
                "publicKey": f"ed25519:{rng.getrandbits(128):032x}" if rng.random() < 0.5 else None,
                "registry": "https://slashvibe.dev",
                "status": rng.choice(("active",) * 18 + ("suspended", "revoked")),
            }
            if rng.random() < SHARES["user_missing_created"]:
                del fields["createdAt"]
            if rng.random() < SHARES["user_null_field"]:
                fields["building"] = None
            if rng.random() < 0.1:
                fields["keyRotatedAt"] = iso(created + DAY_MS)
            # JS objects spread into HSET: a null building/invitedBy arrives as b"null",
            # other absent fields are simply missing.
            encoded = {
                k: hash_value(v)
                for k, v in fields.items()
                if v is not None or k in ("building", "invitedBy")
            }
            ks.hashes[f"user:{handle}"] = encoded
            if rng.random() < SHARES["user_key_second_spelling"]:
                ks.hashes[f"user:{handle.capitalize()}"] = dict(encoded)
        if in_registry:
            record: dict[str, object] = {"handle": handle}
            if rng.random() < 0.5:
                record["registeredAt"] = iso(created)
            record["registeredAtTs"] = created
            record.update(
                first_active_at=iso(created),
                last_active_at=iso(clock.when(rng)),
                messages_sent=rng.randrange(500),
                genesis=rng.random() < 0.1,
                verified=rng.choice(("none", "x", "farcaster", "github", "team")),
                status=rng.choice(("active", "dormant", "suspended")),
            )
            if rng.random() < 0.3:
                record["x_handle"] = handle.replace("-", "")
            if agent:
                record.update(
                    isAgent=True,
                    operator="vibe",
                    agentType="assistant",
                    capabilities=["dm", "board"],
                    model="claude",
                    system=True,
                )
            if rng.random() < 0.2:
                record.update(
                    one_liner="ships daily ✨", migrated_from_legacy=True, legacy_created_at=created
                )
            if inviter is not None and in_hash:
                record["invited_by"] = inviter
            ks.hashes["vibe:handles"][spell(rng, handle, 0.05)] = dumps(record)


def _board(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    entries: list[tuple[int, str, str, str]] = []
    for i in range(n):
        ms = clock.when(rng)
        category = rng.choice(CATEGORIES)
        if i == 0:
            entry_id, author = "welcome-001", "vibe"
        elif i == 1:
            entry_id, author = "shipped-001", "vibe"
        else:
            author = rng.choice(people)
            entry_id = (
                f"entry_{ms}_{rng.getrandbits(32):08x}"
                if rng.random() < 0.5
                else f"{category}_{ms}_{rng.getrandbits(20):x}"
            )
        obj: dict[str, object] = {
            "id": entry_id,
            "author": spell(rng, author, SHARES["board_messy_author"]),
            "content": messages.text(rng, 500),
            "category": category,
            "tags": rng.sample(("ai", "rust", "design", "music", "web", "🚀"), rng.randrange(3)),
            "timestamp": ms,
        }
        if rng.random() < SHARES["board_newer_shape"]:
            obj["reactions"] = {"🔥": rng.randrange(9)} if rng.random() < 0.6 else {}
            obj["comments"] = (
                [{"author": rng.choice(people), "text": "nice", "timestamp": ms + 1000}]
                if rng.random() < 0.3
                else []
            )
            obj["metadata"] = {"client": "cli"} if rng.random() < 0.5 else {}
        ks.strings[f"board:entry:{entry_id}"] = dumps(obj)
        entries.append((ms, entry_id, category, author))
    entries.sort(reverse=True)
    ks.lists["board:entries"] = [e[1].encode() for e in entries[:100]]
    for _ms, entry_id, category, author in entries:
        ks.lists[f"board:category:{category}"].append(entry_id.encode())
        ks.lists[f"board:user:{author}"].append(entry_id.encode())


def _streak(rng: random.Random, clock: Clock) -> dict[str, object]:
    current = rng.choice((0, 1, 2, 3, 5, 7, 8, 12, 30, 31, 45))
    last = clock.anchor_ms - rng.randrange(0, 5) * DAY_MS
    days = [iso(last - d * DAY_MS)[:10] for d in range(current)]
    badges = [
        b for b, need in (("verified_builder", 7), ("dedicated_builder", 30)) if current >= need
    ]
    return {
        "current": current,
        "longest": current + rng.randrange(5),
        "total": current * 2,
        "last": iso(last)[:10],
        "days": days,
        "badges": badges,
    }


def _streaks(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    for handle in rng.sample(people, min(n, len(people))):
        key = f"streak:{spell(rng, handle, STREAK_SPELLING_MESSY)}"
        streak = _streak(rng, clock)
        if rng.random() < SHARES["streak_json"]:
            ks.strings[key] = dumps(streak_json(streak))
        else:
            ks.hashes[key] = streak_hash(streak)
        if rng.random() < SHARES["streak_second_spelling"]:
            older = dict(streak, last=iso(clock.anchor_ms - 40 * DAY_MS)[:10], current=1)
            other = f"streak:@{handle.capitalize()}"
            if other != key:
                ks.hashes[other] = streak_hash(older)


def _invites(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    for _ in range(n):
        creator = rng.choice(people)
        picks = "".join(rng.choice(INVITE_ALPHABET) for _ in range(4))
        code = invite_code(picks, creator)
        if code in ks.hashes["vibe:invites"]:
            continue
        created = clock.when(rng)
        used = rng.random() < SHARES["invite_used"]
        obj: dict[str, object] = {
            "code": code,
            "created_by": spell(rng, creator, 0.05),
            "created_at": iso(created),
            "created_at_ts": created,
            "expires_at": iso(created + 30 * DAY_MS),
            "expires_at_ts": created + 30 * DAY_MS,
            "used_by": rng.choice(people) if used else None,
            "used_at": iso(created + DAY_MS) if used else None,
            "status": "used" if used else "available",
        }
        if rng.random() < 0.1:
            obj["bonus_for_inviting"] = rng.choice((True, 3, 7))
        ks.hashes["vibe:invites"][code] = dumps(obj)
        ks.sets[f"vibe:invites:by:{creator}"].add(code.encode())


def _pairs(rng: random.Random, people: list[str], n: int) -> list[tuple[str, str]]:
    pairs: dict[tuple[str, str], None] = {}
    for _ in range(n * 3):
        a, b = rng.sample(people, 2)
        pairs.setdefault((a, b))
        if len(pairs) >= n:
            break
    return list(pairs)


def _connections(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    for frm, to in _pairs(rng, people, n):
        status = rng.choices(("pending", "accepted", "blocked"), (3, 6, 1))[0]
        roll = rng.random()
        both = roll < SHARES["consent_both_schemes"]
        if both or roll < 0.8:
            requested = clock.when(rng)
            obj: dict[str, object] = {"status": status, "requestedAt": iso(requested)}
            if status != "pending":
                obj["respondedAt"] = iso(requested + 3_600_000)
            if rng.random() < 0.3:
                obj["message"] = "let's build 🤝"
            if rng.random() < 0.05:
                obj["grandfathered"] = True
            if rng.random() < SHARES["consent_stray_source"]:
                obj["_source"] = "migration-v1"
            ks.strings[f"consent:{frm}:{to}"] = dumps(obj)
        if both or roll >= 0.8:
            ks.sets[f"consent:{status}:{to}"].add(frm.encode())


def _friends(rng: random.Random, people: list[str], n: int, ks: Keyspace) -> None:
    for a, b in _pairs(rng, people, n):
        ks.sets[f"friends:{a}"].add(b.encode())
        if rng.random() >= SHARES["friend_one_sided"]:
            ks.sets[f"friends:{b}"].add(a.encode())


def _games(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    games: dict[str, object] = {}
    for _ in range(n):
        created = clock.when(rng)
        game_type = rng.choice(GAME_TYPES)
        players = rng.sample(people, 6 if game_type == "werewolf" else 2)
        game_id = f"game_{base36(created)}{rng.getrandbits(15):03x}"
        game: dict[str, object] = {
            "id": game_id,
            "type": game_type,
            "players": [spell(rng, p, SHARES["game_messy_player"]) for p in players],
            "state": {"turn": rng.randrange(40), "board": "rnbqkbnr/pppppppp"},
            "created_at": created if rng.random() < 0.5 else iso(created),
            "updated_at": iso(created + rng.randrange(3_600_000)),
        }
        if rng.random() < 0.5:
            game["winner"] = players[0]
        games[game_id] = game
    ks.strings["vibe:games"] = dumps(games)


def _kv_only(rng: random.Random, clock: Clock, people: list[str], ks: Keyspace) -> None:
    """Keys that stay in KV by design, with their TTLs (presence in four shapes)."""
    online = people[: max(4, len(people) // 20)]
    for i, handle in enumerate(online):
        key = f"presence:{handle}"
        shape = i % 4
        if shape == 0:
            ks.strings[key] = dumps({"status": "online", "lastSeen": clock.anchor_ms})
        elif shape == 1:
            ks.hashes[key] = {"status": b"online", "lastSeen": str(clock.anchor_ms).encode()}
        elif shape == 2:
            ks.strings[key] = str(clock.anchor_ms).encode()
        else:
            ks.strings[key] = dumps(
                {"handle": handle, "workingOn": "phasegate", "ts": iso(clock.anchor_ms)}
            )
        ks.ttls_ms[key] = 300_000
        ks.zsets["presence:active"][handle.encode()] = float(clock.anchor_ms)
        ks.sets["presence:index"].add(handle.encode())
        session = f"session:{rng.getrandbits(64):016x}"
        ks.strings[session] = dumps({"handle": handle})
        ks.ttls_ms[session] = DAY_MS
        ks.strings[f"ratelimit:{handle}:dm"] = b"3"
        ks.ttls_ms[f"ratelimit:{handle}:dm"] = 60_000
    ks.strings["typing:al:bo"] = b"1"
    ks.ttls_ms["typing:al:bo"] = 300_000
    ks.strings["agent:rate:scout"] = b"12"
    ks.strings["agent:budget:scout"] = b"1000"
    ks.strings["observations:count:scout"] = b"77"
    for _ in range(5):
        code = "".join(rng.choice(INVITE_ALPHABET) for _ in range(8))
        ks.strings[f"invite:{code}"] = dumps({"from": rng.choice(people)})
        ks.ttls_ms[f"invite:{code}"] = 7 * DAY_MS
