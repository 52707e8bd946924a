"""A data type of the user's own, in one module outside phasegate, loaded through
PHASEGATE_MAPPINGS: schema apply creates its table, the inventory and the backfill
know it, and the Phase A gate counts, samples and fully diffs it, failing on a
dropped row with the type, the record and the KV key named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples" / "mappings"


def run(*argv: str, reports: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PHASEGATE_MAPPINGS": "bookmarks",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
    }
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
    """bookmarks, declared in examples/mappings/bookmarks.py and nowhere else."""
    kv = redis.Redis.from_url(scratch_kv_url)
    kv.hset("user:al", mapping={"username": "al"})
    kv.hset("user:bo", mapping={"username": "bo"})
    kv.sadd("bookmarks:al", "entry_1", "entry_2", "entry_3")
    kv.sadd("bookmarks:@Bo", "entry_2")
    kv.close()
    stores = ["--kv-url", scratch_kv_url, "--pg-url", scratch_pg_url]
    for argv in (
        ("phasegate.cli", "schema", "apply", "--pg-url", scratch_pg_url),
        ("phasegate.cli", "backfill", *stores),
        ("phasegate.cli", "fk", "add", "--pg-url", scratch_pg_url),
    ):
        done = run(*argv)
        assert done.returncode == 0, done.stdout + done.stderr
    inventory = run("phasegate.cli", "inventory", "--kv-url", scratch_kv_url)
    assert "bookmarks" in inventory.stdout
    with psycopg.connect(scratch_pg_url) as pg:
        assert pg.execute("SELECT count(*) FROM bookmarks").fetchone() == (4,)
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
        pg.execute("DELETE FROM bookmarks WHERE handle = 'al' AND entry_id = 'entry_2'")
    failed = run(*gate, "--sample-rate=100", f"--reports-dir={tmp_path / 'bad'}")
    assert failed.returncode == 1
    assert "missing in Postgres: al|entry_2 (bookmarks:al)" in failed.stdout


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
