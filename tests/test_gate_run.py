"""The gate as CI runs it: `pytest --phase=A --kv-url ... --pg-url ...` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from fixtures.migration import Migration
from tests.test_gate_only import assert_only_read, snapshot
from tests.test_phase_a_gate import sampled_message

ROOT = Path(__file__).parents[1]


def run_gate(m: Migration, reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "parity",
            "--phase=A",
            "--kv-url",
            m.kv_url,
            "--pg-url",
            m.pg_url,
            "--reports-dir",
            str(reports),
            "-p",
            "no:cacheprovider",
            "-q",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_clean_migration_passes_and_the_stores_are_only_read(
    migration: Migration, tmp_path: Path
) -> None:
    """Exit 0, verdict pass in summary.json, and nothing written to the given stores."""
    before = snapshot(migration)
    done = run_gate(migration, tmp_path, "--full")
    assert done.returncode == 0, done.stdout[-3000:]
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["phases"]["A"]["types"]["messages"]["checks"]["full"]["status"] == "pass"
    assert_only_read(before, snapshot(migration))


def test_a_defect_turns_the_gate_red_with_the_key_in_the_report(
    migration: Migration, tmp_path: Path
) -> None:
    """Exit 1; the failing check names the key in the terminal, summary.json, report.md
    and junit.xml (a failure of the testcase messages-sample)."""
    victim = sampled_message(migration)
    migration.pg.execute("UPDATE messages SET text = 'tampered' WHERE id = %s", (victim,))
    done = run_gate(migration, tmp_path, "-k", "messages")
    assert done.returncode == 1
    assert f"messages {victim}" in done.stdout
    assert "field text" in done.stdout
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "fail"
    sample = summary["phases"]["A"]["types"]["messages"]["checks"]["sample"]
    assert sample["status"] == "fail"
    assert any(victim in line and "field text" in line for line in sample["details"])
    assert victim in (tmp_path / "latest" / "report.md").read_text()
    junit = ET.parse(tmp_path / "latest" / "junit.xml").getroot()
    case = junit.find(".//testcase[@name='messages-sample']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert victim in (failure.text or "")
    assert int(junit.get("failures", "0")) >= 1
