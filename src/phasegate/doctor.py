"""What the gate and the backfill need of each store, and what the given users have.

``phasegate doctor --kv-url URL --pg-url URL`` tries every Redis command the
gate sends (on a real key of the right TYPE where one exists, so ACL key
patterns count) and asks Postgres for every privilege, then prints the
least-privilege ``ACL SETUSER`` and ``GRANT`` lines. It only reads: no
command it sends writes anything.

The Redis commands, all read-only: ``PING`` (the connection check), ``SELECT``
(a DB other than 0), ``DBSIZE``, ``SCAN`` (typed), ``TYPE``, ``MGET`` (strings),
``LRANGE``/``SMEMBERS``/``HGETALL``/``ZRANGE`` (the other types, one command
per key, a batch of them sent at once). No scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from phasegate.mappings import MAPPINGS
from phasegate.stores import kv_user, kv_where

# (command, what it is for, needed by the gate; False: optional, it has a fallback)
KV_COMMANDS: tuple[tuple[str, str, bool], ...] = (
    ("PING", "the connection check", True),
    ("DBSIZE", "knowing when every key was seen", True),
    ("SCAN", "listing keys by TYPE (never KEYS)", True),
    ("TYPE", "the TYPE of each key of a batch", True),
    ("MGET", "reading STRING values", True),
    ("LRANGE", "reading LIST values", True),
    ("SMEMBERS", "reading SET values", True),
    ("HGETALL", "reading HASH values", True),
    ("ZRANGE", "reading sorted sets", True),
)
_PROBE = "phasegate:doctor:probe"


@dataclass(frozen=True)
class Check:
    """One need of one store: allowed, refused (with the server's words), or unknown."""

    store: str
    need: str
    why: str
    required: bool
    allowed: bool | None
    detail: str = ""

    @property
    def blocking(self) -> bool:
        return self.required and self.allowed is False


def kv_checks(url: str, timeout_s: float = 10.0) -> list[Check]:
    """Try each command the gate sends, as the URL's user."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    db = int(urlsplit(url).path.strip("/") or "0")
    out: list[Check] = []
    try:
        if db != 0:
            out.append(_kv_try("SELECT", f"using DB {db}", True, client.ping))
            if out[-1].blocking:
                return out
        keys = _sample_keys(client)
        tries: dict[str, Callable[[], Any]] = {
            "PING": client.ping,
            "DBSIZE": client.dbsize,
            "SCAN": lambda: client.scan(0, count=10, _type="string"),
            "TYPE": lambda: client.type(keys.get("string", _PROBE)),
            "MGET": lambda: client.mget([keys.get("string", _PROBE)]),
            "LRANGE": lambda: client.lrange(keys.get("list", _PROBE), 0, 0),
            "SMEMBERS": lambda: client.smembers(keys.get("set", _PROBE)),
            "HGETALL": lambda: client.hgetall(keys.get("hash", _PROBE)),
            "ZRANGE": lambda: client.zrange(keys.get("zset", _PROBE), 0, 0),
        }
        for command, why, required in KV_COMMANDS:
            out.append(_kv_try(command, why, required, tries[command]))
    finally:
        client.close()
    return out


def _sample_keys(client: redis.Redis) -> dict[str, bytes]:
    """One real key per TYPE, where SCAN is allowed (ACL key patterns then count)."""
    found: dict[str, bytes] = {}
    for rtype in ("string", "list", "set", "hash", "zset"):
        try:
            _cursor, keys = client.scan(0, count=200, _type=rtype)
        except redis.RedisError:
            return found
        if keys:
            found[rtype] = keys[0] if isinstance(keys[0], bytes) else str(keys[0]).encode()
    return found


def _kv_try(command: str, why: str, required: bool, call: Callable[[], Any]) -> Check:
    try:
        call()
    except redis.exceptions.NoPermissionError as exc:
        return Check("redis", command, why, required, False, str(exc))
    except redis.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return Check("redis", command, why, required, False, f"not supported here: {exc}")
        return Check("redis", command, why, required, True, f"allowed ({exc})")
    except redis.RedisError as exc:
        return Check("redis", command, why, required, None, f"could not check: {exc}")
    return Check("redis", command, why, required, True)


def kv_identity(url: str) -> tuple[str, str]:
    """(user, host:port/db) a Redis URL names, without connecting."""
    client = redis.Redis.from_url(url)
    try:
        return kv_user(client), kv_where(client)
    finally:
        client.close()


def acl_lines() -> list[str]:
    """The ACL SETUSER line of a least-privilege gate (and backfill) user."""
    commands = [c for c, _why, _needed in KV_COMMANDS]
    allowed = " ".join(f"+{c.lower()}" for c in ("SELECT", *commands))
    return [
        f"ACL SETUSER phasegate_gate on >CHANGE-ME ~* resetchannels -@all {allowed}",
        "# the backfill reads Redis exactly as the gate does: the same user serves both",
    ]


TABLES = tuple(m.table for m in MAPPINGS.values())
BOOKKEEPING = ("phasegate_backfill_runs", "phasegate_backfill_batches", "phasegate_findings")


def pg_checks(url: str, timeout_s: float = 10.0) -> list[Check]:
    """Ask Postgres what the URL's role may do, for the gate and for the backfill."""
    out: list[Check] = []
    with psycopg.connect(url, autocommit=True, connect_timeout=max(2, int(timeout_s))) as conn:
        conn.read_only = True
        present = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            )
        }
        out.append(
            _pg_tables(
                conn, TABLES, "SELECT", "gate: reading every migrated table", True, present=present
            )
        )
        for privilege in ("INSERT", "UPDATE", "DELETE"):
            out.append(
                _pg_tables(
                    conn, TABLES, privilege, "backfill and reconcile", False, present=present
                )
            )
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            out.append(
                _pg_tables(
                    conn,
                    BOOKKEEPING,
                    privilege,
                    "backfill: its bookkeeping",
                    False,
                    present=present,
                )
            )
        row = conn.execute(
            "SELECT has_schema_privilege(current_schema(), 'USAGE'), "
            "has_schema_privilege(current_schema(), 'CREATE'), "
            "has_database_privilege(current_database(), 'TEMP')"
        ).fetchone()
        assert row is not None
        usage, create, temp = (bool(v) for v in row)
        out.append(
            Check("postgres", "USAGE on the schema", "gate: reading its tables", True, usage)
        )
        out.append(
            Check(
                "postgres",
                "CREATE on the schema",
                "backfill: its bookkeeping tables (or create them once as the owner)",
                False,
                create,
            )
        )
        out.append(
            Check("postgres", "TEMPORARY on the database", "backfill: staging tables", False, temp)
        )
    return out


def _pg_tables(
    conn: psycopg.Connection[tuple[object, ...]],
    tables: tuple[str, ...],
    privilege: str,
    why: str,
    required: bool,
    *,
    present: set[str],
) -> Check:
    """One privilege on a group of tables: allowed on all, or the tables refused."""
    group = "the migrated tables" if tables == TABLES else "the bookkeeping tables"
    need = f"{privilege} on {group}"
    missing = [t for t in tables if t not in present]
    refused = []
    for table in tables:
        if table in missing:
            continue
        query = sql.SQL("SELECT has_table_privilege({}, {})")
        row = conn.execute(query.format(sql.Literal(table), sql.Literal(privilege))).fetchone()
        if not (row and row[0]):
            refused.append(table)
    detail = "; ".join(
        part
        for part in (
            f"refused on {', '.join(refused)}" if refused else "",
            f"not created yet: {', '.join(missing)}" if missing else "",
        )
        if part
    )
    allowed = False if refused else None if len(missing) == len(tables) else True
    return Check("postgres", need, why, required, allowed, detail)


def grant_lines(database: str) -> list[str]:
    """The GRANT lines of a SELECT-only gate role and of a backfill role."""
    tables = ", ".join(TABLES)
    books = ", ".join(BOOKKEEPING)
    return [
        "-- the gate: reads only",
        "CREATE ROLE phasegate_gate LOGIN PASSWORD 'CHANGE-ME';",
        f"GRANT CONNECT ON DATABASE {database} TO phasegate_gate;",
        "GRANT USAGE ON SCHEMA public TO phasegate_gate;",
        f"GRANT SELECT ON {tables} TO phasegate_gate;",
        "-- the backfill (and fk add, reconcile): writes the migrated tables",
        "CREATE ROLE phasegate_backfill LOGIN PASSWORD 'CHANGE-ME';",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO phasegate_backfill;",
        "GRANT USAGE, CREATE ON SCHEMA public TO phasegate_backfill;",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO phasegate_backfill;",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {books} TO phasegate_backfill;"
        "  -- once they exist",
        "-- schema apply and fk add (ALTER TABLE) run as the tables' owner",
    ]


def summary(checks: list[Check]) -> Iterator[str]:
    """One line per refused need, for the end of the report."""
    for c in checks:
        if c.blocking:
            yield f"{c.store}: {c.need} refused ({c.why}): {c.detail}"
