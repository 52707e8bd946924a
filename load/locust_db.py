"""Direct-database load profile: the catalogued queries themselves, timed.

Plain Locust with psycopg under gevent: ``locust`` is imported first, so gevent
has patched the standard library before psycopg is imported (psycopg 3 then
waits cooperatively). One pool shared by all users; one task per read path of
the endpoint table with a load weight (those no endpoint serves included, such
as the unread count), each running its catalogued query with real parameters,
reported as a Locust request named after the query. Tags are the data types.

    locust -f load/locust_db.py --headless -u 100 -r 20 -t 60s \\
        --host postgresql://127.0.0.1:5432/vibe --params-file params.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import psycopg
from locust import User, between, events, tag
from psycopg_pool import ConnectionPool

from phasegate.endpoints import READS, query_of  # after locust: gevent patches first
from phasegate.load import hooks
from phasegate.mappings.declare import ReadPath

_pool: dict[str, ConnectionPool[Any]] = {}


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    hooks.add_arguments(parser)


@events.test_start.add_listener
def _start(environment: Any, **_kwargs: Any) -> None:
    hooks.on_test_start()
    _pool["pg"] = ConnectionPool(
        environment.host, min_size=4, max_size=20, kwargs={"autocommit": True}, open=True
    )


@events.quitting.add_listener
def _quit(environment: Any, **_kwargs: Any) -> None:
    hooks.on_quitting(environment)
    if "pg" in _pool:
        _pool["pg"].close()


def query_task(read: ReadPath) -> Callable[[QueryUser], None]:
    query = query_of(read)

    @tag(read.type_id)
    def task(user: QueryUser) -> None:
        params = hooks.pick(user.params, read.name)
        if params is None:
            return
        values = [params[p.name] for p in query.params]
        started = time.perf_counter()
        rows, error = 0, None
        try:
            with _pool["pg"].connection() as conn:
                cur = psycopg.RawCursor(conn)
                cur.execute(query.sql, values)
                rows = len(cur.fetchall())
        except psycopg.Error as exc:
            error = exc
        user.environment.events.request.fire(
            request_type="SQL",
            name=read.name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=rows,
            exception=error,
            context={},
        )

    task.__name__ = read.name
    return task


class QueryUser(User):
    """Runs the read paths' SQL with the app's weights."""

    wait_time = between(1, 3)
    tasks: ClassVar = {query_task(r): r.weight for r in READS.values() if r.weight}

    def on_start(self) -> None:
        self.params = hooks.load_params(self.environment)
