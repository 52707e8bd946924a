"""A fork server for the comparison processes: each reader and worker is forked from
one warm process instead of starting a fresh interpreter.

A fresh ``python -m phasegate.parity.compare_worker`` spends about 0.33 CPU-s
importing redis, psycopg and the mappings before it does any work, and a gate
run at a small scale starts dozens of them (a Phase A gate of the ``now``
fixture: 26 per test). The server (``python -m phasegate.parity.forks``) imports
them once; each child is a ``fork`` of it with the caller's stdin, stdout and
stderr (passed over a Unix socket), so it costs a few milliseconds.

The server is single-threaded and holds no connections, so a fork of it is as
clean as a fresh process. Its children see the environment and working
directory the server started with, so the caller keeps one server per
(environment, directory): a change to either (``PHASEGATE_MAPPINGS``, a
project's pyproject) gets a server of its own, as a fresh interpreter would.
A child is a :class:`Child`: ``poll``, ``wait``, ``kill`` and ``returncode``,
as ``subprocess.Popen`` has.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from typing import Literal

# What a child runs: a module's main(), or (for tests) a script's source.
Program = tuple[Literal["module", "code"], str]
WORKER: Program = ("module", "phasegate.parity.compare_worker")
_EVENT = struct.Struct("!cii")  # b"s" started (pid) or b"e" ended (pid, exit code)
_LENGTH = struct.Struct("!I")


class ForkServerError(RuntimeError):
    """The fork server stopped answering."""


class Server:
    """The caller's end of one fork server."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phasegate.parity.forks", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = mine
        self.lock = threading.Lock()
        self.ended: dict[int, int] = {}

    def start(self, program: Program, fds: tuple[int, int, int]) -> Child:
        """Fork a child running ``program`` with ``fds`` as its stdin, stdout, stderr."""
        request = pickle.dumps(program)
        with self.lock:
            try:
                socket.send_fds(self.sock, [_LENGTH.pack(len(request))], list(fds))
                self.sock.sendall(request)
                while True:
                    kind, pid, code = self._event(block=True)
                    if kind == b"s":
                        return Child(self, pid)
                    self.ended[pid] = code
            except OSError as exc:
                raise ForkServerError(f"the fork server stopped: {exc}") from exc

    def _event(self, *, block: bool) -> tuple[bytes, int, int]:
        data = self.sock.recv(_EVENT.size, 0 if block else socket.MSG_DONTWAIT)
        if not data:
            raise ForkServerError("the fork server ended")
        data += _exactly(self.sock, _EVENT.size - len(data))
        kind, pid, code = _EVENT.unpack(data)
        return kind, pid, code

    def returncode(self, pid: int, *, block: bool) -> int | None:
        """The child's exit code once it ended (None while it runs, unless ``block``)."""
        with self.lock:
            while pid not in self.ended:
                try:
                    _kind, other, code = self._event(block=block)
                except BlockingIOError:
                    return None
                self.ended[other] = code
            return self.ended.pop(pid)

    def close(self) -> None:
        """End the server (its running children go on); it ends when its socket closes."""
        self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Child:
    """A forked child, as much of ``subprocess.Popen`` as its callers use."""

    def __init__(self, server: Server, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.returncode(self.pid, block=False)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self.server.returncode(self.pid, block=True)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


_SERVERS: dict[tuple[int, str, frozenset[tuple[str, str]]], Server] = {}
_SERVERS_LOCK = threading.Lock()


def server() -> Server:
    """This process's fork server for its current environment and directory."""
    key = (os.getpid(), os.getcwd(), frozenset(os.environ.items()))
    with _SERVERS_LOCK:
        found = _SERVERS.get(key)
        if found is None or found.proc.poll() is not None:
            if found is not None:
                found.close()  # it died: its children's ends went with it
            found = _SERVERS[key] = Server()
        return found


def start(program: Program, stdin: int, stdout: int, stderr: int) -> Child:
    """A child running ``program`` (its main() or its source) with these descriptors."""
    return server().start(program, (stdin, stdout, stderr))


@atexit.register
def close_all() -> None:
    """End this process's fork servers (at exit; a benchmark step, to count its
    children's peak memory: their servers waited for them, it waits for the servers)."""
    for each in [s for key, s in _SERVERS.items() if key[0] == os.getpid()]:
        each.close()
    _SERVERS.clear()


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise ForkServerError("the fork server's socket closed mid-message")
        data += more
    return data


# --- the server process ----------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """Fork a child per request until the caller closes the socket; report each
    child's start and end."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                head, fds, _flags, _addr = socket.recv_fds(sock, _LENGTH.size, 3)
                if not head:
                    return  # the caller is gone
                head += _exactly(sock, _LENGTH.size - len(head))
                program = pickle.loads(_exactly(sock, _LENGTH.unpack(head)[0]))
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    for fd in (sock.fileno(), wake_r, wake_w):
                        os.close(fd)
                    _child(program, fds)
                for fd in fds:
                    os.close(fd)
                sock.sendall(_EVENT.pack(b"s", pid, 0))
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                _reap(sock)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.sendall(_EVENT.pack(b"e", pid, os.waitstatus_to_exitcode(status)))


def _child(program: Program, fds: list[int]) -> None:
    """In the forked child: take the descriptors, run, exit as Python would."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    code = 0
    try:
        kind, what = program
        if kind == "module":
            importlib.import_module(what).main()
        else:
            exec(compile(what, "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


if __name__ == "__main__":
    importlib.import_module(WORKER[1])  # the imports every child would make: made once
    serve(socket.socket(fileno=int(sys.argv[1])))
