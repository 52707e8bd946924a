"""Gate reports: what a run collected, the typed report built from it, its files.

:class:`Summary` is what a run collected; :func:`phasegate.report_model.build`
makes the typed :class:`~phasegate.report_model.Report` of it, and one renderer
per format writes it. A run writes ``<reports_dir>/<run-id>/summary.json`` (for CI), ``report.md``
(for a PR comment), ``index.html`` (for a release manager,
:mod:`phasegate.report_html`) and ``junit.xml`` (for CI test views,
:mod:`phasegate.report_junit`), and points ``<reports_dir>/latest`` at it.
The fields of summary.json are documented in reports/README.md.
"""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phasegate import report_history as history
from phasegate.gates.result import CheckResult
from phasegate.reconcile import Reconciled
from phasegate.report_build import build, reconcile_section
from phasegate.report_html import render_html
from phasegate.report_junit import render_junit
from phasegate.report_md import as_dict, render_json, render_markdown
from phasegate.report_model import EXIT_BY_VERDICT, Report

KEEP = 20  # run folders kept by default


@dataclass(frozen=True)
class Summary:
    """What a run collected, immutable: the checks' results, the tests of other
    phases it skipped, and the tests that broke without a result. Reports are
    built from it by :func:`phasegate.report_model.build`."""

    run_id: str
    created_at: str
    phase: str | None
    context: Mapping[str, Any]
    results: tuple[CheckResult, ...]
    phase_skips: tuple[tuple[str, str], ...] = ()  # (test id, reason)
    errors: tuple[tuple[str, str], ...] = ()  # tests that broke without a result

    @property
    def verdict(self) -> str:
        """fail (a check failed), error (a check could not run: a store unreachable,
        a permission refused), inconclusive (a check had nothing to judge, or none
        ran), else pass. The exit code follows it."""
        statuses = {r.status for r in self.results}
        if "fail" in statuses:
            return "fail"
        if self.errors:
            return "error"
        if "inconclusive" in statuses or "pass" not in statuses:
            return "inconclusive"
        return "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_BY_VERDICT[self.verdict]

    def error_groups(self) -> list[tuple[str, list[str]]]:
        """One entry per cause with the tests it broke: a store that went away breaks
        every check the same way."""
        by_message: dict[str, list[str]] = {}
        for test, message in self.errors:
            by_message.setdefault(message, []).append(test)
        return list(by_message.items())


def versions() -> str:
    """The versions a verdict depends on, for the report header and the terminal."""
    return ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("phasegate", "psycopg", "redis", "sqlglot", "hypothesis")
    )


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def write(summary: Summary, reports_dir: str | Path, *, keep: int = KEEP) -> Path:
    """Write the run's folder, repoint ``latest``, append the run to
    ``history.jsonl``, prune all but the last ``keep`` run folders, and add the
    Markdown to a GitHub job summary when there is one; returns the folder."""
    root = Path(reports_dir)
    folder = root / summary.run_id
    folder.mkdir(parents=True, exist_ok=True)
    _keep_artifacts(summary.results, folder)
    built = build(summary, history.read(root))
    markdown = render_markdown(built)
    (folder / "summary.json").write_text(render_json(built))
    (folder / "report.md").write_text(markdown)
    (folder / "junit.xml").write_text(render_junit(built))
    (folder / "index.html").write_text(render_html(built))
    history.append(root, history.entry(as_dict(built)))
    latest = root / "latest"
    temporary = root / f".latest-{secrets.token_hex(4)}"
    temporary.symlink_to(summary.run_id, target_is_directory=True)
    os.replace(temporary, latest)  # atomic, so readers never see it missing
    history.prune(root, keep)
    history.job_summary(markdown)
    return folder


def _keep_artifacts(results: Iterable[CheckResult], folder: Path) -> None:
    """Copy files a check produced (Locust's HTML report) into the run's folder."""
    for r in results:
        for path in r.metrics.get("artifacts", ()):
            source = Path(path)
            if source.is_file():
                shutil.copy2(source, folder / source.name)


@dataclass
class GateResults:
    """Results gathered from pytest reports (on the xdist controller too)."""

    results: list[CheckResult] = field(default_factory=list)
    phase_skips: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_gate_activity(self) -> bool:
        return bool(self.results or self.phase_skips or self.errors)


def reconcile_report(result: Reconciled) -> Report:
    """One ``phasegate reconcile`` run as a report of its own (no gate checks)."""
    return Report(
        run_id=new_run_id(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        phase=None,
        verdict="pass" if result.closed else "fail",
        context={"types": ", ".join(result.types), "dry_run": result.dry_run},
        phases=(),
        reconcile=reconcile_section(result),
    )


def write_reconcile_report(result: Reconciled, folder: Path) -> Path:
    """``<folder>/<UTC time>.md`` and ``.json`` of one reconcile run."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    built = reconcile_report(result)
    (folder / f"{stamp}.json").write_text(render_json(built))
    path = folder / f"{stamp}.md"
    path.write_text(render_markdown(built))
    return path
