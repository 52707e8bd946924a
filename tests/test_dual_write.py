"""Dual writes under real faults: a store cut off mid-burst loses nothing.

The reference service writes in ``dual`` mode through fault proxies in front of
Postgres and Redis. With one side dropped, the write is acknowledged, lands on
the other side and in the journal; replaying the journal after healing makes
both stores hold it. With both sides dropped nothing is acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from phasegate.backfill import backfill
from phasegate.dualwrite import kvexec, kvplan
from phasegate.dualwrite.change import Change
from phasegate.dualwrite.writer import replay_journal
from phasegate.faults import FaultProxy
from phasegate.journal import Journal
from phasegate.load import runner

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass
class Rig:
    url: str
    pg: Conn
    kv: redis.Redis
    pg_proxy: FaultProxy
    kv_proxy: FaultProxy
    journal: Journal
    pair: tuple[str, str]
    pg_url: str


@pytest.fixture
def rig(
    seeded_kv: redis.Redis,
    schema_pg: Conn,
    scratch_kv_url: str,
    scratch_pg_url: str,
    tmp_path: Path,
) -> Iterator[Rig]:
    """The service in dual mode, each store behind a fault proxy, a journal on disk."""
    backfill(seeded_kv, schema_pg)
    row = schema_pg.execute(
        "SELECT from_user, to_user FROM messages ORDER BY id LIMIT 1"
    ).fetchone()
    assert row is not None
    journal_path = tmp_path / "journal.jsonl"
    with contextlib.ExitStack() as stack:
        pg_proxy = stack.enter_context(FaultProxy.before(scratch_pg_url))
        kv_proxy = stack.enter_context(FaultProxy.before(scratch_kv_url))
        svc = stack.enter_context(
            runner.service(
                kv_proxy.url_for(scratch_kv_url),
                pg_proxy.url_for(scratch_pg_url),
                read="pg",
                write="dual",
                extra=["--journal", str(journal_path)],
                folder=tmp_path,
            )
        )
        yield Rig(
            svc.url,
            schema_pg,
            seeded_kv,
            pg_proxy,
            kv_proxy,
            Journal(journal_path),
            (str(row[0]), str(row[1])),
            scratch_pg_url,
        )


def _send(rig: Rig, text: str) -> tuple[int, Any]:
    frm, to = rig.pair
    body = json.dumps({"from": frm, "to": to, "text": text}).encode()
    request = urllib.request.Request(
        f"{rig.url}/api/messages", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())["records"][0]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _in_pg(rig: Rig, msg_id: str) -> bool:
    return rig.pg.execute("SELECT 1 FROM messages WHERE id = %s", (msg_id,)).fetchone() is not None


def _in_kv(rig: Rig, msg_id: str) -> bool:
    return bool(rig.kv.exists(f"msg:{msg_id}"))


def test_with_postgres_cut_off_the_write_reaches_kv_and_the_journal(rig: Rig) -> None:
    """Postgres dropped: acknowledged, in KV, journaled as a Postgres miss; replay lands it."""
    rig.pg_proxy.drop()
    status, record = _send(rig, "while postgres is away")
    assert status == 201, record
    assert _in_kv(rig, record["id"])
    assert not _in_pg(rig, record["id"])
    (entry,) = rig.journal.pending()
    assert (entry.failed, entry.labels) == ("pg", [f"messages:{record['id']}"])
    rig.pg_proxy.heal()
    replayed = replay_journal(rig.journal, rig.kv, rig.pg)
    assert [e.id for e in replayed.applied] == [entry.id]
    assert _in_pg(rig, record["id"])
    assert rig.journal.pending() == []
    assert replay_journal(rig.journal, rig.kv, rig.pg).applied == []


def test_with_kv_cut_off_the_write_stays_in_postgres_and_the_journal(rig: Rig) -> None:
    """KV dropped: acknowledged from Postgres, journaled as a KV miss; replay writes KV."""
    rig.kv_proxy.drop()
    status, record = _send(rig, "while redis is away")
    assert status == 201, record
    assert _in_pg(rig, record["id"])
    assert not _in_kv(rig, record["id"])
    (entry,) = rig.journal.pending()
    assert entry.failed == "kv"
    rig.kv_proxy.heal()
    replay_journal(rig.journal, rig.kv, rig.pg)
    assert _in_kv(rig, record["id"])
    assert rig.kv.lrange(f"inbox:{rig.pair[1]}", 0, -1).count(record["id"].encode()) == 1


def test_with_both_cut_off_nothing_is_acknowledged(rig: Rig) -> None:
    """Both stores dropped: HTTP 503, nothing stored anywhere, nothing journaled."""
    rig.pg_proxy.drop()
    rig.kv_proxy.drop()
    status, body = _send(rig, "into the void")
    assert status == 503
    assert "both stores failed" in body["error"]
    assert rig.journal.pending() == []


def test_a_replay_still_failing_stays_pending(rig: Rig) -> None:
    """An entry whose store is still down is reported and kept for the next replay."""
    through_proxy = psycopg.connect(rig.pg_proxy.url_for(rig.pg_url), autocommit=True)
    rig.pg_proxy.drop()
    status, record = _send(rig, "kept for later")
    assert status == 201
    replayed = replay_journal(rig.journal, rig.kv, through_proxy)
    assert replayed.applied == []
    assert [e.labels for e, _why in replayed.failed] == [[f"messages:{record['id']}"]]
    assert len(rig.journal.pending()) == 1
    through_proxy.close()
    rig.pg_proxy.heal()
    assert len(replay_journal(rig.journal, rig.kv, rig.pg).applied) == 1
    assert _in_pg(rig, record["id"])


def test_kv_writes_are_idempotent(seeded_kv: redis.Redis) -> None:
    """Running a message's KV writes twice leaves one copy of its id in every list."""
    change = Change("send_message")
    change.put(
        "messages",
        {
            "id": "msg_x1",
            "from_user": "al",
            "to_user": "bo",
            "text": "hi",
            "read": False,
            "read_at": None,
            "system_msg": False,
            "payload": None,
            "metadata": {"kv_schemes": [2]},
            "created_at": None,
        },
    )
    for _ in range(2):
        kvexec.apply(seeded_kv, kvplan.commands(change))
    for name in ("inbox:bo", "outbox:al", "thread:al:bo"):
        assert seeded_kv.lrange(name, 0, -1).count(b"msg_x1") == 1
