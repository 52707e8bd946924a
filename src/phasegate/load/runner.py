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
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phasegate.errors import ServerError, UsageError
from phasegate.load.stats import Budgets, LoadResult
from phasegate.servers.process import free_port, spawn, stop, wait_ready

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


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="phasegate-load-"))


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
