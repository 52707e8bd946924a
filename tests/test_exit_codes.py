"""Each exit code of the README's table, held by a real run: the pytest gate and the
CLI alike, and the report's verdict always agreeing with the code.

The pytest runs use the README's gate command on scratch stores of the sandbox
(one data type, so each takes seconds); the CLI runs call ``phasegate`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from phasegate import schema
from phasegate.backfill import backfill
from phasegate.cli import main
from phasegate.stores import connect_pg
from tests.test_gate_only import ROOT, run_pytest

VERDICT_OF = {0: "pass", 1: "fail", 2: "error", 3: "inconclusive"}
DEAD_KV = "redis://app:Secr3tPW@127.0.0.1:1/0"


def readme_codes() -> dict[int, str]:
    """The rows of the README's exit-code table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("### Exit codes (pytest and the CLI alike)", 1)[1].split("\n\n", 2)[1]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d) \| (.+) \|$", table, re.M)}


def test_the_readme_table_lists_each_code() -> None:
    assert sorted(readme_codes()) == [0, 1, 2, 3]
    assert readme_codes()[3].startswith("inconclusive")


Stores = tuple[str, str]


def _migrated(kv_url: str, pg_url: str) -> None:
    """Two friends in KV, backfilled into Postgres: a clean migration of one type."""
    kv = redis.Redis.from_url(kv_url)
    kv.sadd("friends:al", "bo")
    kv.sadd("friends:bo", "al")
    with connect_pg(pg_url) as pg:
        schema.apply(pg)
        backfill(kv, pg, ("friends",))
    kv.close()


def _passing(kv_url: str, pg_url: str) -> Stores:
    _migrated(kv_url, pg_url)
    return kv_url, pg_url


def _failing(kv_url: str, pg_url: str) -> Stores:
    _migrated(kv_url, pg_url)
    with connect_pg(pg_url) as pg:
        pg.execute("DELETE FROM friends WHERE handle = 'bo'")
    return kv_url, pg_url


def _unreachable(_kv_url: str, pg_url: str) -> Stores:
    return DEAD_KV, pg_url


def _empty(kv_url: str, pg_url: str) -> Stores:
    with connect_pg(pg_url) as pg:
        schema.apply(pg)
    return kv_url, pg_url


GATE_SCENARIOS: dict[int, Callable[[str, str], Stores]] = {
    0: _passing,
    1: _failing,
    2: _unreachable,
    3: _empty,
}


@pytest.mark.parametrize("code", sorted(GATE_SCENARIOS))
def test_the_pytest_gate_exits_with_each_code(
    code: int, scratch_kv_url: str, scratch_pg_url: str, tmp_path: Path
) -> None:
    """``pytest parity --phase=A -k friends-counts`` on stores made for the code: the
    exit code, the report's verdict and its first line agree; no password shown."""
    kv_url, pg_url = GATE_SCENARIOS[code](scratch_kv_url, scratch_pg_url)
    done = run_pytest(
        "parity",
        "--phase=A",
        "-k",
        "friends-counts",
        "--kv-url",
        kv_url,
        "--pg-url",
        pg_url,
        f"--reports-dir={tmp_path}",
    )
    assert done.returncode == code, done.stdout[-3000:]
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["verdict"] == VERDICT_OF[code]
    report = (tmp_path / "latest" / "report.md").read_text()
    assert report.startswith(f"# phasegate: {VERDICT_OF[code].upper()}")
    assert "Secr3tPW" not in done.stdout + done.stderr + report
    if code == 1:
        assert "missing in Postgres" in report
        assert "friends:bo" in report


def _sql_dir(tmp_path: Path, sql: str | None) -> str:
    folder = tmp_path / "app"
    folder.mkdir()
    if sql is not None:
        (folder / "queries.sql").write_text(sql)
    return str(folder)


CLI_SCENARIOS: dict[int, Callable[[Path], list[str]]] = {
    0: lambda tmp: [
        "shapes",
        "check",
        "--app-src",
        _sql_dir(tmp, "SELECT handle FROM users WHERE handle = $1;"),
    ],
    1: lambda tmp: [
        "shapes",
        "check",
        "--app-src",
        _sql_dir(tmp, "SELECT handle, display_name FROM users WHERE handle = $1;"),
    ],
    2: lambda _tmp: ["inventory", "--kv-url", DEAD_KV],
    3: lambda tmp: ["shapes", "check", "--app-src", _sql_dir(tmp, None)],
}


@pytest.mark.parametrize("code", sorted(CLI_SCENARIOS))
def test_the_cli_exits_with_each_code(
    code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same codes from ``phasegate``: a clean app query (0), one naming a column
    the schema lacks (1), an unreachable store (2), an app with no SQL at all (3)."""
    assert main(CLI_SCENARIOS[code](tmp_path)) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "Secr3tPW" not in out + err
    word = {0: "PASS", 1: "FAIL", 2: "cannot reach Redis", 3: "INCONCLUSIVE"}[code]
    assert word in out + err
