"""Real servers on demand: embedded start/stop, no orphans, parallel workers, claims."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from phasegate.servers import EmbeddedPostgres, EmbeddedValkey, scratch_database, scratch_kv
from phasegate.servers.docker import docker_answers
from phasegate.servers.process import sweep_stale
from phasegate.servers.sandbox import Sandbox

# Starts both embedded servers, reports their pids and folders, then waits to be killed.
WORKER = """
import json, os, sys, time
from phasegate.servers import EmbeddedPostgres, EmbeddedValkey
pg, kv = EmbeddedPostgres().start(), EmbeddedValkey().start()
print(json.dumps({"pids": [pg.proc.pid, kv.proc.pid], "urls": [pg.url, kv.url],
                  "dirs": [str(pg.workspace.path), str(kv.workspace.path)]}), flush=True)
if sys.argv[1:] == ["stop"]:
    pg.stop(); kv.stop()
else:
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """True for a running process; zombies (not yet reaped) count as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def start_worker(*args: str) -> tuple[subprocess.Popen[str], dict[str, list[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"worker died: exit {proc.wait()}"
    info: dict[str, list[str]] = json.loads(line)
    return proc, info


def test_embedded_servers_answer_and_stop_cleanly() -> None:
    """Both servers start on loopback, answer real queries, and leave nothing on stop."""
    pg, kv = EmbeddedPostgres().start(), EmbeddedValkey().start()
    try:
        assert pg.workspace is not None
        assert kv.workspace is not None
        folders = [pg.workspace.path, kv.workspace.path]
        with psycopg.connect(pg.url) as conn:
            (version,) = conn.execute("SHOW server_version_num").fetchone() or ("0",)
            (fsync,) = conn.execute("SHOW fsync").fetchone() or ("",)
        assert int(str(version)) >= 150000
        assert fsync == "off"
        with redis.Redis.from_url(kv.url) as client:
            assert client.ping()
            assert client.set("k", "v")
    finally:
        pg.stop()
        kv.stop()
    assert not any(folder.exists() for folder in folders)


@pytest.mark.skipif(os.geteuid() != 0, reason="the user switch only happens as root")
def test_postgres_runs_unprivileged_when_we_are_root() -> None:
    """Postgres refuses root, so we run it as nobody."""
    pg = EmbeddedPostgres().start()
    try:
        assert pg.proc is not None
        uid = Path(f"/proc/{pg.proc.pid}/status").read_text().split("Uid:")[1].split()[0]
        assert uid != "0"
    finally:
        pg.stop()


def test_no_orphan_servers_after_the_parent_is_killed() -> None:
    """kill -9 of the process that started the servers takes the servers with it."""
    proc, info = start_worker()
    pids = [int(p) for p in info["pids"]]
    assert all(alive(p) for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "server outlived its parent"
    swept = sweep_stale("pg") + sweep_stale("kv")
    assert {str(p) for p in swept} >= set(info["dirs"])


def test_two_workers_start_their_own_servers_at_once() -> None:
    """Parallel workers get distinct ports and each stops its own servers."""
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, "stop"], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    urls = [url for out in outputs for url in json.loads(out)["urls"]]
    assert len(set(urls)) == 4


def test_docker_ping_fails_fast_without_a_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket means 'no Docker' in well under the 2 s budget, not a 40 s hang."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    started = time.monotonic()
    assert docker_answers() is False
    assert time.monotonic() - started < 0.5


def test_scratch_stores_are_isolated_and_removed(sandbox: Sandbox) -> None:
    """Two scratch KV claims get different DBs; scratch databases are dropped after use."""
    with scratch_kv(sandbox.kv_url) as first, scratch_kv(sandbox.kv_url) as second:
        assert first != second
        with redis.Redis.from_url(first) as a, redis.Redis.from_url(second) as b:
            a.set("x", "1")
            assert b.dbsize() == 0
    with redis.Redis.from_url(first) as a:
        assert a.dbsize() == 0
    with scratch_database(sandbox.pg_url) as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(sandbox.pg_url) as conn:
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert gone.fetchone() == (0,)


def test_a_db_holding_someone_elses_data_is_never_claimed(sandbox: Sandbox) -> None:
    """Scratch claims skip non-empty DB indexes, so shared servers are safe."""
    with scratch_kv(sandbox.kv_url) as free:
        pass
    with redis.Redis.from_url(free) as theirs:
        theirs.set("theirs", "keep")  # someone else's data, no claim
        try:
            with scratch_kv(sandbox.kv_url) as mine:
                assert mine != free
            assert theirs.get("theirs") == b"keep"
        finally:
            theirs.delete("theirs")
