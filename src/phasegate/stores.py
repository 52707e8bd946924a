"""Connections to the two stores, and URL helpers that keep secrets intact.

>>> with_database("postgresql://u:p@h:5432/postgres?sslmode=require", "x")
'postgresql://u:p@h:5432/x?sslmode=require'
>>> with_db_index("redis://h:6379/0", 3)
'redis://h:6379/3'
>>> with_db_index("redis://h:6379", 3)
'redis://h:6379/3'
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from phasegate.errors import ServerError
from phasegate.settings import redact_url


def with_database(url: str, name: str) -> str:
    """The Postgres URL ``url`` pointed at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def with_db_index(url: str, index: int) -> str:
    """The Redis URL ``url`` pointed at DB ``index``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


def connect_kv(url: str) -> redis.Redis:
    """A redis-py client (bytes in, bytes out) that has answered a PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=60)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServerError(
            f"cannot reach Redis at {redact_url(url)}: {exc}",
            hint="check the URL (redis://host:port/db or rediss:// for TLS)",
        ) from None
    return client


def connect_pg(url: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection, with a clear error when the server does not answer.

    Autocommit by default: every write phasegate makes is an explicit
    ``conn.transaction()`` block, which is then a real transaction.
    """
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ServerError(
            f"cannot reach Postgres at {redact_url(url)}: {str(exc).strip()}",
            hint="check the URL (postgresql://user@host:port/db)",
        ) from None
