"""Fault injection on real servers: the proxy drops and stalls, a paused server
hangs and resumes, terminated backends break their sessions."""

from __future__ import annotations

import threading

import psycopg
import pytest
import redis

from phasegate.faults import FaultProxy, paused, terminate_backends
from phasegate.servers import Sandbox
from phasegate.servers.embedded import EmbeddedPostgres, EmbeddedValkey
from phasegate.stores import connect_pg


def test_the_proxy_passes_traffic_to_both_stores(scratch_kv_url: str, scratch_pg_url: str) -> None:
    """Through healthy proxies Redis and Postgres answer as directly."""
    with (
        FaultProxy.before(scratch_kv_url) as kv_proxy,
        FaultProxy.before(scratch_pg_url) as pg_proxy,
    ):
        client = redis.Redis.from_url(kv_proxy.url_for(scratch_kv_url))
        client.set("k", "v")
        assert client.get("k") == b"v"
        with psycopg.connect(pg_proxy.url_for(scratch_pg_url)) as conn:
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
        client.close()


def test_drop_resets_open_and_new_connections_until_healed(scratch_kv_url: str) -> None:
    """A dropped path fails the next command and new connections; heal restores both."""
    with FaultProxy.before(scratch_kv_url) as proxy:
        client = redis.Redis.from_url(
            proxy.url_for(scratch_kv_url), socket_timeout=2, retry_on_timeout=False
        )
        assert client.ping()
        proxy.drop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(proxy.url_for(scratch_kv_url), socket_timeout=2).ping()
        proxy.heal()
        assert client.ping()  # redis-py reconnects
        client.close()


def test_stall_holds_a_postgres_write_until_healed(scratch_pg_url: str) -> None:
    """Mid-session, a stalled path holds an INSERT (no reply, no error); healed, it lands."""
    proxy = FaultProxy.before(scratch_pg_url)
    with proxy, psycopg.connect(proxy.url_for(scratch_pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        proxy.stall()
        writer = threading.Thread(target=conn.execute, args=("INSERT INTO t VALUES (1)",))
        writer.start()
        writer.join(1.0)
        assert writer.is_alive(), "the write went through a stalled path"
        proxy.heal()
        writer.join(10)
        assert not writer.is_alive()
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_a_paused_server_hangs_clients_and_resumes(tmp_path: object) -> None:
    """SIGSTOP on an embedded Valkey times clients out; SIGCONT brings it back."""
    server = EmbeddedValkey().start()
    try:
        assert server.proc is not None
        client = redis.Redis.from_url(server.url, socket_timeout=0.5)
        client.set("k", "v")
        with paused(server.proc.pid), pytest.raises(redis.TimeoutError):
            client.get("k")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()


def test_terminated_backends_break_their_sessions(sandbox: Sandbox, scratch_pg_url: str) -> None:
    """pg_terminate_backend ends a database's sessions; the victim's next query fails."""
    victim = connect_pg(scratch_pg_url)
    database = victim.info.dbname
    with connect_pg(sandbox.pg_url) as admin:
        assert terminate_backends(admin, database) >= 1
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()


def test_a_killed_durable_valkey_restarts_with_every_acknowledged_write() -> None:
    """kill -9 mid-stream, restart on the same directory: every write it acknowledged is there."""
    server = EmbeddedValkey(durable=True).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        for i in range(200):
            client.rpush("acked", i)
        server.kill()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.restart()
        assert client.llen("acked") == 200
        client.close()
    finally:
        server.stop()


def test_a_killed_durable_postgres_recovers_every_committed_row() -> None:
    """kill -9 of the postmaster, restart on the same data directory: crash recovery
    keeps every committed row."""
    server = EmbeddedPostgres(durable=True).start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            for i in range(100):
                conn.execute("INSERT INTO t VALUES (%s)", (i,))
        server.kill()
        server.restart()
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
    finally:
        server.stop()
