"""Run the reference service and Locust, each in its own process, and read the result.

Locust never runs inside the caller (gevent would patch it): it is started as
``python -m locust`` headless, with the locustfile's quitting hook writing a JSON
result and setting a distinct exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psycopg

from phasegate.errors import ServerError, UsageError
from phasegate.load import params
from phasegate.load.stats import Budgets, LoadResult
from phasegate.servers.process import free_port, spawn, stop, wait_ready
from phasegate.settings import Settings
from phasegate.stores import connect_pg

ROOT = Path(__file__).resolve().parents[3]
LOCUSTFILES = {"http": "locustfile.py", "db": "locust_db.py"}
# Users start over this many seconds: started together, their requests arrive in
# waves that queue behind each other and measure the wave, not the service.
RAMP_S = 5


def locustfile(profile: str) -> Path:
    """The locustfile of a profile, from the project's load/ folder."""
    here = Path.cwd() / "load" / LOCUSTFILES[profile]
    path = here if here.is_file() else ROOT / "load" / LOCUSTFILES[profile]
    if not path.is_file():
        raise UsageError(
            f"cannot find load/{LOCUSTFILES[profile]}",
            hint="run from the project folder (the locustfiles live in load/)",
        )
    return path


@dataclass
class Service:
    url: str
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)


@contextlib.contextmanager
def service(
    kv_url: str,
    pg_url: str,
    *,
    read: str = "pg",
    write: str = "pg",
    extra: Sequence[str] = (),
    folder: Path,
) -> Iterator[Service]:
    """``phasegate serve`` on a free port until the block ends."""
    port = free_port()
    log = folder / f"service-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "phasegate.cli",
        "serve",
        "--port",
        str(port),
        "--kv-url",
        kv_url,
        "--pg-url",
        pg_url,
        "--read-all",
        read,
        "--write-all",
        write,
        *extra,
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHASEGATE_READ_", "PHASEGATE_WRITE_"))
    }
    proc = spawn(argv, log=log, env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_ready(proc, healthy, what="the reference service", log=log, timeout=60)
        yield Service(url, log, proc)
    finally:
        stop(proc)


@dataclass(frozen=True)
class Run:
    """A finished Locust run: its result, exit code, and where its files are."""

    result: LoadResult
    exit_code: int
    html: Path
    output: str


def run_locust(
    host: str,
    params_file: Path,
    *,
    users: int,
    run_time: str,
    budgets: Budgets,
    folder: Path,
    profile: str = "http",
    tags: Sequence[str] = (),
    exclude_tags: Sequence[str] = (),
    name: str = "load",
) -> Run:
    """Locust headless in a subprocess; returns its judged result.

    Statistics restart once every user is spawned (``--reset-stats``): the gate
    measures the load at full concurrency, not the ramp-up."""
    folder.mkdir(parents=True, exist_ok=True)
    result_file = folder / f"{name}.json"
    html = folder / f"{name}-locust.html"
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile(profile)),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(max(1, users // RAMP_S)),
        "-t",
        run_time,
        "--host",
        host,
        "--html",
        str(html),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--reset-stats",
        "--params-file",
        str(params_file),
        "--result-file",
        str(result_file),
        "--p95-budget-ms",
        str(budgets.p95_ms),
        "--error-budget-percent",
        str(budgets.error_percent),
        "--throughput-floor-rpm",
        str(budgets.throughput_rpm),
        "--load-min-requests",
        str(budgets.min_requests),
    ]
    if tags:
        argv += ["--tags", *tags]
    if exclude_tags:
        argv += ["--exclude-tags", *exclude_tags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if not result_file.is_file():
        raise ServerError(
            f"Locust exited with code {done.returncode} and wrote no result:\n"
            + "\n".join(done.stderr.strip().splitlines()[-15:]),
        )
    return Run(LoadResult.read(result_file), done.returncode, html, done.stderr)


class Stores(Protocol):
    """Loaded stores to serve from (the sandbox migration of a fixture or the CLI)."""

    kv_url: str
    pg_url: str
    pg: psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Target:
    """What a load run points at, the parameters it draws, and what it leaves out."""

    host: str
    params_file: Path
    exclude_tags: tuple[str, ...]


@contextlib.contextmanager
def target(
    settings: Settings,
    sandbox: Callable[[], contextlib.AbstractContextManager[Stores]],
    *,
    profile: str,
    read: str,
    write: str,
    folder: Path,
) -> Iterator[Target]:
    """Where to send load, for the gate and the CLI alike.

    ``--load-host`` (the real app) or ``--pg-url`` given: those are only read,
    parameters come from ``--pg-url`` and write tasks are left out; the HTTP
    profile then loads the reference service over the given stores. Otherwise
    the reference service (or, for the db profile, Postgres) on ``sandbox()``'s
    stores, reading from ``read`` and writing through ``write`` (after the read
    cutover: reads from Postgres, dual writes, so both stores stay equal).
    """
    with contextlib.ExitStack() as stack:
        if settings.load_host or settings.pg_url:
            if not settings.pg_url:
                raise UsageError("--load-host needs --pg-url too: request parameters come from it")
            conn = stack.enter_context(connect_pg(settings.pg_url))
            conn.read_only = True  # given servers are only read
            exclude: tuple[str, ...] = ("writes",)
            kv_url, pg_url = settings.kv_url, settings.pg_url
        else:
            stores = stack.enter_context(sandbox())
            conn, kv_url, pg_url = stores.pg, stores.kv_url, stores.pg_url
            exclude = ()
        if settings.load_host:
            host = settings.load_host
        elif profile == "db":
            host = pg_url
        else:
            if not kv_url:
                raise UsageError("give --kv-url with --pg-url: the reference service reads both")
            host = stack.enter_context(
                service(kv_url, pg_url, read=read, write=write, folder=folder)
            ).url
        params_file = params.write(params.sample(conn), folder / "params.json")
        yield Target(host, params_file, exclude)


def save_baseline(result: LoadResult, path: Path, *, source: str) -> None:
    from phasegate.load.stats import baseline_of

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"source": source, "users": result.users, "p95_ms": baseline_of(result)}, indent=2
        )
        + "\n"
    )


def read_baseline(path: Path) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["p95_ms"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is not a phasegate load baseline: {exc}") from None
