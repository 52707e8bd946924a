"""Backfill: rows counted as rows, re-runs change nothing, kill -9 resumes exactly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from rich.console import Console

from fixtures.stores import ANCHOR_MS
from phasegate import schema
from phasegate.backfill import BackfillBlockedError, backfill
from phasegate.backfill_load import BatchRefusedError
from phasegate.commands import backfill_with_progress
from phasegate.errors import ServerError
from phasegate.fk import add_foreign_keys
from phasegate.inventory import take_inventory
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.parity.postgres import read_records
from phasegate.parity.workers import Workers
from phasegate.seed.generator import generate
from phasegate.servers import Sandbox, scratch_database
from phasegate.stores import connect_pg

PgConn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def second_pg(sandbox: Sandbox) -> Iterator[tuple[str, PgConn]]:
    """Another scratch database with the schema, for comparing two runs."""
    with scratch_database(sandbox.pg_url) as url, connect_pg(url) as conn:
        schema.apply(conn)
        yield url, conn


def tables(conn: PgConn) -> dict[str, object]:
    return {t: read_records(conn, MAPPINGS[t]) for t in TYPE_IDS}


def test_counts_are_rows_and_a_rerun_is_a_no_op(seeded_kv: redis.Redis, schema_pg: PgConn) -> None:
    """First run inserts every record; the second inserts and updates none."""
    first = backfill(seeded_kv, schema_pg)
    inventory = take_inventory(seeded_kv)
    for type_id, result in first.types.items():
        records = inventory.types[type_id].records
        assert result.records == records, type_id
        assert (result.inserted, result.updated, result.unchanged) == (records, 0, 0), type_id
    second = backfill(seeded_kv, schema_pg, restart=True)
    assert second.changed == 0
    assert all(r.unchanged == first.types[t].inserted for t, r in second.types.items())


def test_a_changed_kv_record_is_one_update(seeded_kv: redis.Redis, schema_pg: PgConn) -> None:
    """Only rows that differ are rewritten, and counted as updated."""
    backfill(seeded_kv, schema_pg)
    key = next(k for k in seeded_kv.scan_iter("board:entry:*", count=1000))
    value = seeded_kv.get(key)
    assert isinstance(value, bytes)
    seeded_kv.set(key, value.replace(b'"content":"', b'"content":"edited '))
    again = backfill(seeded_kv, schema_pg, restart=True, types=["board"])
    assert (again.types["board"].inserted, again.types["board"].updated) == (0, 1)


def test_findings_are_stored_and_the_load_goes_on(
    seeded_kv: redis.Redis, schema_pg: PgConn
) -> None:
    """An undecodable value is a stored finding; every other record is still loaded."""
    seeded_kv.set("msg:broken", b"{not json")
    result = backfill(seeded_kv, schema_pg, types=["messages"])
    assert result.types["messages"].inserted == take_inventory(seeded_kv).types["messages"].records
    rows = schema_pg.execute(
        "SELECT kind, severity, key FROM phasegate_findings WHERE run_id = %s AND key = %s",
        (result.run_id, "msg:broken"),
    ).fetchall()
    assert rows == [("undecodable", "error", "msg:broken")]


def test_findings_stored_are_the_latest_runs_and_a_rerun_rewrites_none(
    seeded_kv: redis.Redis, schema_pg: PgConn
) -> None:
    """A re-run that finds the same keeps the stored findings (under the run that first
    found them); a finding fixed in KV is gone after the next run, a new one is added."""
    seeded_kv.set("msg:broken", b"{not json")
    first = backfill(seeded_kv, schema_pg, types=["messages"])
    query = "SELECT run_id, key FROM phasegate_findings WHERE kind = 'undecodable' ORDER BY key"
    stored = schema_pg.execute("SELECT count(*) FROM phasegate_findings").fetchone()
    backfill(seeded_kv, schema_pg, types=["messages"])
    assert schema_pg.execute(query).fetchall() == [(first.run_id, "msg:broken")]
    assert schema_pg.execute("SELECT count(*) FROM phasegate_findings").fetchone() == stored
    seeded_kv.delete("msg:broken")
    seeded_kv.set("msg:broken2", b"[1,")
    third = backfill(seeded_kv, schema_pg, types=["messages"])
    assert schema_pg.execute(query).fetchall() == [(third.run_id, "msg:broken2")]


@pytest.mark.parametrize("kill_after_batches", [0, 25], ids=["while-reading", "mid-load"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(
    seeded_kv: redis.Redis,
    scratch_kv_url: str,
    scratch_pg_url: str,
    schema_pg: PgConn,
    second_pg: tuple[str, PgConn],
    kill_after_batches: int,
) -> None:
    """Killed once its run is open (while reading KV) or mid-load, the resumed run matches."""
    argv = [
        sys.executable,
        "-m",
        "phasegate.cli",
        "backfill",
        "--kv-url",
        scratch_kv_url,
        "--pg-url",
        scratch_pg_url,
        "--batch-rows",
        "7",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        runs, committed = _progress(schema_pg)
        if runs and committed >= kill_after_batches:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "backfill finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout
    _other_url, other = second_pg
    backfill(redis.Redis.from_url(scratch_kv_url), other)
    assert tables(schema_pg) == tables(other)


def _progress(conn: PgConn) -> tuple[int, int]:
    """(runs opened, batches committed) of the backfill under test."""
    exists = conn.execute("SELECT to_regclass('phasegate_backfill_batches')").fetchone()
    if not exists or exists[0] is None:
        return 0, 0
    row = conn.execute(
        "SELECT (SELECT count(*) FROM phasegate_backfill_runs), "
        "(SELECT count(*) FROM phasegate_backfill_batches)"
    ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def test_generated_anchor_is_fixed_for_tests() -> None:
    """The fixtures' anchor keeps the seeded data reproducible."""
    assert generate("now", 7, ANCHOR_MS).strings == generate("now", 7, ANCHOR_MS).strings


def test_a_key_clash_during_direct_copy_falls_back_to_the_merge(
    seeded_kv: redis.Redis, schema_pg: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row written meanwhile (here: before, while the table looked empty) is merged."""
    first = backfill(seeded_kv, schema_pg, types=["games"])
    schema_pg.execute("DELETE FROM games WHERE id <> (SELECT min(id) FROM games)")
    monkeypatch.setattr("phasegate.backfill.is_empty", lambda _pg, _mapping: True)
    again = backfill(seeded_kv, schema_pg, types=["games"], restart=True)
    games = again.types["games"]
    total = first.types["games"].inserted
    assert (games.inserted, games.updated, games.unchanged) == (total - 1, 0, 1)


def test_an_orphan_after_the_foreign_keys_stops_with_a_clear_error(
    seeded_kv: redis.Redis, schema_pg: PgConn
) -> None:
    """With the keys in place, a new message from a non-user names the constraint."""
    backfill(seeded_kv, schema_pg)
    add_foreign_keys(schema_pg, create_missing=True)
    seeded_kv.set("msg:late", b'{"id":"late","from":"nobody-yet","to":"vibe","text":"hi"}')
    with pytest.raises(BackfillBlockedError) as info:
        backfill(seeded_kv, schema_pg, types=["messages"], restart=True)
    text = str(info.value)
    assert "backfill of messages stopped at batch 0" in text
    assert "messages_from_user_fkey" in text
    assert "nobody-yet" in text
    assert "fk add --create-missing-handles" in text


def test_a_rerun_repairs_rows_that_drifted_in_postgres(
    seeded_kv: redis.Redis, schema_pg: PgConn
) -> None:
    """The merge compares staging with the stored rows, so a hand-edited row is restored."""
    backfill(seeded_kv, schema_pg, types=["board"])
    row = schema_pg.execute("SELECT id, content FROM board_entries ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    schema_pg.execute("UPDATE board_entries SET content = 'drifted' WHERE id = %s", (row[0],))
    again = backfill(seeded_kv, schema_pg, types=["board"], restart=True)
    assert (again.types["board"].inserted, again.types["board"].updated) == (0, 1)
    restored = schema_pg.execute(
        "SELECT content FROM board_entries WHERE id = %s", (row[0],)
    ).fetchone()
    assert restored == (row[1],)


def test_a_database_without_the_schema_is_a_clear_error(
    seeded_kv: redis.Redis, scratch_pg_url: str
) -> None:
    """No traceback from a reader thread: the error names the tables and the fix,
    and nothing is read or written."""
    with connect_pg(scratch_pg_url) as conn:
        with pytest.raises(ServerError) as caught:
            backfill(seeded_kv, conn, types=["messages", "users"])
        assert "no table messages, users" in str(caught.value)
        assert "phasegate schema apply" in str(caught.value)
        assert conn.execute("SELECT to_regclass('phasegate_backfill_runs')").fetchone() == (None,)
        conn.execute("CREATE TABLE users (handle text PRIMARY KEY)")
        with pytest.raises(ServerError, match=r"users\.username: missing"):
            backfill(seeded_kv, conn, types=["users"])


def test_with_foreign_keys_users_load_first_and_the_rest_after_them(
    seeded_kv: redis.Redis, schema_pg: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users deleted with everything naming them (ON DELETE CASCADE) come back whole:
    with the keys in place, the load goes type by type, users first, not bucket by
    bucket as the workers finish."""
    backfill(seeded_kv, schema_pg)
    add_foreign_keys(schema_pg, create_missing=True)  # stub users for system accounts
    expected = tables(schema_pg)
    schema_pg.execute(
        "DELETE FROM users WHERE handle IN (SELECT m.from_user FROM messages m "
        "JOIN users u ON u.handle = m.from_user WHERE u.metadata->>'stub' IS NULL "
        "GROUP BY m.from_user ORDER BY count(*) DESC LIMIT 20)"  # not the system stubs
    )
    assert tables(schema_pg)["messages"] != expected["messages"]

    def unordered(*_args: object) -> None:
        raise AssertionError("loaded as decoded while foreign keys order the tables")

    monkeypatch.setattr("phasegate.backfill.load_as_decoded", unordered)
    again = backfill(seeded_kv, schema_pg, restart=True)
    assert again.types["users"].inserted == 20
    assert again.types["messages"].inserted > 0
    assert tables(schema_pg) == expected


def test_the_load_as_workers_finish_equals_the_load_after_them(
    seeded_kv: redis.Redis, schema_pg: PgConn, second_pg: tuple[str, PgConn]
) -> None:
    """Without foreign keys each work bucket is loaded once its worker has written it,
    beside the decoding of the rest; rows and counts are those of the in-process run
    (which decodes everything, then loads type by type)."""
    _url, other = second_pg
    decoded_first = backfill(seeded_kv, other, workers=0)
    as_finished = backfill(seeded_kv, schema_pg)
    assert tables(schema_pg) == tables(other)
    for type_id, result in as_finished.types.items():
        theirs = decoded_first.types[type_id]
        assert (result.records, result.inserted, result.batches) == (
            theirs.records,
            theirs.inserted,
            theirs.batches,
        ), type_id


def test_no_progress_bar_is_drawn_before_the_schema_is_found_missing(
    seeded_kv: redis.Redis, scratch_pg_url: str
) -> None:
    """On a terminal, a missing schema is the whole answer: no "reading KV 0/1" above it."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with connect_pg(scratch_pg_url) as conn, pytest.raises(ServerError, match="schema apply"):
        backfill_with_progress(seeded_kv, conn, ["users"], console)
    assert "reading KV" not in screen.getvalue()


def _workers_running(script: str) -> Callable[[list[tuple[object, ...]]], Workers]:
    """Load workers that run ``script`` (their job pickled on stdin) instead."""
    return lambda jobs: Workers(jobs, program=("code", script))


def test_workers_that_fail_while_buckets_load_fail_the_run_and_it_resumes(
    seeded_kv: redis.Redis, schema_pg: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader waits on the workers' files: a worker's error is raised, not waited
    on forever, and so is workers ending without every work bucket; the run stays
    open, and the next one resumes it to a complete load."""
    failing = "import sys; sys.stdin.buffer.read(); sys.exit('boom')"
    monkeypatch.setattr("phasegate.backfill_load.start_jobs", _workers_running(failing))
    with pytest.raises(RuntimeError, match=r"worker failed \(1\): boom"):
        backfill(seeded_kv, schema_pg)
    nothing = "import pickle, sys; sys.stdin.buffer.read()"
    nothing += "; sys.stdout.buffer.write(pickle.dumps(('ok', {})))"
    monkeypatch.setattr("phasegate.backfill_load.start_jobs", _workers_running(nothing))
    with pytest.raises(RuntimeError, match=r"ended without work buckets \[0, 1, "):
        backfill(seeded_kv, schema_pg)
    monkeypatch.undo()
    resumed = backfill(seeded_kv, schema_pg)
    assert resumed.resumed
    inventory = take_inventory(seeded_kv)
    for type_id, result in resumed.types.items():
        assert result.inserted == inventory.types[type_id].records, type_id


# A worker that has written work bucket 0 (rows Postgres refuses) and is still busy.
_BUSY_AFTER_BUCKET_0 = """
import json, pickle, sys, time
_kind, folder, mine, types, *_ = pickle.load(sys.stdin.buffer)
if 0 in mine:
    for type_id in types:
        folder.rows(type_id, 0).write_bytes(b"not\\ta\\trow\\n")
    folder.rows_done(0).write_text(json.dumps(dict.fromkeys(types, 1)))
time.sleep(300)
"""


def test_a_load_that_fails_stops_the_workers_instead_of_waiting_for_them(
    seeded_kv: redis.Redis, schema_pg: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres refuses the first work bucket while the workers are still decoding:
    the error is raised at once and the workers are killed, not left to decode the
    rest of a keyspace nobody will load (they would sleep 300 s here). The error
    names the type, the batch and the row's key."""
    started: list[Workers] = []

    def start(jobs: list[tuple[object, ...]]) -> Workers:
        started.append(_workers_running(_BUSY_AFTER_BUCKET_0)(jobs))
        return started[-1]

    monkeypatch.setattr("phasegate.backfill_load.start_jobs", start)
    refused = r"Postgres refused batch 0 of users, row users\(handle=not\)"
    with pytest.raises(BatchRefusedError, match=refused):
        backfill(seeded_kv, schema_pg, types=["users"])
    (workers,) = started
    codes = [worker.proc.returncode for worker in workers.workers]
    assert codes == [-signal.SIGKILL] * len(workers.workers)
