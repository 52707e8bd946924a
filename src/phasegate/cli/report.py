"""``phasegate report merge``: the shares of a split Phase A gate as one verdict
(:mod:`phasegate.shares`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from phasegate.settings import Settings

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    cmd = sub.add_parser("report", help="gate reports: merge the shares of a split gate")
    actions = cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = actions.add_parser(
        "merge",
        parents=[common],
        help="join the reports of `pytest --phase=A --buckets i/N` (i = 1..N) into one verdict",
        description="Reads share.json from each run folder, checks that they are shares 1 "
        "to N of one gate (same stores, seed, sample rate, checks), adds their comparison "
        "passes up and judges the data checks on the sum, as one whole run would. Writes "
        "the merged report to --reports-dir as a run of its own. Exit code by its verdict: "
        "0 pass, 1 fail, 2 error (or unusable shares), 3 inconclusive.",
    )
    merge.add_argument(
        "folders", nargs="+", metavar="RUN", help="a share's run folder (reports/<run-id>)"
    )
    merge.set_defaults(run=_merge)


def _merge(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.shares import merge_and_write

    summary, folder = merge_and_write(args.folders, settings.reports_dir, settings.reports_keep)
    console.print(f"merged {summary.context['shares']}")
    for r in summary.results:
        if r.status in ("fail", "inconclusive"):
            console.print(r.explain(), markup=False)
    for cause, tests in summary.error_groups():
        console.print(f"error: {cause} ({len(tests)} checks)", markup=False)
    console.print(f"phase A: {summary.verdict.upper()}; report {folder}/index.html")
    return summary.exit_code
