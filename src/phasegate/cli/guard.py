"""``phasegate guard``: watch a running service and decide per data type whether to
hold or roll its reads back to KV (:mod:`phasegate.guard`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from phasegate import guard, report
from phasegate.cli.reconcile import reports_folder
from phasegate.console import print_watch
from phasegate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, UsageError
from phasegate.journal import DEFAULT_JOURNAL
from phasegate.settings import Settings, redact_url

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    cmd = sub.add_parser(
        "guard",
        parents=[common],
        help="watch a service during read cutover; roll a breaching type back to KV",
        description="Polls the service's metric stream (GET /_phasegate/metrics) and status "
        "for --duration seconds and decides per data type: hold, roll back (p95 over "
        "--guard-p95-ms in every one of --guard-sub-windows sub-windows of --guard-window "
        "seconds; errors over --guard-error-percent over the window; at once on data loss: "
        "a shadow read from Postgres still differing after its recheck, a journal entry "
        "Postgres refused for good, a key the last reconcile left open) or inconclusive (too few "
        "requests, or the window not yet watched whole). Reports the 7-day error budget "
        "spent and left. Without --act it only reports; with --act it flips the breaching "
        "type's reads to kv through POST /_phasegate/admin/modes (token from "
        "PHASEGATE_ADMIN_TOKEN) and records the event. Exit 1 if any type is rolled back, "
        "else 3 if any could not be judged (limit the watch with --types), else 0.",
    )
    cmd.add_argument("--service", required=True, metavar="URL", help="the service to watch")
    cmd.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds to watch (default: the trigger window, so it can be judged whole)",
    )
    cmd.add_argument("--poll", type=float, default=1.0, metavar="S", help="poll interval (1 s)")
    cmd.add_argument("--types", nargs="+", metavar="TYPE", help="only these data types")
    cmd.add_argument("--act", action="store_true", help="roll back for real (needs the token)")
    cmd.add_argument(
        "--events",
        type=Path,
        default=Path("reports/guard-journal.jsonl"),
        metavar="FILE",
        help="where rollback events are recorded (default %(default)s)",
    )
    cmd.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_JOURNAL,
        metavar="FILE",
        help="the dual-write journal: an entry Postgres refused for good is data loss "
        "(default %(default)s)",
    )
    cmd.add_argument(
        "--reconcile-reports",
        type=Path,
        metavar="DIR",
        help="where `phasegate reconcile` writes: keys its last run left open are data "
        "loss (default <reports_dir>/reconcile)",
    )
    cmd.set_defaults(run=_guard)


def _report(
    seen: guard.Watch, triggers: guard.Triggers, args: argparse.Namespace, settings: Settings
) -> Path:
    """The watch as a Phase C report (rollback-guard checks; events in their metrics)."""
    events = {e["type"]: e for e in seen.events}
    summary = report.Summary(
        run_id=report.new_run_id(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        phase="C",
        context={
            "service": redact_url(args.service),
            "act": args.act,
            "window_s": triggers.window_s,
            "error_budget": seen.budget,
            "versions": report.versions(),
        },
        results=tuple(
            guard.as_check(d, triggers, events.get(t)) for t, d in sorted(seen.decisions.items())
        ),
    )
    return report.write(summary, settings.reports_dir, keep=settings.reports_keep)


def _guard(args: argparse.Namespace, settings: Settings) -> int:
    token = os.environ.get("PHASEGATE_ADMIN_TOKEN") or None
    if args.act and not token:
        raise UsageError(
            "--act needs the service's admin token",
            hint="set PHASEGATE_ADMIN_TOKEN to the token the service was started with",
        )
    triggers = guard.Triggers.of(settings)
    args.events.parent.mkdir(parents=True, exist_ok=True)
    with console.status(f"watching {args.service}"):
        seen = guard.watch(
            guard.Service(args.service, token),
            triggers,
            duration_s=args.duration or triggers.window_s,
            poll_s=args.poll,
            types=args.types,
            act=args.act,
            journal=args.events,
            recorded=lambda: guard.losses(
                args.journal,
                guard.newest_reconcile_report(args.reconcile_reports or reports_folder(settings)),
            ),
        )
    print_watch(seen, console)
    (args.events.parent / "guard-last.json").write_text(
        json.dumps(
            {
                "decisions": {t: d.as_json() for t, d in seen.decisions.items()},
                "events": seen.events,
                "budget": seen.budget,
            },
            indent=2,
        )
        + "\n"
    )
    folder = _report(seen, triggers, args, settings)
    console.print(f"report: {folder}/index.html")
    decisions = {d.decision for d in seen.decisions.values()}
    if guard.ROLL_BACK in decisions:
        return EXIT_GATE_FAILED
    if guard.INCONCLUSIVE in decisions:  # nothing passes for lack of requests
        return EXIT_INCONCLUSIVE
    return EXIT_OK
