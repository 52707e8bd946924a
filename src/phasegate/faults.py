"""Faults on real servers, on command: no mocks.

- :class:`FaultProxy`: a TCP proxy in front of a store. ``drop()`` resets every
  open connection and every new one; ``stall()`` stops moving bytes (clients
  hang until their timeouts); ``heal()`` restores service. Point a client at
  :meth:`FaultProxy.url_for` instead of the store.
- :func:`pause` / :func:`resume`: SIGSTOP / SIGCONT a server and its children
  (a Postgres postmaster and its backends, a Valkey process).
- :func:`terminate_backends`: ``pg_terminate_backend`` on a database's sessions.

The Phase B gate (:mod:`phasegate.burst`) injects these during dual-write
bursts, with kill -9 and restart of the embedded servers
(:class:`~phasegate.servers.embedded.EmbeddedPostgres` ``kill``/``restart``).
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

Mode = Literal["pass", "drop", "stall"]


class FaultProxy:
    """A loopback TCP proxy to ``host:port`` whose behaviour changes on command."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode: Mode = "pass"
        self._moving = threading.Event()
        self._moving.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @classmethod
    def before(cls, url: str) -> FaultProxy:
        """A proxy in front of the server a store URL names."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS[parts.scheme])

    def url_for(self, url: str) -> str:
        """``url`` pointed at this proxy (user, password, path and query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def drop(self) -> None:
        """Reset every open connection, and every new one until :meth:`heal`."""
        with self._lock:
            self.mode = "drop"
            doomed = list(self._open)
        self._moving.set()
        for sock in doomed:
            _reset(sock)

    def stall(self) -> None:
        """Stop moving bytes both ways (connections stay open) until :meth:`heal`."""
        with self._lock:
            self.mode = "stall"
        self._moving.clear()

    def heal(self) -> None:
        with self._lock:
            self.mode = "pass"
        self._moving.set()

    def close(self) -> None:
        self._closed = True
        self.heal()
        self._listener.close()
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            _reset(sock)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "drop":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream), name="fault-proxy-pump", daemon=True
            ).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            try:
                # a drop() between accept and here has closed them: nothing to pump
                sel.register(client, selectors.EVENT_READ)
                sel.register(upstream, selectors.EVENT_READ)
                while not self._closed:
                    self._moving.wait()
                    for key, _ in sel.select(timeout=0.2):
                        if not self._moving.is_set():
                            break  # stalled between select and read: leave bytes queued
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        data = sock.recv(65536)
                        if not data:
                            return
                        peer[sock].sendall(data)
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    self._open.difference_update((client, upstream))
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.close()


_DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432, "postgres": 5432}


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network path looks to a client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pause(pid: int) -> None:
    """SIGSTOP a server process and all its children."""
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGSTOP)


def resume(pid: int) -> None:
    """SIGCONT a server process and all its children."""
    for proc in reversed(_tree(pid)):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The server is stopped inside the block and continues after it, whatever happens."""
    pause(pid)
    try:
        yield
    finally:
        resume(pid)


def terminate_backends(admin: psycopg.Connection[tuple[object, ...]], database: str) -> int:
    """``pg_terminate_backend`` every other session of ``database``; returns how many."""
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]
