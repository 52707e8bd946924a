"""Everything phasegate shows on a terminal: progress bars and rich tables.

Commands compute; this module displays. One place, so every table reads alike
and no command module imports another for its display.
"""

from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from phasegate.findings import Finding, Severity
from phasegate.fk import FkReport
from phasegate.inventory import Inventory
from phasegate.load.stats import LoadResult
from phasegate.report import Summary


def progress_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("[dim]{task.fields[rate]}[/]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class Rate:
    """Keeps a keys/s figure for a progress task."""

    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task, self.start, self.done = progress, task, time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.done += n
        rate = self.done / max(time.monotonic() - self.start, 1e-6)
        self.progress.update(self.task, advance=n, rate=f"{rate:,.0f} keys/s")  # type: ignore[arg-type]


def print_inventory(inv: Inventory, console: Console, per_kind: int = 10) -> None:
    table = Table(title=f"KV inventory: {inv.total_keys:,} keys", title_justify="left")
    for column in ("type", "keys per variant", "records", "errors", "warnings", "info"):
        table.add_column(column, justify="right" if column in ("records",) else "left")
    for type_id, ti in inv.types.items():
        variants = ", ".join(f"{v} {n:,}" for v, n in sorted(ti.keys.items())) or "(borrowed)"
        table.add_row(
            type_id,
            variants,
            f"{ti.records:,}",
            count_shown(ti.count(Severity.ERROR), "red"),
            count_shown(ti.count(Severity.WARNING), "yellow"),
            str(ti.count(Severity.INFO)),
        )
    kv_only = ", ".join(f"{k} {n}" for k, n in sorted(inv.kv_only.items()))
    table.add_row("(kv-only)", kv_only or "none", "", "", "", "")
    table.add_row("(unmapped)", "", "", count_shown(len(inv.keyspace_findings), "red"), "", "")
    console.print(table)
    print_findings(inv.findings, console, per_kind)


def count_shown(count: int, colour: str) -> str:
    return f"[{colour}]{count}[/]" if count else "0"


def print_findings(findings: list[Finding], console: Console, per_kind: int) -> None:
    by_kind: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        by_kind[(str(f.severity), f.type_id, f.kind)].append(f)
    order = {"error": 0, "warning": 1, "info": 2}
    for (severity, type_id, kind), group in sorted(by_kind.items(), key=lambda i: order[i[0][0]]):
        if severity == "info":
            console.print(f"[dim]{type_id}: {len(group)} {kind} (info; e.g. {group[0].key})[/]")
            continue
        colour = "red" if severity == "error" else "yellow"
        console.print(f"[{colour}]{type_id}: {len(group)} {kind} ({severity})[/]")
        for f in group[:per_kind]:
            where = f.key + (f" field {f.field}" if f.field else "")
            console.print(f"    {where}: {f.detail}")
        if len(group) > per_kind:
            console.print(f"    ... {len(group) - per_kind} more")


def print_summary(summary: Summary, console: Console) -> None:
    for phase, types in summary.by_phase().items():
        checks = list(dict.fromkeys(c for t in types.values() for c in t))
        table = Table(title=f"Phase {phase}", title_justify="left")
        table.add_column("type")
        for check in checks:
            table.add_column(check)
        colour = {"pass": "green", "fail": "red", "skip": "dim", "inconclusive": "yellow"}
        for type_id, results in types.items():
            cells = [
                f"[{colour[results[c].status]}]{results[c].status}[/]" if c in results else ""
                for c in checks
            ]
            table.add_row(type_id, *cells)
        console.print(table)
    for r in summary.results:
        if r.status == "fail":
            console.print(f"[red]{r.explain()}[/]")


def print_fk_report(report: FkReport, console: Console) -> None:
    for orphan in report.orphans:
        fixed = " -> stub user created" if orphan.handle in report.stubs else ""
        console.print(f"orphan {orphan}{fixed}")
    if report.blocked:
        console.print(
            f"[red]{len(report.blocked)} orphan handles block the foreign keys[/]: restore those "
            "users, or pass --create-missing-handles if they are system or agent accounts"
        )
        return
    for name in report.added:
        console.print(f"added and validated {name} (ON DELETE CASCADE)")
    if report.present:
        console.print(f"{len(report.present)} foreign keys were already present")


def print_load(result: LoadResult, out: Console, baseline: dict[str, float] | None) -> None:
    table = Table(
        title=f"load: {result.users} users, {result.duration_s:.0f} s", title_justify="left"
    )
    for column in (
        "endpoint",
        "requests",
        "failures",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "baseline p95",
    ):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for name, e in sorted(result.endpoints.items()):
        before = (baseline or {}).get(name)
        table.add_row(
            name,
            f"{e.requests:,}",
            f"{e.failures:,}",
            str(e.p50),
            str(e.p95),
            str(e.p99),
            "-" if before is None else f"{before:g}",
        )
    out.print(table)
    out.print(
        f"throughput {result.rpm:,.0f} requests/min; load generator CPU {result.cpu_percent:.0f}% "
        f"of one core{' (saturated: inconclusive)' if result.cpu_saturated else ''}"
    )
    for reason in result.reasons:
        out.print(f"[bold red]{reason}[/]")
