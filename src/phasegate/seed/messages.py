"""Seeded messages: all three KV schemes at once, as the app left them.

Scheme 1 (``vibe:messages``) holds at most the newest 10,000; scheme 2
(``msg:{id}`` with inbox/outbox/thread id lists, dangling ids where the 30-day
cleanup deleted a message); scheme 3 (``messages:{to}`` JSON lists, the same
objects pushed onto ``thread:{a}:{b}``, read state in ``unread:{to}``).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from phasegate.seed.people import DAY_MS, Clock, spell
from phasegate.seed.shapes import (
    base36,
    dumps,
    message_scheme1,
    message_scheme2,
    message_scheme3,
    thread_key,
)
from phasegate.seed.writer import Keyspace

SCHEME1_CAP = 10_000
SHARES = {
    "scheme1": 0.20,  # of all messages, capped at SCHEME1_CAP
    "scheme2": 0.50,  # the rest are scheme 3
    "welcome_dm": 0.05,  # of scheme 2: short system form from 'vibe'
    "agent_sender": 0.03,  # sent by an agent account
    "also_in_scheme1": 0.02,  # scheme-2 messages copied into vibe:messages
    "dangling_id": 0.03,  # per scheme-2 message: one deleted id left in the lists
    "messy_handle": 0.05,  # from/to written un-normalised
    "iso_dates": 0.5,  # createdAt as ISO text, else epoch ms
    "payload": 0.05,
    "long_text": 0.01,
    "unread_pair": 0.5,  # scheme-3 (to, from) pairs with an unread count
}
AGENTS = ("ops-agent", "welcome-agent", "scout", "echo", "solienne")
_WORDS = [
    "ship",
    "build",
    "idea",
    "agent",
    "deploy",
    "rust",
    "python",
    "design",
    "review",
    "merge",
    "test",
    "vibe",
]
_UNICODE = ("🚀", "✨", "👩‍💻", "ñandú", "中文", "Ünïcödé", "🤝")


def text(rng: random.Random, limit: int) -> str:
    """Message-like text, sometimes with emoji, sometimes up to ``limit`` chars."""
    if rng.random() < SHARES["long_text"]:
        return ("long " * 400)[: rng.randrange(limit // 2, limit)]
    words = rng.choices(_WORDS, k=rng.randrange(2, 14))
    if rng.random() < 0.15:
        words.append(rng.choice(_UNICODE))
    return " ".join(words)


def _message(rng: random.Random, clock: Clock, people: list[str], scheme: int) -> dict[str, Any]:
    frm = rng.choice(AGENTS) if rng.random() < SHARES["agent_sender"] else rng.choice(people)
    to = rng.choice(people)
    while to == frm:
        to = rng.choice(people)
    ms = clock.when(rng)
    if scheme == 1:
        msg_id = f"msg_{base36(ms)}{rng.getrandbits(15):03x}"
    elif scheme == 2:
        msg_id = f"msg_{rng.getrandbits(96):024x}"
    else:
        msg_id = f"{ms}-{base36(rng.getrandbits(31))[:6]:0>6}"
    recent = clock.anchor_ms - ms < DAY_MS
    read = rng.random() < (0.3 if recent else 0.85)
    m: dict[str, Any] = {
        "id": msg_id,
        "from": spell(rng, frm, SHARES["messy_handle"]),
        "to": spell(rng, to, SHARES["messy_handle"]),
        "canonical": (frm, to),
        "text": text(rng, 500 if scheme == 3 else 2000),
        "ms": ms,
        "read": read,
        "read_ms": ms + 60_000 if read and rng.random() < 0.5 else None,
    }
    if rng.random() < SHARES["payload"]:
        m["payload"] = {"kind": "link", "url": "https://slashvibe.dev/x"}
    if scheme != 1 and rng.random() < 0.5:
        m["signature"] = f"{rng.getrandbits(128):032x}"
    return m


def generate(rng: random.Random, clock: Clock, people: list[str], n: int, ks: Keyspace) -> None:
    n1 = min(SCHEME1_CAP, int(n * SHARES["scheme1"]))
    n2 = int(n * SHARES["scheme2"])
    scheme1: list[dict[str, Any]] = []
    unread_pairs: Counter[tuple[str, str]] = Counter()
    for i in range(n):
        scheme = 1 if i < n1 else 2 if i < n1 + n2 else 3
        m = _message(rng, clock, people, scheme)
        frm, to = m["canonical"]
        iso_dates = rng.random() < SHARES["iso_dates"]
        if scheme == 1:
            scheme1.append(message_scheme1(m, iso_dates))
        elif scheme == 2:
            if rng.random() < SHARES["welcome_dm"]:
                frm = "vibe"
                m.update({"from": "vibe", "system": True, "text": f"welcome to /vibe, {to} ✨"})
            ks.strings[f"msg:{m['id']}"] = dumps(message_scheme2(m, iso_dates))
            ids = [m["id"].encode()]
            if rng.random() < SHARES["dangling_id"]:
                ids.append(f"msg_{rng.getrandbits(96):024x}".encode())  # cleaned up
            ks.lists[f"inbox:{to}"].extend(ids)
            ks.lists[f"outbox:{frm}"].extend(ids)
            ks.lists[thread_key(frm, to)].extend(ids)
            if len(scheme1) < SCHEME1_CAP and rng.random() < SHARES["also_in_scheme1"]:
                scheme1.append(message_scheme1(m, not iso_dates))
        else:
            element = dumps(message_scheme3(m))
            ks.lists[f"messages:{to}"].append(element)
            ks.lists[thread_key(frm, to)].append(element)
            unread_pairs[(to, frm)] += 1
    ks.strings["vibe:messages"] = dumps(scheme1)
    for (to, frm), count in unread_pairs.items():
        if rng.random() < SHARES["unread_pair"]:
            ks.hashes[f"unread:{to}"][spell(rng, frm, 0.05)] = str(
                rng.randrange(1, count + 1)
            ).encode()
