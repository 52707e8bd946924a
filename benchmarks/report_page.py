"""The release manager's page at scale: its size and the time to build and render it.

    python benchmarks/report_page.py RUN_FOLDER [--repeat 5]

RUN_FOLDER is a gate run's folder (``reports/<run-id>`` or ``reports/latest``),
for example of ``pytest parity --phase=A --full`` on a 12mo migration with
seeded defects. Rebuilds the run's report from its summary.json and the
history beside it, then times the build (the typed model) and each renderer
(HTML, Markdown, JSON, JUnit XML), best of ``--repeat``, and prints the sizes
of what they write, with a README row.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from phasegate import report_history
from phasegate.gates.result import CheckResult
from phasegate.report import Summary
from phasegate.report_build import build
from phasegate.report_html import render_html
from phasegate.report_junit import render_junit
from phasegate.report_md import render_json, render_markdown


def summary_of(folder: Path) -> Summary:
    """The run's collected results, read back from its summary.json."""
    data = json.loads((folder / "summary.json").read_text())
    results = tuple(
        CheckResult.from_dict({**check, "phase": phase, "type": type_id, "check": name})
        for phase, p in data["phases"].items()
        for type_id, t in p["types"].items()
        for name, check in t["checks"].items()
    )
    return Summary(
        data["run_id"],
        data["created_at"],
        data["phase"],
        data["context"],
        results,
        tuple((s["test"], s["reason"]) for s in data["skipped_other_phases"]),
        tuple((e["test"], e["message"]) for e in data["errors"]),
    )


def best(seconds: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        seconds()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = args.folder.resolve()
    summary = summary_of(folder)
    history = [h for h in report_history.read(folder.parent) if h["run_id"] != summary.run_id]
    built = build(summary, history)
    failed = built.checks("fail")
    print(
        f"run {summary.run_id}: {len(summary.results)} checks, {len(failed)} failed, "
        f"{sum(len(c.diagnosis) for c in failed)} diagnosis groups, {len(history)} earlier runs"
    )
    timings = {"build": best(lambda: build(summary, history), args.repeat)}
    sizes = {}
    for name, render in (
        ("index.html", render_html),
        ("report.md", render_markdown),
        ("summary.json", render_json),
        ("junit.xml", render_junit),
    ):
        timings[name] = best(lambda render=render: render(built), args.repeat)  # type: ignore[misc]
        sizes[name] = len(render(built).encode())
    for name, seconds in timings.items():
        size = f", {sizes[name]:,} bytes" if name in sizes else ""
        print(f"{name:>13}: {seconds * 1000:8.1f} ms{size}")
    machine = f"{platform.machine()}, {platform.python_version()}"
    print(
        f"| {datetime.now(UTC):%Y-%m-%d} | {machine} | {len(summary.results)} checks, "
        f"{len(failed)} failed | {sizes['index.html']:,} B | "
        f"{(timings['build'] + timings['index.html']) * 1000:.1f} ms |"
    )


if __name__ == "__main__":
    main()
