"""A data type of the user's own, in one module outside phasegate, loaded through
PHASEGATE_MAPPINGS: schema apply creates its table, the inventory and the backfill
know it, and the Phase A gate counts, samples and fully diffs it, failing on a
dropped row with the type, the record and the KV key named. The reference service
serves its read path from both stores alike, its write op reaches both stores,
and both Locust profiles load it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis

from phasegate.load import runner

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples" / "mappings"
OWN = {
    "PHASEGATE_MAPPINGS": "bookmarks",
    "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
}


def run(*argv: str, reports: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OWN}
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_users_own_type_goes_through_phase_a(
    scratch_kv_url: str, scratch_pg_url: str, tmp_path: Path
) -> None:
    """bookmarks, declared in examples/mappings/bookmarks.py and nowhere else: seeded
    by ``phasegate seed`` through its KV shape, backfilled, and gated; a dropped row
    fails the gate naming the type, the record and the KV key."""
    stores = ["--kv-url", scratch_kv_url, "--pg-url", scratch_pg_url]
    for argv in (
        ("phasegate.cli", "seed", "--kv-url", scratch_kv_url, "--scale", "now", "--seed", "7"),
        ("phasegate.cli", "schema", "apply", "--pg-url", scratch_pg_url),
        ("phasegate.cli", "backfill", *stores),
        ("phasegate.cli", "fk", "add", "--pg-url", scratch_pg_url, "--create-missing-handles"),
    ):
        done = run(*argv)
        assert done.returncode == 0, done.stdout + done.stderr
    kv = redis.Redis.from_url(scratch_kv_url)
    seeded = sum(kv.scard(k) for k in kv.scan_iter("bookmarks:*"))
    kv.close()
    inventory = run("phasegate.cli", "inventory", "--kv-url", scratch_kv_url)
    assert "bookmarks" in inventory.stdout
    with psycopg.connect(scratch_pg_url) as pg:
        copied = pg.execute("SELECT count(*) FROM bookmarks").fetchone()
        dropped = pg.execute("SELECT handle, entry_id FROM bookmarks ORDER BY 1, 2 LIMIT 1")
        handle, entry_id = dropped.fetchone() or ("", "")
    assert seeded > 10
    assert copied == (seeded,)
    gate = ["pytest", "parity", "--phase=A", *stores, "-k", "bookmarks", "--full"]
    passed = run(*gate, "--sample-rate=100", f"--reports-dir={tmp_path / 'ok'}")
    assert passed.returncode == 0, passed.stdout[-3000:]
    summary = json.loads((tmp_path / "ok" / "latest" / "summary.json").read_text())
    checks = summary["phases"]["A"]["types"]["bookmarks"]["checks"]
    assert {c: checks[c]["status"] for c in ("coverage", "counts", "sample", "full", "refint")} == {
        "coverage": "pass",
        "counts": "pass",
        "sample": "pass",
        "full": "pass",
        "refint": "pass",
    }
    with psycopg.connect(scratch_pg_url, autocommit=True) as pg:
        pg.execute("DELETE FROM bookmarks WHERE handle = %s AND entry_id = %s", (handle, entry_id))
    failed = run(*gate, "--sample-rate=100", f"--reports-dir={tmp_path / 'bad'}")
    assert failed.returncode == 1
    assert f"missing in Postgres: {handle}|{entry_id} (bookmarks:{handle})" in failed.stdout


def test_the_strategies_draw_a_users_own_type() -> None:
    """The Hypothesis strategies give bookmarks keyspaces through its KV shape, and
    the mapping properties (decode never raises, round trips, corrupt values become
    findings) hold for it."""
    done = run(
        "pytest", "-q", "-p", "no:randomly", "tests/test_mapping_properties.py", "-k", "bookmarks"
    )
    assert done.returncode == 0, done.stdout[-3000:]  # 5 if no test were selected


def _get(url: str) -> tuple[str, object]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers["x-read-source"], json.loads(r.read())


def test_a_users_own_type_is_served_written_and_loaded(
    scratch_kv_url: str, scratch_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bookmarks' read path answers the same JSON from KV and from Postgres, its write
    op lands in both stores under dual-write, and the Locust profiles carry it."""
    for name, value in OWN.items():
        monkeypatch.setenv(name, value)
    kv = redis.Redis.from_url(scratch_kv_url)
    kv.hset("user:al", mapping={"username": "al"})
    kv.sadd("bookmarks:@Al", "entry_2", "entry_1")
    stores = ["--kv-url", scratch_kv_url, "--pg-url", scratch_pg_url]
    for argv in (
        ("phasegate.cli", "schema", "apply", "--pg-url", scratch_pg_url),
        ("phasegate.cli", "backfill", *stores),
    ):
        done = run(*argv)
        assert done.returncode == 0, done.stdout + done.stderr
    answers = {}
    for source in ("kv", "pg"):
        with runner.service(
            scratch_kv_url, scratch_pg_url, read=source, write="dual", folder=tmp_path
        ) as svc:
            answers[source] = _get(f"{svc.url}/api/bookmarks?handle=Al")
            if source == "pg":
                request = urllib.request.Request(
                    f"{svc.url}/api/bookmarks",
                    data=json.dumps({"handle": "al", "entry_id": "entry_9"}).encode(),
                    headers={"content-type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as r:
                    assert r.status == 201
                    assert json.loads(r.read())["written"] == ["bookmarks:al|entry_9"]
    rows = [{"handle": "al", "entry_id": "entry_1"}, {"handle": "al", "entry_id": "entry_2"}]
    assert answers == {"kv": ("kv", rows), "pg": ("pg", rows)}
    assert kv.sismember("bookmarks:al", "entry_9")
    kv.close()
    with psycopg.connect(scratch_pg_url) as pg:
        found = pg.execute("SELECT count(*) FROM bookmarks WHERE entry_id = 'entry_9'")
        assert found.fetchone() == (1,)
    tasks = subprocess.run(
        [sys.executable, "-c", _LIST_TASKS],
        cwd=ROOT / "load",
        env={**os.environ, **OWN},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "http:bookmarks_of_handle" in tasks
    assert "http:bookmark_add" in tasks
    assert "db:bookmarks_of_handle" in tasks


_LIST_TASKS = """
import locustfile, locust_db
for t in set(locustfile.VibeUser.tasks):
    print("http:" + t.__name__)
for t in set(locust_db.QueryUser.tasks):
    print("db:" + t.__name__)
"""


def test_the_example_mapping_documents_itself() -> None:
    """The example module's doctest runs (it is what docs/adding-a-data-type.md shows)."""
    done = run("doctest", str(EXAMPLES / "bookmarks.py"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_mapping_module_that_cannot_load_is_a_usage_error() -> None:
    """A typo in PHASEGATE_MAPPINGS: exit 2 naming the module, not a traceback."""
    env = {**os.environ, "PHASEGATE_MAPPINGS": "no_such_mapping_module"}
    done = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "mapping module no_such_mapping_module could not be loaded" in " ".join(
        done.stderr.split()
    )
    assert "Traceback" not in done.stderr
