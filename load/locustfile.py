"""HTTP load profile: the app's endpoints, weighted like its traffic.

Plain Locust. The tasks are the endpoint table (``phasegate.endpoints``): every
read path and write op a registered mapping declares with a load weight, a
user's own types included. Tasks are tagged by data type (``--tags messages``;
writes also ``writes``, left out against given servers), request parameters
come from seeded data (``--params-file``), response times are kept in 1 ms
buckets, and the quitting hook sets the exit code (see
``phasegate.load.stats``). Point ``--host`` at the reference service (the
default in ``phasegate load run`` and the gate) or at the real app.

    locust -f load/locustfile.py --headless -u 100 -r 20 -t 60s \\
        --host http://127.0.0.1:8000 --params-file params.json
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from locust import HttpUser, between, events, tag

from phasegate.endpoints import LOADED_READS, LOADED_WRITES, request_of, write_path
from phasegate.load import hooks
from phasegate.mappings.declare import ReadPath, WriteOp


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    hooks.add_arguments(parser)


@events.test_start.add_listener
def _start(environment: Any, **_kwargs: Any) -> None:
    hooks.on_test_start()


@events.quitting.add_listener
def _quit(environment: Any, **_kwargs: Any) -> None:
    hooks.on_quitting(environment)


def read_task(read: ReadPath) -> Callable[[VibeUser], None]:
    @tag(read.type_id)
    def task(user: VibeUser) -> None:
        params = hooks.pick(user.params, read.name)
        if params is None:
            return
        path, query = request_of(read, params)
        with user.client.get(path, params=query, name=read.name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{read.name}: HTTP {r.status_code}")

    task.__name__ = read.name
    return task


def write_task(op: WriteOp) -> Callable[[VibeUser], None]:
    @tag(op.type_id, "writes")
    def task(user: VibeUser) -> None:
        body = hooks.pick(user.params, op.name)
        if body is None:
            return
        with user.client.request(
            op.method, write_path(op, body), json=body, name=op.name, catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"{op.name}: HTTP {r.status_code}")

    task.__name__ = op.name
    return task


class VibeUser(HttpUser):
    """One user of the app: reading the inbox and threads most, posting sometimes."""

    wait_time = between(1, 3)
    tasks: ClassVar = {read_task(r): r.weight for r in LOADED_READS.values()} | {
        write_task(w): w.weight for w in LOADED_WRITES.values()
    }

    def on_start(self) -> None:
        self.params = hooks.load_params(self.environment)
