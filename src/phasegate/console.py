"""Everything phasegate shows on a terminal: progress bars and rich tables.

Commands compute; this module displays. One place, so every table reads alike
and no command module imports another for its display.
"""

from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console
from rich.markup import escape
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

from phasegate.backfill import BackfillResult
from phasegate.doctor import Check
from phasegate.findings import Finding, Severity
from phasegate.fk import FkReport
from phasegate.guard import HOLD, INCONCLUSIVE, ROLL_BACK, Watch
from phasegate.inventory import Inventory
from phasegate.load.stats import LoadResult
from phasegate.plans import PlanCheck
from phasegate.reconcile import Reconciled
from phasegate.report_build import reconcile_section
from phasegate.report_md import reconcile_keys
from phasegate.report_model import Report
from phasegate.shapes import NOTICES, SchemaModel, ShapeFinding, Statement


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


def stage_bars(console: Console) -> Progress:
    """A bar per stage of a multi-step job (reconcile): done of total, elapsed."""
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
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


def print_summary(report: Report, console: Console) -> None:
    """Per phase a table of types by checks, then what failed and why figures that
    look alarming are expected, then each phase's verdict."""
    colour = {"pass": "green", "fail": "red", "skip": "dim", "inconclusive": "yellow"}
    for p in report.phases:
        table = Table(title=f"Phase {p.phase}", title_justify="left")
        table.add_column("type")
        for name in p.columns:
            table.add_column(name)
        for t in p.types:
            cells = [
                f"[{colour[c.status]}]{c.status}[/]" if (c := t.cell(name)) else ""
                for name in p.columns
            ]
            table.add_row(t.type_id, *cells)
        console.print(table)
    for c in report.checks("fail"):
        console.print(f"[red]{escape(c.type_id)}/{escape(c.name)}: {escape(c.message)}[/]")
        for d in c.details:
            console.print(f"  - {d}", markup=False)
    for c in report.checks("inconclusive"):
        console.print(f"[yellow]{escape(c.type_id)}/{escape(c.name)}: {escape(c.message)}[/]")
    for e in report.errors:
        console.print(f"[magenta]error in {len(e.tests)} checks: {escape(e.message)}[/]")
    for b in report.bursts:
        console.print(
            f"burst {b.type_id}: {b.write_failure_percent:.1f}% of {b.writes} writes failed"
            + (" (write-failure alert fired)" if b.write_alert else "")
            + f", divergence {_percent(b.divergence_before_percent)} before reconcile and "
            f"{_percent(b.divergence_after_percent)} after"
        )
    if report.bursts:
        console.print(f"[dim]why these figures are expected: {report.bursts[0].why}[/]")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


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


def print_reconciled(result: Reconciled, out: Console) -> None:
    section = reconcile_section(result)
    table = Table(title="reconcile", title_justify="left")
    for column in ("type", "differed", "repaired", "to KV", "Postgres-only", "still differ"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for row in section.rows:
        table.add_row(
            row.type_id,
            f"{row.differed:,}",
            f"{len(row.repaired):,}",
            f"{len(row.written_to_kv):,}",
            f"{len(row.pg_only):,}",
            f"{row.differences_after:,}",
        )
    out.print(table)
    for line in reconcile_keys(section):
        out.print(line, markup=False)
    colour = "green" if section.closed else "red"
    out.print(f"[{colour}]{escape(section.verdict)}[/] in {section.seconds:.1f} s")


def print_shape_findings(
    statements: list[Statement], findings: list[ShapeFinding], schema: SchemaModel, console: Console
) -> None:
    for f in findings:
        name = "" if f.statement.name == f.statement.origin else f" {f.statement.name}"
        console.print(f"[bold red]{escape(f.statement.origin)}[/] {escape(f'[{f.rule}]')}{name}")
        console.print(f"    {f.statement.preview}", markup=False)
        console.print(f"    why: {f.message}", markup=False)
        if f.expected:
            console.print(f"    expected index: {f.expected}", markup=False)
        if f.fix:
            console.print(f"    rewrite: {f.fix}", markup=False)
    defects = [f for f in findings if f.rule not in NOTICES]
    bad = len({f.statement for f in defects})
    verdict = (
        "[bold red]FAIL[/]"
        if defects
        else "[bold green]PASS[/]"
        if statements
        else "[bold yellow]INCONCLUSIVE[/] (no SQL statement found: nothing to judge)"
    )
    console.print(
        f"{verdict} {len(statements)} statements checked against the {schema.origin}: "
        f"{len(statements) - bad} clean, {bad} with {len(defects)} findings"
        + (
            f", {len(findings) - len(defects)} not understood"
            if len(findings) > len(defects)
            else ""
        )
    )


def print_plans(checks: list[PlanCheck], console: Console, where: str) -> None:
    table = Table(title=f"query plans ({where})")
    for column in ("type", "query", "plan", "index", "Index Cond keys", "ms", "buffers", "ok"):
        table.add_column(column, justify="right" if column in ("ms", "buffers") else "left")
    for c in checks:
        ms = f"{c.run.execution_ms:.3f}" if c.run.execution_ms is not None else "not run"
        table.add_row(
            c.query.type_id,
            c.query.name,
            c.run.mode + (" (forced)" if c.run.forced else ""),
            c.index,
            ", ".join(c.relied_keys) or "-",
            ms,
            f"{c.run.shared_hit + c.run.shared_read}",
            "[green]pass[/]" if c.passed else "[bold red]FAIL[/]",
        )
    console.print(table)
    for c in checks:
        for problem in c.problems:
            console.print(f"[bold red]{c.query.type_id}/{c.query.name}[/]: {problem}", markup=True)
    failed = sum(not c.passed for c in checks)
    console.print(
        f"{'[bold red]FAIL[/]' if failed else '[bold green]PASS[/]'} "
        f"{len(checks)} plans, {failed} failed; forced = planned with enable_seqscan off "
        "(table below the Seq Scan threshold)"
    )


def print_doctor_checks(console: Console, title: str, checks: list[Check]) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("need", "for", "the gate needs it", "this user", "server said"):
        table.add_column(column)
    shown = {True: "[green]allowed[/]", False: "[red]refused[/]", None: "[yellow]unknown[/]"}
    for c in checks:
        table.add_row(
            c.need, c.why, "yes" if c.required else "no", shown[c.allowed], c.detail[:160]
        )
    console.print(table)


def print_backfill(result: BackfillResult, console: Console) -> None:
    table = Table(
        title=f"backfill run {result.run_id}" + (" (resumed)" if result.resumed else ""),
        title_justify="left",
    )
    for column in ("type", "inserted", "updated", "unchanged", "errors", "warnings"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for t, r in result.types.items():
        errors = sum(1 for f in r.findings if f.severity == Severity.ERROR)
        warnings = sum(1 for f in r.findings if f.severity == Severity.WARNING)
        table.add_row(
            t,
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            count_shown(errors, "red"),
            count_shown(warnings, "yellow"),
        )
    console.print(table)


def burst_table() -> Table:
    """The burst's windows, a row added per window as it finishes (:func:`add_window`)."""
    table = Table(title="burst windows", title_justify="left")
    for column in ("fault", "writes", "acknowledged", "retried", "journaled"):
        table.add_column(column, justify="left" if column == "fault" else "right")
    return table


def add_window(table: Table, kind: str, counts: tuple[int, int, int, int]) -> None:
    """One window: writes, acknowledged, retried, journaled."""
    table.add_row(kind, *map(str, counts))


def print_watch(seen: Watch, out: Console) -> None:
    table = Table(title="rollback guard", title_justify="left")
    for column in ("type", "decision", "trigger", "why"):
        table.add_column(column)
    colour = {HOLD: "green", ROLL_BACK: "red", INCONCLUSIVE: "yellow"}
    for type_id, d in sorted(seen.decisions.items()):
        table.add_row(type_id, f"[{colour[d.decision]}]{d.decision}[/]", d.trigger, d.reason)
    out.print(table)
    for event in seen.events:
        acted = "rolled back: reads now kv" if event["acted"] else "would roll back (no --act)"
        out.print(f"[red]{event['type']}: {acted} ({event['trigger']}: {event['evidence']})[/]")
    b = seen.budget
    out.print(
        f"error budget ({b['budget_days']} days at {b['budget_percent']:g}%): "
        f"{b['failed']} of {b['requests']:,} requests failed in {b['watched_s']:g} s watched; "
        f"{b['spent_percent']:g}% spent, {b['left_percent']:g}% left"
    )
