"""HTTP load profile: the /vibe endpoints, weighted like the app's traffic.

Plain Locust. Tasks are tagged by data type (``--tags messages``; writes also
``writes``, left out against given servers), request
parameters come from seeded data (``--params-file``), response times are kept in
1 ms buckets, and the quitting hook sets the exit code (see
``phasegate.load.stats``). Point ``--host`` at the reference service (the
default in ``phasegate load run`` and the gate) or at the real app.

    locust -f load/locustfile.py --headless -u 100 -r 20 -t 60s \\
        --host http://127.0.0.1:8000 --params-file params.json
"""

from __future__ import annotations

from typing import Any

from locust import HttpUser, between, events, tag, task

from phasegate.load import hooks


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    hooks.add_arguments(parser)


@events.test_start.add_listener
def _start(environment: Any, **_kwargs: Any) -> None:
    hooks.on_test_start()


@events.quitting.add_listener
def _quit(environment: Any, **_kwargs: Any) -> None:
    hooks.on_quitting(environment)


class VibeUser(HttpUser):
    """One builder using /vibe: reading the inbox and threads most, posting sometimes."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.params = hooks.load_params(self.environment)

    def _get(self, path: str, name: str, **query: Any) -> None:
        with self.client.get(path, params=query, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{name}: HTTP {r.status_code}")

    @tag("messages")
    @task(30)
    def inbox(self) -> None:
        self._get("/api/messages/inbox", "inbox", handle=hooks.pick(self.params, "inbox_handles"))

    @tag("messages")
    @task(25)
    def thread(self) -> None:
        a, b = hooks.pick(self.params, "thread_pairs")
        self._get("/api/messages/thread", "thread", handle=a, other=b)

    @tag("messages", "writes")
    @task(4)
    def send_message(self) -> None:
        a, b = hooks.pick(self.params, "thread_pairs")
        body = {"from": a, "to": b, "text": "load test: shipping it"}
        with self.client.post(
            "/api/messages", json=body, name="send_message", catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"send_message: HTTP {r.status_code}")

    @tag("board")
    @task(10)
    def board_feed(self) -> None:
        self._get("/api/board", "board_feed", limit=50)

    @tag("board")
    @task(4)
    def board_by_category(self) -> None:
        self._get(
            "/api/board",
            "board_by_category",
            category=hooks.pick(self.params, "categories"),
            limit=20,
        )

    @tag("board", "writes")
    @task(2)
    def board_post(self) -> None:
        body = {
            "author": hooks.pick(self.params, "users"),
            "content": "shipped a thing",
            "category": "shipped",
            "tags": ["load"],
        }
        with self.client.post("/api/board", json=body, name="board_post", catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"board_post: HTTP {r.status_code}")

    @tag("streaks")
    @task(5)
    def streak(self) -> None:
        handle = hooks.pick(self.params, "streak_handles")
        self._get(f"/api/streaks/{handle}", "streak_of_handle")

    @tag("streaks")
    @task(3)
    def leaderboard(self) -> None:
        self._get("/api/streaks", "streak_leaderboard", limit=50)

    @tag("invites")
    @task(3)
    def invites(self) -> None:
        self._get(
            "/api/invites", "invites_by_creator", handle=hooks.pick(self.params, "invite_creators")
        )

    @tag("connections")
    @task(3)
    def pending(self) -> None:
        self._get(
            "/api/connections/pending",
            "pending_connections",
            handle=hooks.pick(self.params, "pending_handles"),
        )

    @tag("friends")
    @task(3)
    def friends(self) -> None:
        self._get(
            "/api/friends", "friends_of_handle", handle=hooks.pick(self.params, "friend_handles")
        )

    @tag("games")
    @task(3)
    def games(self) -> None:
        self._get("/api/games", "games_by_player", player=hooks.pick(self.params, "players"))

    @tag("users")
    @task(6)
    def user(self) -> None:
        handle = hooks.pick(self.params, "users")
        self._get(f"/api/users/{handle}", "user_by_handle")
