"""The sandbox: servers where phasegate makes scratch stores it may write to.

Resolution, once per process: sandbox URLs given (``--sandbox-pg-url``,
``--sandbox-kv-url``), else testcontainers if Docker answers a 2 s ping, else
the embedded servers. Scratch stores are a database per use on Postgres and a
claimed, empty DB index on Redis; both are removed afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import psycopg
import redis
from psycopg import sql

from phasegate.errors import ServerError
from phasegate.servers.docker import docker_answers, start_containers
from phasegate.servers.embedded import EmbeddedPostgres, EmbeddedValkey
from phasegate.settings import Settings, redact_url
from phasegate.stores import with_database, with_db_index

# Redis DB indexes phasegate may claim; the claims themselves live in CLAIM_DB.
CLAIM_DB = 15
_CLAIM_TTL_S = 6 * 3600


@dataclass
class Sandbox:
    """Sandbox servers: admin URLs plus where each came from."""

    pg_url: str
    kv_url: str
    origin: dict[str, str]
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return (
            f"postgres {redact_url(self.pg_url)} ({self.origin['pg']}), "
            f"redis {redact_url(self.kv_url)} ({self.origin['kv']})"
        )


def open_sandbox(settings: Settings) -> Sandbox:
    """Resolve and start (if needed) the sandbox servers for this process."""
    stack = ExitStack()
    try:
        pg_url, kv_url = settings.sandbox_pg_url, settings.sandbox_kv_url
        origin = {"pg": "given", "kv": "given"}
        if (pg_url is None or kv_url is None) and settings.docker == "auto" and docker_answers():
            got_pg, got_kv = start_containers(stack, pg=pg_url is None, kv=kv_url is None)
            if pg_url is None:
                pg_url, origin["pg"] = got_pg, "docker"
            if kv_url is None:
                kv_url, origin["kv"] = got_kv, "docker"
        if pg_url is None:
            pg = EmbeddedPostgres().start()
            stack.callback(pg.stop)
            pg_url, origin["pg"] = pg.url, "embedded"
        if kv_url is None:
            kv = EmbeddedValkey().start()
            stack.callback(kv.stop)
            kv_url, origin["kv"] = kv.url, "embedded"
        _check_reachable(pg_url, kv_url)
    except BaseException:
        stack.close()
        raise
    return Sandbox(pg_url, kv_url, origin, stack)


def _check_reachable(pg_url: str, kv_url: str) -> None:
    try:
        with psycopg.connect(pg_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise ServerError(
            f"sandbox Postgres at {redact_url(pg_url)} does not answer: {exc}",
            hint="check --sandbox-pg-url, or unset it to use the embedded server",
        ) from None
    client = redis.Redis.from_url(kv_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServerError(
            f"sandbox Redis at {redact_url(kv_url)} does not answer: {exc}",
            hint="check --sandbox-kv-url, or unset it to use the embedded server",
        ) from None
    finally:
        client.close()


@contextmanager
def scratch_database(admin_url: str, prefix: str = "phasegate") -> Iterator[str]:
    """A new, empty Postgres database for the block; dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def scratch_kv(server_url: str) -> Iterator[str]:
    """An empty Redis DB index claimed for the block; flushed and released afterwards.

    Claims are ``SET NX`` keys in DB 15, so concurrent workers (and other users
    of a shared server) never get the same DB; a DB holding data is never used.
    """
    base = redis.Redis.from_url(server_url)
    try:
        count = _database_count(base)
        claims = redis.Redis.from_url(with_db_index(server_url, CLAIM_DB))
        token = secrets.token_hex(8)
        for index in range(1, min(count, CLAIM_DB)):
            claim = f"phasegate:sandbox:claim:{index}"
            if not claims.set(claim, token, nx=True, ex=_CLAIM_TTL_S):
                continue
            url = with_db_index(server_url, index)
            db = redis.Redis.from_url(url)
            if db.dbsize():  # someone else's data: leave it alone
                db.close()
                claims.delete(claim)
                continue
            try:
                yield url
            finally:
                db.flushdb()
                db.close()
                if claims.get(claim) == token.encode():
                    claims.delete(claim)
                claims.close()
            return
        raise ServerError(
            f"no free Redis DB index on {redact_url(server_url)} (1..{CLAIM_DB - 1} busy)",
            hint="free a DB index, run fewer workers, or use the embedded server",
        )
    finally:
        base.close()


def _database_count(client: redis.Redis) -> int:
    with contextlib.suppress(redis.RedisError):
        reply = client.config_get("databases")
        return int(str(reply.get("databases", 16)))
    return 16
