"""``phasegate reconcile``: replay the journal, repair, re-verify (:mod:`phasegate.reconcile`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    TaskID,
)

from phasegate.console import print_reconciled, stage_bars
from phasegate.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from phasegate.journal import DEFAULT_JOURNAL, Journal
from phasegate.mappings import TYPE_IDS
from phasegate.parity.postgres import AllowList
from phasegate.reconcile import reconcile
from phasegate.report import write_reconcile_report
from phasegate.settings import Settings, redact_url
from phasegate.stores import connect_kv, connect_pg

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def reports_folder(settings: Settings) -> Path:
    """Where reconcile runs write their reports (and the guard reads the last)."""
    return Path(settings.reports_dir) / "reconcile"


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
        stage_bars(console) as progress,
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
    folder = reports_folder(settings)
    path = write_reconcile_report(result, folder)
    console.print(f"report: {path} (and .json)")
    return EXIT_OK if result.closed else EXIT_GATE_FAILED
