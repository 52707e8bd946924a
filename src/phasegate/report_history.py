"""What outlives one run: ``history.jsonl``, pruning old run folders, CI job summaries.

Every run appends one line to ``<reports_dir>/history.jsonl``: its id, time,
phase and verdict, and per phase and type the verdict, each check's status and
its numeric metrics (counts, p95, differences), so a trend can be drawn and a
run compared with the previous one of the same phase. Run folders beyond the
last ``keep`` are removed (never the one ``latest`` points to; never anything
that is not a run folder). With ``GITHUB_STEP_SUMMARY`` set (GitHub Actions),
the Markdown report is appended to the job summary, cut to stay under GitHub's
1 MiB limit.

>>> entry({"run_id": "r", "created_at": "t", "phase": "A", "verdict": "pass",
...        "phases": {"A": {"verdict": "pass", "types": {"friends": {"verdict": "pass",
...        "checks": {"counts": {"status": "pass", "metrics": {"kv_records": 4, "note": "x"}}}}}}}})
... # doctest: +NORMALIZE_WHITESPACE
{'run_id': 'r', 'created_at': 't', 'phase': 'A', 'verdict': 'pass',
 'phases': {'A': {'verdict': 'pass', 'types': {'friends': {'verdict': 'pass',
 'checks': {'counts': {'status': 'pass', 'metrics': {'kv_records': 4}}}}}}}}
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
STEP_SUMMARY_LIMIT = 1024 * 1024 - 1024  # GitHub refuses a step summary over 1 MiB
_RUN_FOLDER = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def entry(summary: dict[str, Any]) -> dict[str, Any]:
    """One history line from a summary's dict: verdicts, statuses, numeric metrics."""
    phases = {
        phase: {
            "verdict": p["verdict"],
            "types": {
                type_id: {
                    "verdict": t["verdict"],
                    "checks": {
                        name: {"status": c["status"], "metrics": _numbers(c.get("metrics", {}))}
                        for name, c in t["checks"].items()
                    },
                }
                for type_id, t in p["types"].items()
            },
        }
        for phase, p in summary["phases"].items()
    }
    keep = ("run_id", "created_at", "phase", "verdict")
    return {**{k: summary[k] for k in keep}, "phases": phases}


def _numbers(metrics: dict[str, Any]) -> dict[str, float | int]:
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def append(root: Path, line: dict[str, Any]) -> None:
    with (root / HISTORY).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")


def read(root: Path, phase: str | None = None) -> list[dict[str, Any]]:
    """The history, oldest first (of one phase when given); unreadable lines skipped
    with nothing else lost."""
    path = root / HISTORY
    if not path.exists():
        return []
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if phase is None or line.get("phase") == phase:
            out.append(line)
    return out


def prune(root: Path, keep: int) -> list[str]:
    """Remove run folders beyond the newest ``keep``; returns the names removed."""
    latest = root / "latest"
    current = os.readlink(latest) if latest.is_symlink() else None
    runs = sorted(p.name for p in root.iterdir() if p.is_dir() and _RUN_FOLDER.match(p.name))
    removed = [name for name in runs[: max(0, len(runs) - keep)] if name != current]
    for name in removed:
        shutil.rmtree(root / name, ignore_errors=True)
    return removed


def job_summary(markdown: str) -> None:
    """Append the report to ``$GITHUB_STEP_SUMMARY`` when set, cut under 1 MiB."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    data = markdown.encode()
    if len(data) > STEP_SUMMARY_LIMIT:
        note = (
            f"\n\n... cut at {STEP_SUMMARY_LIMIT:,} of {len(data):,} bytes; "
            "the whole report is report.md\n"
        )
        data = data[: STEP_SUMMARY_LIMIT - len(note.encode())].decode(errors="ignore").encode()
        data += note.encode()
    with open(target, "ab") as out:
        out.write(data)
