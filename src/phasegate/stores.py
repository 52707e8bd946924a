"""Connections to the two stores: deadlines, clear errors, secrets kept out.

Every store operation has a deadline (the ``store_timeout`` setting): Redis
through its socket timeout; Postgres through :class:`Watchdog`, which cuts the
connection's socket when a query or a stream makes no progress (a frozen
server still acknowledges TCP, so no socket option would notice). A refusal
is told apart from an unreachable server: :class:`PermissionRefusedError` names
the user, the command and the key.

>>> with_database("postgresql://u:p@h:5432/postgres?sslmode=require", "x")
'postgresql://u:p@h:5432/x?sslmode=require'
>>> with_db_index("redis://h:6379/0", 3)
'redis://h:6379/3'
>>> with_db_index("redis://h:6379", 3)
'redis://h:6379/3'
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from phasegate.errors import PermissionRefusedError, ServerError, StoreTimeoutError
from phasegate.redact import redact

DEFAULT_TIMEOUT_S = 30.0
PgConn = psycopg.Connection[tuple[object, ...]]
KvParams = tuple[type, dict[str, Any]]  # how to open a client's connection in another process
_PLAIN = (str, int, float, bool, bytes, type(None))


def with_database(url: str, name: str) -> str:
    """The Postgres URL ``url`` pointed at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def with_db_index(url: str, index: int) -> str:
    """The Redis URL ``url`` pointed at DB ``index``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


def kv_where(client: redis.Redis) -> str:
    """``host:port/db`` of a client, for messages (no credentials)."""
    kw = client.connection_pool.connection_kwargs
    place = kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"
    return f"{place}/{kw.get('db', 0)}"


def kv_user(client: redis.Redis) -> str:
    return str(client.connection_pool.connection_kwargs.get("username") or "default")


def connect_kv(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> redis.Redis:
    """A redis-py client (bytes in, bytes out) that has answered a PING."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=min(timeout_s, 10.0), socket_timeout=timeout_s
    )
    with kv_errors(client, "PING"):
        client.ping()
    return client


def kv_params(client: redis.Redis) -> KvParams | None:
    """How to open the same connection in another process (the same server, user,
    DB and timeouts), or None when the client holds what cannot travel (a
    credential provider). They hold the password: never log them."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if kwargs.get("credential_provider") is not None:
        return None
    plain = {k: v for k, v in kwargs.items() if isinstance(v, _PLAIN) and not k.startswith("orig_")}
    return pool.connection_class, plain


def kv_from_params(params: KvParams) -> redis.Redis:
    """A client opened from :func:`kv_params` (in another process)."""
    cls, kwargs = params
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=cls, **kwargs))


@contextlib.contextmanager
def kv_errors(client: redis.Redis, operation: str, key: str | None = None) -> Iterator[None]:
    """Redis errors as phasegate errors naming the server, the operation and the key."""
    where, on = kv_where(client), f" on {key}" if key else ""
    try:
        yield
    except redis.exceptions.NoPermissionError as exc:
        raise permission_refused(client, operation, key, exc) from None
    except redis.AuthenticationError as exc:
        raise ServerError(
            f"Redis at {where} refused the credentials: {exc}",
            hint="check the user and password in the URL (redis://USER:PASSWORD@HOST:PORT/DB)",
        ) from None
    except redis.TimeoutError:
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        raise StoreTimeoutError(
            f"Redis at {where} did not answer {operation}{on} within {timeout} s",
            hint="the server is frozen, overloaded or unreachable; raise --store-timeout "
            "only if it is merely slow",
        ) from None
    except redis.ConnectionError as exc:
        raise ServerError(
            f"cannot reach Redis at {where} ({operation}{on}): {exc}",
            hint="check the URL (redis://host:port/db or rediss:// for TLS)",
        ) from None


def permission_refused(
    client: redis.Redis, operation: str, key: str | None, exc: Exception
) -> PermissionRefusedError:
    """The error for a command this Redis user may not run."""
    on = f" on {key}" if key else ""
    return PermissionRefusedError(
        f"Redis user {kv_user(client)} may not run {operation}{on} at {kv_where(client)}: {exc}",
        hint="the gate needs +ping and the read commands (`phasegate doctor --kv-url URL` "
        "prints the ACL SETUSER line)",
    )


def connect_pg(
    url: str, *, autocommit: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S
) -> PgConn:
    """A psycopg connection, with a clear error when the server does not answer.

    Autocommit by default: every write phasegate makes is an explicit
    ``conn.transaction()`` block, which is then a real transaction.
    """
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(2, int(timeout_s)))
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        if "password authentication failed" in text or "no password supplied" in text:
            raise ServerError(
                f"Postgres at {pg_where_url(url)} refused the credentials: {redact(text)}",
                hint="check the user and password in the URL",
            ) from None
        raise ServerError(
            f"cannot reach Postgres at {pg_where_url(url)}: {redact(text)}",
            hint="check the URL (postgresql://user@host:port/db)",
        ) from None


def pg_where_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 5432}{parts.path}"


def pg_where(conn: PgConn) -> str:
    """``host:port/db`` of a connection, for messages."""
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname}"


class Watchdog:
    """A deadline on Postgres work: with no :meth:`kick` for ``timeout_s``, the
    connection's socket is shut down, the blocked call fails, and leaving the
    block raises :class:`~phasegate.errors.StoreTimeoutError` naming ``what``.

    A stream kicks once per row or batch, so a long healthy stream never fires.
    Privilege errors inside the block become
    :class:`~phasegate.errors.PermissionRefusedError`.
    """

    def __init__(self, conn: PgConn, timeout_s: float, what: str) -> None:
        self.conn, self.timeout_s, self.what = conn, timeout_s, what
        self.where = pg_where(conn)
        self.user = conn.info.user
        self.last = time.monotonic()
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pg-watchdog", daemon=True)

    def kick(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout_s / 4)):
            if time.monotonic() - self.last > self.timeout_s:
                self.fired = True
                with contextlib.suppress(OSError):
                    cut = socket.socket(fileno=os.dup(self.conn.pgconn.socket))
                    cut.shutdown(socket.SHUT_RDWR)
                    cut.close()
                return

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self.fired:
            raise StoreTimeoutError(
                f"Postgres at {self.where} did not answer within {self.timeout_s:g} s "
                f"while {self.what}",
                hint="the server is frozen, overloaded or unreachable; raise --store-timeout "
                "only if it is merely slow",
            ) from None
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            raise PermissionRefusedError(
                f"Postgres role {self.user} may not do this at {self.where} while "
                f"{self.what}: {str(exc).strip()}",
                hint="the gate role needs SELECT on the migrated tables "
                "(`phasegate doctor --pg-url URL` prints the GRANT lines)",
            ) from None
        if isinstance(exc, psycopg.OperationalError):
            raise ServerError(
                f"lost Postgres at {self.where} while {self.what}: {redact(str(exc).strip())}"
            ) from None
