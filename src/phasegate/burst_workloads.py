"""What a Phase B burst sends: per data type, app writes in windows (one per fault
kind) made from the loaded data, and the read requests that show that data.

:func:`workload` is generic over the writable types of the /vibe data model;
:func:`shadow_reads` asks the service's status endpoint what its shadow reads
compared. :mod:`phasegate.burst` sends them through the faults.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from phasegate.burst import FAULTS, Rig, Write
from phasegate.endpoints import ENDPOINTS, request_of
from phasegate.mappings.board import CATEGORIES
from phasegate.mappings.games import GAME_TYPES
from phasegate.mappings.invites import INVITE_ALPHABET

Conn = psycopg.Connection[tuple[Any, ...]]


def _users(pg: Conn, n: int) -> list[str]:
    rows = pg.execute(
        "SELECT handle FROM users WHERE NOT coalesce((metadata->>'stub')::bool, false) "
        "ORDER BY handle LIMIT %s",
        (n,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _split(writes: list[Write], windows: int) -> list[list[Write]]:
    size = max(1, -(-len(writes) // windows))
    return [writes[i : i + size] for i in range(0, len(writes), size)]


@dataclass
class Workload:
    """A type's writes in windows, and the read requests that show its data."""

    type_id: str
    windows: list[list[Write]]
    reads: list[tuple[str, dict[str, Any]]]  # (endpoint, params)
    nonce: str

    @property
    def writes(self) -> list[Write]:
        return [w for window in self.windows for w in window]


def workload(type_id: str, pg: Conn, n: int, seed: int, windows: int = len(FAULTS)) -> Workload:
    rng = random.Random(f"{seed}:{type_id}")
    nonce = secrets.token_hex(3)
    people = _users(pg, 400)
    at = int(time.time() * 1000)
    writes: list[Write] = []
    reads: list[tuple[str, dict[str, Any]]] = []
    if type_id == "messages":
        # Sends go to one half of the pairs while the other half's threads are
        # marked read, alternating by window: no record is written by two
        # writes at once, so "as last acknowledged" is well defined.
        pairs = [tuple(rng.sample(people, 2)) for _ in range(max(4, n // 8))]
        halves = (pairs[0::2], pairs[1::2])
        size = max(1, n // windows)
        plan: list[list[Write]] = []
        i = 0
        for k in range(windows):
            sending, reading = halves[k % 2], halves[(k + 1) % 2]
            window = []
            for j in range(size):
                if j % 5 == 4 and k > 0:
                    a, b = reading[j % len(reading)]
                    window.append(Write("mark_thread_read", {"handle": b, "other": a}))
                else:
                    a, b = sending[j % len(sending)]
                    body = {"from": a, "to": b, "text": f"phase-b {nonce} #{i}", "at": at + i}
                    window.append(Write("send_message", {**body, "id": f"msg_pb{nonce}{i:04d}"}))
                    i += 1
            plan.append(window)
        for a, b in pairs:
            reads += [
                ("inbox", {"handle": b, "limit": 50}),
                ("thread", {"handle": a, "other": b, "limit": 50}),
            ]
        return Workload(type_id, plan, _dedupe(reads), nonce)
    if type_id == "board":
        for i in range(n):
            category = CATEGORIES[i % len(CATEGORIES)]
            body = {
                "id": f"entry_{at + i}_{nonce}{i:02x}",
                "author": rng.choice(people),
                "content": f"phase-b {nonce} #{i}",
                "category": category,
                "tags": ["phase-b"],
                "at": at + i,
            }
            writes.append(Write("board_post", body))
        reads += [("board_feed", {"limit": 50})]
        reads += [("board_by_category", {"category": c, "limit": 50}) for c in CATEGORIES]
    elif type_id == "streaks":
        handles = rng.sample(people, max(2, n // windows))
        start = date(2030, 1, 1)
        per_window = [
            [
                Write(
                    "streak_checkin", {"handle": h, "day": (start + timedelta(days=k)).isoformat()}
                )
                for h in handles
            ]
            for k in range(windows)
        ]
        reads += [("streak_of_handle", {"handle": h}) for h in handles]
        reads += [("streak_leaderboard", {"limit": 50})]
        return Workload(type_id, per_window, reads, nonce)
    elif type_id == "invites":
        creators = rng.sample(people, max(2, n // 10))
        codes = []
        for i in range(n // 2):
            creator = creators[i % len(creators)]
            letters = "".join(c for c in creator if c.isalpha())[:4].upper() or "VIBE"
            code = (
                "VIBE-"
                + "".join(rng.choice(INVITE_ALPHABET) for _ in range(4))
                + f"-{letters}-{nonce}"
            )
            codes.append(code)
            writes.append(Write("invite_create", {"handle": creator, "code": code, "at": at + i}))
        for i, code in enumerate(codes[: n - len(codes)]):
            writes.append(
                Write(
                    "invite_redeem", {"code": code, "handle": rng.choice(people), "at": at + n + i}
                )
            )
        reads += [("invites_by_creator", {"handle": c}) for c in creators]
    elif type_id == "connections":
        taken = {
            (str(a), str(b)) for a, b in pg.execute("SELECT from_user, to_user FROM connections")
        }
        new_pairs: list[tuple[str, str]] = []
        while len(new_pairs) < n // 2:
            a, b = rng.sample(people, 2)
            if (a, b) not in taken and (b, a) not in taken:
                taken.add((a, b))
                new_pairs.append((a, b))
        writes += [
            Write(
                "connection_request", {"from": a, "to": b, "message": f"hi {nonce}", "at": at + i}
            )
            for i, (a, b) in enumerate(new_pairs)
        ]
        for i, (a, b) in enumerate(new_pairs[: n - len(new_pairs)]):
            op = "connection_block" if i % 4 == 3 else "connection_accept"
            writes.append(Write(op, {"from": a, "to": b, "at": at + n + i}))
        reads += [("pending_connections", {"handle": b}) for _a, b in new_pairs]
    elif type_id == "friends":
        for _ in range(n):
            a, b = rng.sample(people, 2)
            writes.append(Write("friend_add", {"handle": a, "friend": b}))
        reads += [
            ("friends_of_handle", {"handle": h})
            for w in writes
            for h in (w.body["handle"], w.body["friend"])
        ]
    elif type_id == "games":
        for i in range(n):
            players = rng.sample(people, 2)
            body = {
                "id": f"game_pb{nonce}{i:04d}",
                "type": GAME_TYPES[i % len(GAME_TYPES)],
                "players": players,
                "winner": players[0] if i % 2 else None,
                "state": {"nonce": f"{nonce}-{i}", "turn": i},
                "at": at + i,
            }
            writes.append(Write("game_record", body))
        reads += [("games_by_player", {"handle": p}) for w in writes for p in w.body["players"]]
    elif type_id == "users":
        registered = [f"pb-{nonce}-{i}" for i in range(n * 2 // 3)]
        writes += [
            Write("user_register", {"handle": h, "building": "phase b", "at": at + i})
            for i, h in enumerate(registered)
        ]
        # Delete some new users and some seeded ones, whose data spans every shape.
        active = [
            str(r[0])
            for r in pg.execute(
                "SELECT m.from_user FROM messages m JOIN users u ON u.handle = m.from_user "
                "WHERE NOT coalesce((u.metadata->>'stub')::bool, false) "
                "AND NOT coalesce(u.is_agent, false) "
                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3"
            )
        ]
        doomed = registered[: n - len(registered) - len(active)] + active
        writes += [Write("user_delete", {"handle": h}) for h in doomed]
        reads += [("user_by_handle", {"handle": h}) for h in registered + active]
        reads += [("inbox", {"handle": h, "limit": 50}) for h in active]
    else:
        raise ValueError(f"no workload for data type {type_id!r}")
    return Workload(type_id, _split(writes, windows), _dedupe(reads), nonce)


def _dedupe(reads: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, params in reads:
        seen.setdefault(f"{name}{sorted(params.items())}", (name, params))
    return list(seen.values())


def read_url(base: str, endpoint: str, params: dict[str, Any]) -> str:
    """The service URL of a read request (the endpoint table's path and names).

    >>> read_url("http://h", "streak_of_handle", {"handle": "ana"})
    'http://h/api/streaks/ana'
    >>> read_url("http://h", "games_by_player", {"handle": "ana"})
    'http://h/api/games?player=ana'
    """
    path, query = request_of(ENDPOINTS[endpoint], params)
    return base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")


def shadow_reads(
    rig: Rig, reads: list[tuple[str, dict[str, Any]]], rounds: int = 3
) -> Callable[[], None]:
    """A function that reads every request ``rounds`` times (for the clean window)."""

    def go() -> None:
        for _ in range(rounds):
            for endpoint, params in reads:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(read_url(rig.url, endpoint, params), timeout=10).close()

    return go
