"""The reference service: routes, write modes, read sources, bad input."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from phasegate.app.modes import Modes
from phasegate.backfill import backfill
from phasegate.errors import UsageError
from phasegate.load import runner


@pytest.fixture
def stores(
    seeded_kv: redis.Redis,
    schema_pg: psycopg.Connection[tuple[object, ...]],
    scratch_kv_url: str,
    scratch_pg_url: str,
) -> tuple[str, str, psycopg.Connection[tuple[object, ...]], redis.Redis]:
    """The ``now`` fixture in KV and backfilled into Postgres."""
    backfill(seeded_kv, schema_pg)
    return scratch_kv_url, scratch_pg_url, schema_pg, seeded_kv


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


@pytest.fixture
def serve(stores: tuple[str, str, Any, Any], tmp_path: Path) -> Iterator[Any]:
    """Start the service in a mode; returns its base URL."""
    kv_url, pg_url, _pg, _kv = stores
    with contextlib.ExitStack() as stack:

        def start(read: str, write: str) -> str:
            svc = stack.enter_context(
                runner.service(kv_url, pg_url, read=read, write=write, folder=tmp_path)
            )
            return svc.url

        yield start


def _pair(pg: psycopg.Connection[tuple[object, ...]]) -> tuple[str, str]:
    row = pg.execute("SELECT from_user, to_user FROM messages ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@pytest.mark.parametrize(
    ("write", "in_pg", "in_kv"), [("kv", False, True), ("pg", True, False), ("dual", True, True)]
)
def test_a_sent_message_lands_where_the_write_mode_says(
    serve: Any, stores: tuple[str, str, Any, Any], write: str, in_pg: bool, in_kv: bool
) -> None:
    """kv writes KV only, pg writes Postgres only, dual writes both, with one record."""
    _kv_url, _pg_url, pg, kv = stores
    frm, to = _pair(pg)
    url = serve("pg", write)
    status, body, _ = _call(f"{url}/api/messages", {"from": frm, "to": to, "text": "hello"})
    assert status == 201, body
    record = body["records"][0]
    found = pg.execute("SELECT text FROM messages WHERE id = %s", (record["id"],)).fetchone()
    assert (found is not None) is in_pg
    assert bool(kv.exists(f"msg:{record['id']}")) is in_kv
    if in_kv:
        assert record["id"].encode() in kv.lrange(f"inbox:{to}", 0, -1)


def test_both_read_sources_answer_the_same_after_dual_writes(
    serve: Any, stores: tuple[str, str, Any, Any]
) -> None:
    """A message and a post written dual read back identically from KV and Postgres."""
    _kv_url, _pg_url, pg, _kv = stores
    frm, to = _pair(pg)
    writer = serve("kv", "dual")
    _call(f"{writer}/api/messages", {"from": frm, "to": to, "text": "both stores"})
    _call(f"{writer}/api/board", {"author": frm, "content": "post", "category": "idea", "tags": []})
    from_pg = serve("pg", "dual")
    for path in (f"/api/messages/inbox?handle={to}", "/api/board?limit=20", f"/api/users/{frm}"):
        s1, kv_answer, h1 = _call(writer + path)
        s2, pg_answer, h2 = _call(from_pg + path)
        assert (s1, h1["x-read-source"], s2, h2["x-read-source"]) == (200, "kv", 200, "pg")
        assert kv_answer == pg_answer, path


def test_bad_input_is_a_400_naming_the_field(serve: Any) -> None:
    """A missing handle, a bad limit, an empty text: 400 with the field named; unknown 404."""
    url = serve("pg", "pg")
    assert _call(f"{url}/api/messages/inbox")[:2] == (400, {"error": "handle is required"})
    status, body, _ = _call(f"{url}/api/messages/inbox?handle=al&limit=5000")
    assert (status, body["error"]) == (400, "limit must be 1 to 200")
    status, body, _ = _call(f"{url}/api/messages", {"from": "al", "to": "bo", "text": ""})
    assert status == 400
    assert "text must be 1 to 2000 characters" in body["error"]
    assert _call(f"{url}/api/users/nobody-at-all")[0] == 404


def test_modes_come_from_flags_then_environment() -> None:
    """--read beats PHASEGATE_READ_<TYPE>, which beats --read-all; bad values are named."""
    env = {"PHASEGATE_READ_MESSAGES": "pg", "PHASEGATE_WRITE_BOARD": "dual"}
    modes = Modes.parse(["users=pg"], [], read_all="kv", write_all="kv", env=env)
    assert (modes.read["messages"], modes.read["users"], modes.read["board"]) == ("pg", "pg", "kv")
    assert modes.write["board"] == "dual"
    with pytest.raises(UsageError, match="messages: 'postgres' is not one of kv, pg"):
        Modes.parse(["messages=postgres"], [], env={})
