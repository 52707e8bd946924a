"""A dual-write burst through the reference service, with faults on real servers.

:func:`open_rig` starts a durable embedded Postgres and Valkey of our own (a
process fault needs a server phasegate may stop and kill), seeds KV,
backfills Postgres and adds the foreign keys (the state Phase B starts from),
puts a :class:`~phasegate.faults.FaultProxy` in front of each, and serves the
reference service through the proxies in ``dual`` mode with shadow reads on.

:func:`workload` makes app writes for one data type from the loaded data, in
windows; :func:`run` sends each window while one fault of :data:`FAULTS` is on.
A client retries what was not acknowledged (HTTP 5xx, timeouts, resets) with the
same body, and re-sends a share of acknowledged writes as a client would after a
lost reply, so idempotency is exercised. Every write's outcome is kept.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from phasegate import faults, recipe
from phasegate.dualwrite.ops import OP_TYPES
from phasegate.faults import FaultProxy
from phasegate.journal import Journal
from phasegate.load import runner
from phasegate.mappings.board import CATEGORIES
from phasegate.mappings.games import GAME_TYPES
from phasegate.mappings.invites import INVITE_ALPHABET
from phasegate.servers.embedded import EmbeddedPostgres, EmbeddedValkey
from phasegate.stores import connect_kv, connect_pg

# One window per fault kind, in this order; "none" is the clean window that
# shadow divergence is judged on.
FAULTS = (
    "none",
    "pg-drop",
    "kv-drop",
    "pg-stall",
    "kv-stall",
    "pg-pause",
    "kv-pause",
    "pg-terminate",
    "pg-kill",
    "kv-kill",
)
FAULT_HOLD_S = 1.5  # a fault stays on at least this long (three store timeouts)
STORE_TIMEOUT_S = 0.5  # the service gives up on a silent store after this
RETRIES = 24
RETRY_DELAY_S = 0.25
RESEND_SHARE = 0.2  # acknowledged writes sent again, as after a lost reply
THREADS = 4
Conn = psycopg.Connection[tuple[object, ...]]


@dataclass
class Rig:
    """Stores, proxies and the service of one burst target."""

    pg_server: EmbeddedPostgres
    kv_server: EmbeddedValkey
    pg_url: str  # direct, for checks
    kv_url: str
    pg_proxy: FaultProxy
    kv_proxy: FaultProxy
    journal: Journal
    url: str = ""  # the service

    def conn(self) -> Conn:
        return connect_pg(self.pg_url)

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_phasegate/status", timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data


@contextlib.contextmanager
def open_rig(
    folder: Path,
    *,
    seed: int,
    scale: str = "now",
    anchor_ms: int | None = None,
    defects: tuple[str, ...] = (),
    divergence_budget_percent: float = 5.0,
    write_failure_budget_percent: float = 1.0,
) -> Iterator[Rig]:
    """A loaded pair of durable embedded stores behind fault proxies, and the service."""
    with contextlib.ExitStack() as stack:
        pg_server = EmbeddedPostgres(durable=True).start()
        stack.callback(pg_server.stop)
        kv_server = EmbeddedValkey(durable=True).start()
        stack.callback(kv_server.stop)
        kv = connect_kv(kv_server.url)
        anchor = anchor_ms if anchor_ms is not None else int(time.time() * 1000)
        with connect_pg(pg_server.url) as pg:
            recipe.migrate(kv, pg, scale, seed, anchor, analyze=True)
        kv.close()
        pg_proxy = stack.enter_context(FaultProxy.before(pg_server.url))
        kv_proxy = stack.enter_context(FaultProxy.before(kv_server.url))
        journal_path = folder / "journal.jsonl"
        rig = Rig(
            pg_server,
            kv_server,
            pg_server.url,
            kv_server.url,
            pg_proxy,
            kv_proxy,
            Journal(journal_path),
        )
        extra = [
            "--journal",
            str(journal_path),
            "--shadow",
            "--write-timeout",
            str(STORE_TIMEOUT_S),
            "--divergence-budget-percent",
            str(divergence_budget_percent),
            "--write-failure-budget-percent",
            str(write_failure_budget_percent),
            *(f"--inject-defect={d}" for d in defects),
        ]
        service = stack.enter_context(
            runner.service(
                kv_proxy.url_for(kv_server.url),
                pg_proxy.url_for(pg_server.url),
                read="kv",
                write="dual",
                extra=extra,
                folder=folder,
            )
        )
        rig.url = service.url
        yield rig


@contextlib.contextmanager
def fault(rig: Rig, kind: str) -> Iterator[None]:
    """One fault on while the block runs, then healed (a killed server restarted)."""
    if kind == "none":
        yield
        return
    side, what = kind.split("-", 1)
    proxy = rig.pg_proxy if side == "pg" else rig.kv_proxy
    server = rig.pg_server if side == "pg" else rig.kv_server
    if what in ("drop", "stall"):
        getattr(proxy, what)()
        try:
            yield
        finally:
            proxy.heal()
    elif what == "pause":
        assert server.proc is not None
        with faults.paused(server.proc.pid):
            yield
    elif what == "kill":
        server.kill()
        try:
            yield
        finally:
            server.restart()
    elif what == "terminate":
        stop = threading.Event()

        def keep_terminating() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(rig.pg_url, autocommit=True) as admin:
                        database = str(admin.info.dbname)
                        while not stop.is_set():
                            faults.terminate_backends(admin, database)
                            stop.wait(0.02)
                except psycopg.Error:
                    stop.wait(0.05)  # the server is busy restarting sessions: go again

        killer = threading.Thread(target=keep_terminating, daemon=True)
        killer.start()
        try:
            yield
        finally:
            stop.set()
            killer.join(10)
    else:
        raise ValueError(f"unknown fault {kind!r}")


@dataclass(frozen=True)
class Write:
    op: str
    body: dict[str, Any]

    @property
    def type_id(self) -> str:
        return OP_TYPES[self.op]


ROUTES = {
    "send_message": ("POST", "/api/messages"),
    "mark_thread_read": ("POST", "/api/messages/read"),
    "board_post": ("POST", "/api/board"),
    "streak_checkin": ("POST", "/api/streaks/checkin"),
    "invite_create": ("POST", "/api/invites"),
    "invite_redeem": ("POST", "/api/invites/redeem"),
    "connection_request": ("POST", "/api/connections"),
    "connection_accept": ("POST", "/api/connections/accept"),
    "connection_block": ("POST", "/api/connections/block"),
    "friend_add": ("POST", "/api/friends"),
    "game_record": ("POST", "/api/games"),
    "user_register": ("POST", "/api/users"),
    "user_delete": ("DELETE", "/api/users/{handle}"),
}


@dataclass
class Outcome:
    """What became of one write: acknowledged or not, after how many tries, under
    which fault, and the service's answer (the records it wrote)."""

    write: Write
    fault: str
    acked: bool = False
    status: int | None = None
    attempts: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    resent: int | None = None  # status of the re-send of an acknowledged write
    resent_answer: dict[str, Any] = field(default_factory=dict)
    done_at: float = 0.0


def send(url: str, write: Write, timeout: float = 10.0) -> tuple[int | None, dict[str, Any], str]:
    method, path = ROUTES[write.op]
    path = path.format(**{k: urllib.parse.quote(str(v)) for k, v in write.body.items()})
    request = urllib.request.Request(
        url + path,
        data=json.dumps(write.body).encode(),
        headers={"content-type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read()), ""
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read())
        except ValueError:
            body = {}
        return e.code, body, str(body.get("error", e.reason))
    except OSError as e:
        return None, {}, f"{type(e).__name__}: {e}"


def deliver(url: str, write: Write, fault_kind: str, resend: bool) -> Outcome:
    """Send until acknowledged (201) or refused for good (4xx), retrying the rest;
    with ``resend``, send an acknowledged write again the same way."""
    out = Outcome(write, fault_kind)
    out.attempts, out.status, out.answer, out.error = _until_answered(url, write)
    out.acked = out.status == 201
    out.done_at = time.monotonic()
    if out.acked and resend:
        _tries, out.resent, out.resent_answer, _error = _until_answered(url, write)
    return out


def _until_answered(url: str, write: Write) -> tuple[int, int | None, dict[str, Any], str]:
    for attempt in range(1, RETRIES + 1):
        status, answer, error = send(url, write)
        if status is not None and status < 500:
            return attempt, status, answer, error
        time.sleep(RETRY_DELAY_S)
    return RETRIES, status, answer, error


def run(
    rig: Rig,
    windows: list[list[Write]],
    *,
    reads: Callable[[], None] | None = None,
    seed: int = 0,
    on_window: Callable[[str, list[Outcome]], None] | None = None,
    kinds: tuple[str, ...] = FAULTS,
    threads: int = THREADS,
) -> list[Outcome]:
    """Each window's writes at once while its fault is on: half are sent, the
    fault lands, the other half arrive during it; the fault is healed after
    :data:`FAULT_HOLD_S` (a write that reads state spends two store timeouts
    finding out), and retries land after.
    ``reads`` run in the clean window (shadow reads)."""
    rng = random.Random(seed)
    outcomes: list[Outcome] = []
    for kind, writes in zip(kinds, windows, strict=False):
        resend = [rng.random() < RESEND_SHARE for _ in writes]
        jobs = list(zip(writes, resend, strict=True))
        half = len(jobs) // 2
        with ThreadPoolExecutor(threads + 1) as pool:

            def submit(part: list[tuple[Write, bool]], kind: str = kind) -> list[Future[Outcome]]:
                return [pool.submit(deliver, rig.url, w, kind, again) for w, again in part]

            if kind == "none":
                started = submit(jobs)
                if reads is not None:
                    reads()
            else:
                started = submit(jobs[:half])
                time.sleep(0.01)  # the fault lands with writes in flight
                with fault(rig, kind):
                    held = time.monotonic()
                    time.sleep(0.05)  # the fault has taken hold
                    started += submit(jobs[half:])  # and others arrive during it
                    wait(started, timeout=FAULT_HOLD_S)
                    time.sleep(max(0.0, FAULT_HOLD_S - (time.monotonic() - held)))
            done = [f.result() for f in started]
        outcomes.extend(done)
        if on_window is not None:
            on_window(kind, done)
    return outcomes


# --- workloads: app writes per data type, from the loaded data ---------------


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


READ_PATHS = {
    "inbox": "/api/messages/inbox",
    "thread": "/api/messages/thread",
    "board_feed": "/api/board",
    "board_by_category": "/api/board",
    "streak_of_handle": "/api/streaks/{handle}",
    "streak_leaderboard": "/api/streaks",
    "invites_by_creator": "/api/invites",
    "pending_connections": "/api/connections/pending",
    "friends_of_handle": "/api/friends",
    "games_by_player": "/api/games",
    "user_by_handle": "/api/users/{handle}",
}


def read_url(base: str, endpoint: str, params: dict[str, Any]) -> str:
    """The service URL of a read request.

    >>> read_url("http://h", "streak_of_handle", {"handle": "ana"})
    'http://h/api/streaks/ana'
    >>> read_url("http://h", "games_by_player", {"handle": "ana"})
    'http://h/api/games?player=ana'
    """
    path = READ_PATHS[endpoint]
    query = {k: v for k, v in params.items() if "{" + k + "}" not in path}
    if endpoint == "games_by_player":
        query = {"player": query.pop("handle")}
    path = path.format(**{k: urllib.parse.quote(str(v)) for k, v in params.items()})
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
