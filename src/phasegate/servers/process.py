"""Child server processes that die with their parent and leave nothing behind.

Each embedded server lives in a base folder under the system temp folder named
``phasegate-<kind>-*``, holding an ``owner.pid`` file. A later start sweeps
folders whose owner is gone (a ``kill -9`` of pytest), so crashes leak no disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from phasegate.errors import ServerError

_PR_SET_PDEATHSIG = 1
UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when the parent dies.

    CPython calls preexec_fn after switching user, and a credential change
    clears the parent-death signal, so setting it here is what survives.
    """

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def run_as() -> pwd.struct_passwd | None:
    """The account to run servers as: an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise ServerError(
            f"running as root and there is no '{UNPRIVILEGED_USER}' account to run Postgres as",
            hint="create it (useradd -r nobody) or run phasegate as a normal user",
        ) from None


@dataclass
class Workspace:
    """A base folder for one server, owned by the account that runs it."""

    path: Path

    @classmethod
    def create(cls, kind: str, owner: pwd.struct_passwd | None) -> Workspace:
        sweep_stale(kind)
        path = Path(tempfile.mkdtemp(prefix=f"phasegate-{kind}-"))
        (path / "owner.pid").write_text(str(os.getpid()))
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        return cls(path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(kind: str) -> list[Path]:
    """Remove base folders left by dead phasegate processes; returns them."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"phasegate-{kind}-*"):
        pid_file = folder / "owner.pid"
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    user: pwd.struct_passwd | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process tied to this one (it is killed when we die)."""
    with log.open("ab") as out:
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return subprocess.Popen(  # type: ignore[no-any-return]
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - we need prctl
            env=env,
            **kwargs,  # type: ignore[call-overload]
        )


def wait_ready(
    proc: subprocess.Popen[bytes],
    probe: Callable[[], bool],
    *,
    what: str,
    log: Path,
    timeout: float = 30.0,
) -> None:
    """Poll ``probe`` until it returns True; explain with the log tail if not."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"{what} exited with code {proc.returncode} during start-up:\n{tail(log)}",
                hint="see the log above; a port clash is retried, anything else is not",
            )
        if probe():
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    stop(proc)
    raise ServerError(f"{what} did not answer within {timeout:.0f} s:\n{tail(log)}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a child politely, then kill it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)


def kill_tree(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL a server and its children (a crash, not a shutdown) and reap it."""
    if proc.poll() is not None:
        return
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    proc.wait(timeout)
    psutil.wait_procs(children, timeout=timeout)


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])
