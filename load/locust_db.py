"""Direct-database load profile: the catalogued queries themselves, timed.

Plain Locust with psycopg under gevent: ``locust`` is imported first, so gevent
has patched the standard library before psycopg is imported (psycopg 3 then
waits cooperatively). One pool shared by all users; each task runs one query of
the catalog with real parameters and reports it as a Locust request named
after the query. Tags are the data types.

    locust -f load/locust_db.py --headless -u 100 -r 20 -t 60s \\
        --host postgresql://127.0.0.1:5432/vibe --params-file params.json
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from locust import User, between, events, tag, task
from psycopg_pool import ConnectionPool

from phasegate.load import hooks  # after locust: gevent patches first
from phasegate.queries import load_catalog

CATALOG = load_catalog()
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


class QueryUser(User):
    """Runs the read paths' SQL with the app's weights."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.params = hooks.load_params(self.environment)

    def _run(self, name: str, *values: Any) -> None:
        query = CATALOG[name]
        started = time.perf_counter()
        rows, error = 0, None
        try:
            with _pool["pg"].connection() as conn:
                cur = psycopg.RawCursor(conn)
                cur.execute(query.sql, values)
                rows = len(cur.fetchall())
        except psycopg.Error as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="SQL",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=rows,
            exception=error,
            context={},
        )

    @tag("messages")
    @task(30)
    def inbox(self) -> None:
        self._run("inbox", hooks.pick(self.params, "inbox_handles"), 50)

    @tag("messages")
    @task(25)
    def thread(self) -> None:
        a, b = hooks.pick(self.params, "thread_pairs")
        self._run("thread", a, b, 50)

    @tag("messages")
    @task(8)
    def unread_count(self) -> None:
        self._run("unread_count", hooks.pick(self.params, "inbox_handles"))

    @tag("board")
    @task(10)
    def board_feed(self) -> None:
        self._run("board_feed", 50)

    @tag("board")
    @task(4)
    def board_by_category(self) -> None:
        self._run("board_by_category", hooks.pick(self.params, "categories"), 20)

    @tag("streaks")
    @task(5)
    def streak_of_handle(self) -> None:
        self._run("streak_of_handle", hooks.pick(self.params, "streak_handles"))

    @tag("streaks")
    @task(3)
    def streak_leaderboard(self) -> None:
        self._run("streak_leaderboard", 50)

    @tag("invites")
    @task(3)
    def invites_by_creator(self) -> None:
        self._run("invites_by_creator", hooks.pick(self.params, "invite_creators"))

    @tag("connections")
    @task(3)
    def pending_connections(self) -> None:
        self._run("pending_connections", hooks.pick(self.params, "pending_handles"))

    @tag("friends")
    @task(3)
    def friends_of_handle(self) -> None:
        self._run("friends_of_handle", hooks.pick(self.params, "users"))

    @tag("games")
    @task(3)
    def games_by_player(self) -> None:
        self._run("games_by_player", hooks.pick(self.params, "players"))

    @tag("users")
    @task(6)
    def user_by_handle(self) -> None:
        self._run("user_by_handle", hooks.pick(self.params, "users"))
