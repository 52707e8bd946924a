"""Reports render a fixed summary exactly as the golden files say."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from phasegate import report, report_history
from phasegate.gates.result import CheckResult
from phasegate.report_build import build
from phasegate.report_md import render_json, render_markdown

GOLDEN = Path(__file__).parent / "golden"


def sample_summary() -> report.Summary:
    results = (
        CheckResult(
            "A",
            "keyspace",
            "coverage",
            "pass",
            "all 2,813 keys are mapped or KV-only",
            metrics={"keys": 2813},
        ),
        CheckResult(
            "A",
            "messages",
            "counts",
            "pass",
            "KV 1,000 records = Postgres 1,000 rows",
            metrics={"kv_records": 1000, "pg_rows": 1000},
            thresholds={"difference": 0},
        ),
        CheckResult(
            "A",
            "messages",
            "sample",
            "fail",
            "1 difference among 99 sampled records (10%)",
            ('messages m1 (msg:m1) field text: KV "hi", Postgres "tampered"',),
            {"compared": 99, "differences": 1, "seed": 7},
            {"differences": 0},
        ),
        CheckResult("A", "friends", "recency", "skip", "friends records carry no timestamp"),
    )
    return report.Summary(
        run_id="20261125T160000Z-abcdef",
        created_at="2026-11-25T16:00:00+00:00",
        phase="A",
        context={"seed": 7, "kv": "redis://app:***@kv:6379/0", "pg": "sandbox"},
        results=results,
        phase_skips=(("parity/test_phase_b.py::x", "phase B check; run with --phase=B"),),
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PHASEGATE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; PHASEGATE_UPDATE_GOLDEN=1 to accept"


def test_markdown_report_matches_the_golden_file() -> None:
    """Verdict first, the check table, what failed with its example, skips."""
    check_golden("report_phase_a.md", render_markdown(build(sample_summary())))


def test_html_page_matches_the_golden_file() -> None:
    """The page renders the fixed summary exactly (autoescaped, self-contained)."""
    from phasegate.report_html import render_html

    check_golden("report_phase_a.html", render_html(build(sample_summary())))


def test_junit_xml_matches_the_golden_file() -> None:
    """One testcase per check, ids <type>-<check>; the failed sample is a failure with
    its example, the skipped recency a skip."""
    from phasegate.report_junit import render_junit

    check_golden("junit_phase_a.xml", render_junit(build(sample_summary())))


def test_summary_json_matches_the_golden_file() -> None:
    """summary.json keeps its documented shape."""
    check_golden("summary_phase_a.json", render_json(build(sample_summary())))
    data = json.loads(render_json(build(sample_summary())))
    assert data["verdict"] == "fail"
    assert data["phases"]["A"]["types"]["messages"]["verdict"] == "fail"


def test_write_points_latest_at_the_newest_run(tmp_path: Path) -> None:
    """Each run gets its folder; latest is repointed atomically."""
    first = report.write(sample_summary(), tmp_path)
    newer = report.Summary(**{**sample_summary().__dict__, "run_id": "20261125T170000Z-fedcba"})
    second = report.write(newer, tmp_path)
    assert first.is_dir()
    assert (tmp_path / "latest").resolve() == second.resolve()
    assert json.loads((tmp_path / "latest" / "summary.json").read_text())["run_id"] == newer.run_id


def test_a_phase_b_run_has_a_dual_write_bursts_table() -> None:
    """Per type: writes, journaled by side, the write alert, reconcile time, and
    divergence before / after as percentages."""
    durable = CheckResult(
        "B",
        "invites",
        "acked-durable",
        "pass",
        "ok",
        metrics={
            "writes": 120,
            "acknowledged": 119,
            "journaled": 55,
            "journaled_pg_missed": 12,
            "journaled_kv_missed": 43,
            "write_alert": "writes: 45.1% failed",
            "write_failure_percent": 45.1,
        },
    )
    closed = CheckResult(
        "B",
        "invites",
        "reconciled",
        "pass",
        "ok",
        metrics={
            "reconcile_seconds": 0.8,
            "journal_replayed": 7,
            "repaired": 0,
            "differences_after": 0,
            "divergence_before_percent": 2.5,
            "divergence_after_percent": 0.0,
        },
    )
    summary = report.Summary("r1", "2026-11-25T00:00:00+00:00", "B", {}, (durable, closed))
    text = render_markdown(build(summary))
    assert "## Dual-write bursts" in text
    assert (
        "| invites | 120 | 119 | 55 (12 / 43) | fired (45.1% failed) | 0.8 | 7 | 0 | 0 | "
        "2.5% / 0% |" in text
    )


def test_runs_append_history_and_old_run_folders_are_pruned(tmp_path: Path) -> None:
    """Three runs with keep=2: history has three lines, the oldest folder is gone, a
    folder that is not a run's is left alone, latest points at the newest."""
    (tmp_path / "keep-me").mkdir()
    ids = ["20261125T160000Z-aaaaaa", "20261125T170000Z-bbbbbb", "20261125T180000Z-cccccc"]
    for run_id in ids:
        report.write(dataclasses.replace(sample_summary(), run_id=run_id), tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()) == [
        ids[1],
        ids[2],
        "keep-me",
    ]
    assert os.readlink(tmp_path / "latest") == ids[2]
    lines = report_history.read(tmp_path, "A")
    assert [line["run_id"] for line in lines] == ids
    counts = lines[0]["phases"]["A"]["types"]["messages"]["checks"]["counts"]
    assert counts == {"status": "pass", "metrics": {"kv_records": 1000, "pg_rows": 1000}}


def test_the_markdown_goes_to_a_github_job_summary_cut_under_1_mib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    report.write(sample_summary(), tmp_path / "reports")
    assert target.read_text() == render_markdown(build(sample_summary()))
    target.unlink()
    report_history.job_summary("x" * 3_000_000)
    data = target.read_bytes()
    assert len(data) < 1024 * 1024
    assert data.endswith(b"of 3,000,000 bytes; the whole report is report.md\n")
