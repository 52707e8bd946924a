"""The late parts of ``phasegate demo``: the read cutover watched by the rollback
guard (one injected breach, rolled back and recovered), then Phase D (the
archive, the restore drill, life without KV) on the demo's scratch stores."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
from rich.console import Console

from phasegate import archive, guard
from phasegate.burst_workloads import read_url
from phasegate.console import print_watch
from phasegate.endpoints import ENDPOINT_TYPES
from phasegate.gates.phase_d import ARCHIVE, CHECKS, KEYSPACE, PhaseD
from phasegate.gates.result import CheckResult
from phasegate.load import params, runner
from phasegate.mappings import TYPE_IDS
from phasegate.servers import Sandbox, scratch_database, scratch_kv
from phasegate.settings import Settings, redact_url
from phasegate.stores import connect_kv

# The demo's trigger window, shortened from the spec's 600 s so it runs in seconds.
DEMO_TRIGGERS = guard.Triggers(p95_ms=500, window_s=6.0, sub_windows=3, min_requests=5)
BREACH = ("inbox", 700.0)  # the injected delay: endpoint, ms
DRIVEN = ("inbox", "thread", "friends_of_handle", "user_by_handle")


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def drive(urls: list[str], stop: threading.Event, copies: int = 3) -> None:
    """Steady reads on every URL until ``stop`` (``copies`` threads each)."""

    def loop(url: str) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=5).read()
            time.sleep(0.05)

    for url in urls:
        for _ in range(copies):
            threading.Thread(target=loop, args=(url,), daemon=True).start()


def demo_guard(
    kv_url: str, pg_url: str, pg: psycopg.Connection[tuple[object, ...]], console: Console
) -> list[CheckResult]:
    """Cut reads over to Postgres, inject a sustained delay on one endpoint, let the
    guard roll that type back, recover it, and watch it hold."""
    t = DEMO_TRIGGERS
    endpoint, delay = BREACH
    console.rule(
        f"Phase C cutover under the rollback guard (window {t.window_s:g} s in "
        f"{t.sub_windows} sub-windows, shortened from the spec's 600 s)"
    )
    token = secrets.token_hex(12)
    sets = params.sample(pg, limit=2)
    with (
        tempfile.TemporaryDirectory(prefix="phasegate-guard-") as folder,
        _env("PHASEGATE_ADMIN_TOKEN", token),
        runner.service(kv_url, pg_url, read="pg", write="pg", folder=Path(folder)) as svc,
    ):
        service = guard.Service(svc.url, token)
        stop = threading.Event()
        drive([read_url(svc.url, name, sets[name][0]) for name in DRIVEN], stop)
        types = sorted({ENDPOINT_TYPES[name] for name in DRIVEN})
        service.admin({"inject_delay": {endpoint: delay}})
        console.print(f"injected {delay:g} ms on {endpoint}, held: the guard acts (--act)")
        breach = guard.watch(
            service, t, duration_s=t.window_s + 1, poll_s=0.5, types=types, act=True
        )
        print_watch(breach, console)
        service.admin({"inject_delay": {endpoint: 0}, "read": {"messages": "pg"}})
        console.print("recovered: delay removed, messages read from Postgres again")
        after = guard.watch(service, t, duration_s=t.window_s + 1, poll_s=0.5, types=types)
        stop.set()
        print_watch(after, console)
    rolled = [e["type"] for e in breach.events]
    drill = CheckResult(
        "C",
        "messages",
        "rollback-guard",
        "pass"
        if rolled == ["messages"] and after.decisions["messages"].decision == guard.HOLD
        else "fail",
        f"injected {delay:g} ms on {endpoint}: rolled back {', '.join(rolled) or 'nothing'} "
        f"({breach.decisions['messages'].reason}); after recovery: "
        f"{after.decisions['messages'].decision}",
        metrics={"rolled_back": rolled, "budget": after.budget},
    )
    others = [guard.as_check(after.decisions[x], t) for x in types if x != "messages"]
    return [drill, *others]


def demo_phase_d(
    settings: Settings,
    sandbox: Sandbox,
    *,
    kv_url: str,
    pg_url: str,
    pg: psycopg.Connection[tuple[object, ...]],
    console: Console,
) -> list[CheckResult]:
    """Archive the demo's KV, then every Phase D check on it."""
    console.rule("Phase D: archive, restore drill, life without KV")
    kv = connect_kv(kv_url)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="phasegate-d-")))
        started = time.monotonic()
        manifest = archive.take(kv, folder / "archive", source=redact_url(kv_url))
        size = (folder / "archive" / archive.KEYS_FILE).stat().st_size
        console.print(
            f"archived {manifest.keys:,} keys in {time.monotonic() - started:.1f} s "
            f"({size:,} bytes compressed); may be deleted after {manifest.delete_after}"
        )
        gate = PhaseD(
            kv,
            pg,
            folder / "archive",
            lambda: stack.enter_context(scratch_kv(sandbox.kv_url)),
            settings.seed,
            settings.sample_rate,
            kv_url=kv_url,
            pg_url=pg_url,
            work=folder / "service",
            scratch_pg=lambda: stack.enter_context(scratch_database(sandbox.pg_url)),
        )
        with console.status("restore drill, KV-free reads, KV writes stopped"):
            results = [
                gate.run(check, t)
                for t in (KEYSPACE, *TYPE_IDS)
                for check in CHECKS
                if check != "retention"
            ]
            results.append(gate.run("retention", ARCHIVE))
    kv.close()
    return results
