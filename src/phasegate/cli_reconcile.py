"""``phasegate reconcile``: replay the journal, repair, re-verify (:mod:`phasegate.reconcile`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from phasegate.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from phasegate.journal import Journal
from phasegate.mappings import TYPE_IDS
from phasegate.parity.postgres import AllowList
from phasegate.reconcile import Reconciled, reconcile
from phasegate.settings import Settings, redact_url
from phasegate.stores import connect_kv, connect_pg

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
DEFAULT_JOURNAL = Path("reports/dual-write-journal.jsonl")
SHOWN = 5  # keys listed per type and kind


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    typed: argparse.ArgumentParser,
) -> None:
    cmd = sub.add_parser(
        "reconcile",
        parents=[common, typed],
        help="replay the dual-write journal, repair Postgres from KV, re-verify",
        description="1. replay every pending journal entry to the store that missed it; "
        "2. a full comparison of --kv-url and --pg-url (the Phase A engine); 3. upsert "
        "each KV record missing or different in Postgres, report Postgres-only rows "
        "(writing to KV those the journal shows KV missed); 4. re-verify every key "
        "touched. A second run repairs nothing and says so. Exit 1 when a gap is left "
        "open. Writes reports/reconcile/<time>.json and .md.",
    )
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="replay and repair nothing; list what would be done",
    )
    cmd.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_JOURNAL,
        metavar="FILE",
        help="the dual-write journal (default %(default)s, as `phasegate serve` writes)",
    )
    cmd.set_defaults(run=_reconcile)


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    if not (settings.kv_url and settings.pg_url):
        raise UsageError("reconcile needs --kv-url and --pg-url (the stores to reconcile)")
    journal = Journal(args.journal) if args.journal.exists() else None
    if journal is None:
        console.print(f"[yellow]no journal at {args.journal}: nothing to replay[/]")
    types = args.types or TYPE_IDS
    console.print(
        f"reconciling {redact_url(settings.kv_url)} -> {redact_url(settings.pg_url)}"
        + (" (dry run)" if args.dry_run else "")
    )
    with (
        connect_pg(settings.pg_url) as pg,
        Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def note(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=max(total, 1))
            progress.update(tasks[stage], completed=done, total=max(total, 1))

        result = reconcile(
            connect_kv(settings.kv_url),
            pg,
            journal,
            types,
            dry_run=args.dry_run,
            allow=AllowList.load(settings.pg_only_allowlist),
            progress=note,
        )
    print_reconciled(result, console)
    folder = Path(settings.reports_dir) / "reconcile"
    path = write_report(result, folder)
    console.print(f"report: {path} (and .json)")
    return EXIT_OK if result.closed else EXIT_GATE_FAILED


def print_reconciled(result: Reconciled, out: Console) -> None:
    table = Table(title="reconcile", title_justify="left")
    for column in ("type", "differed", "repaired", "to KV", "Postgres-only", "still differ"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for t in result.types:
        table.add_row(
            t,
            f"{result.differences_before.get(t, 0):,}",
            f"{len(result.repaired.get(t, [])):,}",
            f"{len(result.written_to_kv.get(t, [])):,}",
            f"{len(result.pg_only.get(t, [])):,}",
            f"{result.differences_after.get(t, 0):,}",
        )
    out.print(table)
    for line in report_lines(result)[2:]:
        if line.startswith("- "):
            out.print(line)
    colour = "green" if result.closed else "red"
    out.print(f"[{colour}]{result.verdict()}[/] in {result.seconds:.1f} s")


def report_lines(result: Reconciled) -> list[str]:
    """The markdown section: verdict, the table, and the first keys of each kind."""
    lines = [
        "## Reconcile",
        "",
        f"{result.verdict()} ({result.seconds:.1f} s).",
        "",
        "| type | differed | repaired | to KV | Postgres-only | still differ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in result.types:
        lines.append(
            f"| {t} | {result.differences_before.get(t, 0)} | {len(result.repaired.get(t, []))} | "
            f"{len(result.written_to_kv.get(t, []))} | {len(result.pg_only.get(t, []))} | "
            f"{result.differences_after.get(t, 0)} |"
        )
    lines.append("")
    kinds = (
        ("repaired in Postgres", result.repaired),
        ("written to KV", result.written_to_kv),
        ("Postgres-only, left alone", result.pg_only),
        ("could not repair", result.repair_failed),
        ("still different after repair", result.still_different),
    )
    for title, found in kinds:
        for t, names in found.items():
            if names:
                more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
                lines.append(f"- {title} ({t}): " + ", ".join(names[:SHOWN]) + more)
    lines.extend(f"- journal entry still failing: {f}" for f in result.journal_failed[:SHOWN])
    return [*lines, ""]


def write_report(result: Reconciled, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    (folder / f"{stamp}.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    path = folder / f"{stamp}.md"
    path.write_text("# phasegate reconcile\n\n" + "\n".join(report_lines(result)[2:]))
    return path
