"""A dual-write burst through the reference service, with faults on real servers.

:func:`open_rig` starts a durable embedded Postgres and Valkey of our own (a
process fault needs a server phasegate may stop and kill), seeds KV,
backfills Postgres and adds the foreign keys (the state Phase B starts from),
puts a :class:`~phasegate.faults.FaultProxy` in front of each, and serves the
reference service through the proxies in ``dual`` mode with shadow reads on.

:func:`phasegate.burst_workloads.workload` makes one type's app writes in
windows; :func:`run` sends each window while one fault of :data:`FAULTS` is on.
A client retries what was not acknowledged (HTTP 5xx, timeouts, resets) with the
same body, and re-sends a share of acknowledged writes as a client would after a
lost reply, so idempotency is exercised. Every write's outcome is kept.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from phasegate import faults, recipe
from phasegate.endpoints import WRITES, write_path
from phasegate.faults import FaultProxy
from phasegate.journal import Journal
from phasegate.load import runner
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
        return WRITES[self.op].type_id


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
    op = WRITES[write.op]
    request = urllib.request.Request(
        url + write_path(op, write.body),
        data=json.dumps(write.body).encode(),
        headers={"content-type": "application/json"},
        method=op.method,
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
