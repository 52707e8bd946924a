"""testcontainers, used only when a Docker daemon answers quickly.

testcontainers fails unclearly without a socket and blocks about 40 s on one
that never answers, so we ping the daemon ourselves with a short timeout first.
"""

from __future__ import annotations

import os
import socket
from contextlib import AbstractContextManager, ExitStack
from typing import Any, cast
from urllib.parse import urlsplit

from phasegate.errors import ServerError

PING_TIMEOUT_S = 2.0
POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7-alpine"


def docker_answers(timeout: float = PING_TIMEOUT_S) -> bool:
    """True when the Docker daemon answers ``GET /_ping`` within ``timeout``.

    >>> import os; os.environ["DOCKER_HOST"] = "unix:///nonexistent.sock"
    >>> docker_answers()
    False
    >>> del os.environ["DOCKER_HOST"]
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parts = urlsplit(host)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: str | tuple[str, int] = parts.path
    elif parts.scheme in ("tcp", "http"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = (parts.hostname or "localhost", parts.port or 2375)
    else:
        return False
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(256)
        except OSError:
            return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply[:16]


def start_containers(stack: ExitStack, *, pg: bool, kv: bool) -> tuple[str | None, str | None]:
    """Start the wanted containers on ``stack``; return (pg admin URL, kv URL)."""
    try:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise ServerError(f"testcontainers is not importable: {exc}") from exc
    pg_url = kv_url = None
    try:
        if pg:
            container = PostgresContainer(
                POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres"
            )
            started = stack.enter_context(_managed(container))
            pg_url = started.get_connection_url(driver=None)
        if kv:
            redis_container = stack.enter_context(_managed(RedisContainer(REDIS_IMAGE)))
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            kv_url = f"redis://{host}:{port}/0"
    except Exception as exc:
        raise ServerError(
            f"Docker answered but starting a container failed: {exc}",
            hint="set --docker never to use the embedded servers instead",
        ) from exc
    return pg_url, kv_url


def _managed(container: Any) -> AbstractContextManager[Any]:
    return cast(AbstractContextManager[Any], container)  # DockerContainer is a context manager
