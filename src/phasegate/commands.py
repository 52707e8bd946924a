"""What the CLI commands do, with progress display; the CLI only parses and exits."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
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

from phasegate import schema
from phasegate.backfill import BackfillResult, backfill
from phasegate.errors import UsageError
from phasegate.findings import Finding, Severity
from phasegate.fk import FkReport, add_foreign_keys
from phasegate.gates.phase_a import CHECKS, PhaseA, RerunEvidence
from phasegate.gates.phase_c_queries import all_results
from phasegate.gates.result import CheckResult
from phasegate.inventory import Inventory, take_inventory
from phasegate.mappings import TYPE_IDS
from phasegate.queries import load_catalog
from phasegate.report import EXIT_BY_VERDICT, Summary, new_run_id
from phasegate.report import write as write_report
from phasegate.seed.generator import SCALES, generate
from phasegate.settings import Settings, redact_url
from phasegate.shapes import SchemaModel
from phasegate.stores import connect_kv, connect_pg


def _progress(console: Console) -> Progress:
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


class _Rate:
    """Keeps a keys/s figure for a progress task."""

    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task, self.start, self.done = progress, task, time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.done += n
        rate = self.done / max(time.monotonic() - self.start, 1e-6)
        self.progress.update(self.task, advance=n, rate=f"{rate:,.0f} keys/s")  # type: ignore[arg-type]


def seed_store(
    client: redis.Redis,
    scale: str,
    seed: int,
    anchor_ms: int,
    *,
    flush: bool,
    console: Console,
    where: str,
) -> int:
    """Write the fixture keyspace; refuses a non-empty DB unless ``flush``."""
    if client.dbsize() and not flush:
        raise UsageError(
            f"{where} already holds {client.dbsize()} keys; seed writes into an empty DB",
            hint="pass --flush to FLUSHDB it first, or point --kv-url at another DB index",
        )
    started = time.monotonic()
    if flush:
        client.flushdb()
    with console.status(f"generating the {scale} keyspace (seed {seed})"):
        keyspace = generate(scale, seed, anchor_ms)
    generated = time.monotonic() - started
    with _progress(console) as progress:
        task = progress.add_task(f"writing {scale}", total=len(keyspace), rate="")
        keyspace.write(client, on_keys=_Rate(progress, task))
    total = time.monotonic() - started
    console.print(
        f"seeded {len(keyspace):,} keys into {where}: scale {scale}, seed {seed}, "
        f"anchor {anchor_ms} ({generated:.1f} s generating, {total:.1f} s in all)"
    )
    return len(keyspace)


def inventory_with_progress(
    client: redis.Redis, types: Iterable[str], console: Console
) -> Inventory:
    types = tuple(types)
    with _progress(console) as progress:
        scan = progress.add_task("scanning keys", total=client.dbsize(), rate="")
        decode = progress.add_task("decoding types", total=len(types), rate="")
        return take_inventory(
            client,
            types,
            on_keys=_Rate(progress, scan),
            on_type=lambda _t: progress.advance(decode),
        )


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
            _n(ti.count(Severity.ERROR), "red"),
            _n(ti.count(Severity.WARNING), "yellow"),
            str(ti.count(Severity.INFO)),
        )
    kv_only = ", ".join(f"{k} {n}" for k, n in sorted(inv.kv_only.items()))
    table.add_row("(kv-only)", kv_only or "none", "", "", "", "")
    table.add_row("(unmapped)", "", "", _n(len(inv.keyspace_findings), "red"), "", "")
    console.print(table)
    print_findings(inv.findings, console, per_kind)


def _n(count: int, colour: str) -> str:
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


def run_demo(settings: Settings, console: Console) -> int:
    """Seed scratch stores on the sandbox, apply the schema, take the inventory,
    backfill, add the foreign keys, run the Phase A gate; a dual-write burst with
    faults and reconcile (Phase B); the Phase C query and load checks; a report."""
    from phasegate.servers import open_sandbox, scratch_database, scratch_kv

    scale = settings.scale
    console.rule(
        f"phasegate demo: scale {scale} ({SCALES[scale].messages:,} messages), seed {settings.seed}"
    )
    with console.status("starting sandbox servers"):
        sandbox = open_sandbox(settings)
    with sandbox, scratch_kv(sandbox.kv_url) as kv_url, scratch_database(sandbox.pg_url) as pg_url:
        console.print(f"sandbox: {sandbox.describe()}")
        kv = connect_kv(kv_url)
        anchor = int(time.time() * 1000) // 3_600_000 * 3_600_000
        seed_store(
            kv, scale, settings.seed, anchor, flush=False, console=console, where=redact_url(kv_url)
        )
        with connect_pg(pg_url) as conn:
            schema.apply(conn)
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            console.print(f"schema applied: {tables[0] if tables else 0} tables")
            console.rule("backfill")
            result = backfill_with_progress(kv, conn, TYPE_IDS, console)
            print_fk_report(add_foreign_keys(conn, create_missing=True), console)
            with console.status("backfilling again: a re-run must change nothing"):
                again = backfill(kv, conn, restart=True)
            console.print(f"re-run: {again.changed} rows changed")
            evidence = RerunEvidence.between(result, again)
            console.rule("Phase A gate")
            gate = PhaseA(
                kv,
                conn,
                settings.seed,
                settings.sample_rate,
                full=True,
                rerun=evidence,
            )
            summary = run_phase_a(gate, settings, kv=kv_url, pg=pg_url)
            from phasegate.demo_phase_b import demo_phase_b

            dual = demo_phase_b(settings, console)
            console.rule("Phase C query checks")
            with console.status("sqlglot shape checks and EXPLAIN ANALYZE of the catalog"):
                conn.execute("ANALYZE")
                cutover = all_results(
                    conn,
                    list(load_catalog().values()),
                    SchemaModel.from_database(conn),
                    settings.seqscan_rows,
                )
            console.rule(f"load gate: {DEMO_LOAD_USERS} users for {DEMO_LOAD_TIME}")
            load = demo_load(settings, kv_url, pg_url, conn, console)
            summary = dataclasses.replace(
                summary,
                phase=None,
                results=summary.results + tuple(dual) + tuple(cutover) + tuple(load),
            )
        print_summary(summary, console)
        folder = write_report(summary, settings.reports_dir)
        verdicts = summary.as_dict()["phases"]
        console.print(
            "[bold]"
            + ", ".join(f"Phase {p} verdict: {v['verdict'].upper()}" for p, v in verdicts.items())
            + f"[/]; report: {folder}/report.md"
        )
    return EXIT_BY_VERDICT[summary.verdict]


DEMO_LOAD_USERS = 100
DEMO_LOAD_TIME = "15s"  # 5 s of it is the ramp, left out of the statistics


def demo_load(
    settings: Settings,
    kv_url: str,
    pg_url: str,
    conn: psycopg.Connection[tuple[object, ...]],
    console: Console,
) -> list[CheckResult]:
    """A short load gate: the reference service reading Postgres, Locust headless."""
    from phasegate.gates import phase_c_load as gate
    from phasegate.load import params, runner
    from phasegate.load.stats import Budgets

    folder = Path(settings.reports_dir) / "load"  # beside `phasegate load run`'s output
    folder.mkdir(parents=True, exist_ok=True)
    budgets = Budgets.of(settings)
    with (
        runner.service(kv_url, pg_url, read="pg", write="pg", folder=folder) as svc,
        console.status(f"Locust against the reference service at {svc.url}"),
    ):
        run = runner.run_locust(
            svc.url,
            params.write(params.sample(conn), folder / "params.json"),
            users=DEMO_LOAD_USERS,
            run_time=DEMO_LOAD_TIME,
            budgets=budgets,
            folder=folder,
            name="demo",
        )
    from phasegate.cli_load import print_load

    print_load(run.result, console, None)
    results = [gate.run_result(run.result, budgets, [str(run.html)])]
    for name in sorted(run.result.endpoints):
        results += [gate.p95_result(name, run.result, budgets)]
        results += [gate.errors_result(name, run.result, budgets)]
    return results


@dataclass
class Loaded:
    """Scratch stores on the sandbox holding one seeded, backfilled migration."""

    kv_url: str
    pg_url: str
    pg: psycopg.Connection[tuple[object, ...]]


@contextmanager
def load_sandbox(settings: Settings, scale: str, console: Console) -> Iterator[Loaded]:
    """Scratch stores on the sandbox holding ``scale`` seeded, backfilled, ANALYZEd."""
    from phasegate.servers import open_sandbox, scratch_database, scratch_kv

    with console.status("starting sandbox servers"):
        sandbox = open_sandbox(settings)
    with sandbox, scratch_kv(sandbox.kv_url) as kv_url, scratch_database(sandbox.pg_url) as pg_url:
        kv = connect_kv(kv_url)
        anchor = int(time.time() * 1000) // 3_600_000 * 3_600_000
        seed_store(
            kv, scale, settings.seed, anchor, flush=False, console=console, where=redact_url(kv_url)
        )
        with connect_pg(pg_url) as conn:
            schema.apply(conn)
            backfill_with_progress(kv, conn, TYPE_IDS, console)
            add_foreign_keys(conn, create_missing=True)
            conn.execute("ANALYZE")
            kv.close()
            yield Loaded(kv_url, pg_url, conn)


def run_phase_a(gate: PhaseA, settings: Settings, *, kv: str, pg: str) -> Summary:
    """Every Phase A check of every type, as one report summary."""
    results = [gate.run("coverage", "keyspace")]
    results += [gate.run(check, t) for t in TYPE_IDS for check in CHECKS]
    return Summary(
        run_id=new_run_id(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        phase="A",
        context={
            "seed": settings.seed,
            "sample_rate_percent": settings.sample_rate,
            "full": gate.full,
            "kv": redact_url(kv),
            "pg": redact_url(pg),
        },
        results=tuple(results),
    )


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


def backfill_with_progress(
    kv: redis.Redis,
    pg: psycopg.Connection[tuple[object, ...]],
    types: Iterable[str],
    console: Console,
    *,
    restart: bool = False,
    batch_rows: int = 50_000,
) -> BackfillResult:
    """Backfill with a progress bar per type, then a table of rows and findings."""
    types = tuple(types)
    inventory = inventory_with_progress(kv, types, console)
    with _progress(console) as progress:
        tasks = {
            t: progress.add_task(f"loading {t}", total=inventory.types[t].records or 1, rate="")
            for t in types
        }
        started = time.monotonic()

        def on_rows(type_id: str, done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(
                tasks[type_id], completed=done, total=total or 1, rate=f"{rate:,.0f} rows/s"
            )

        result = backfill(
            kv,
            pg,
            types,
            restart=restart,
            batch_rows=batch_rows,
            inventory=inventory,
            on_rows=on_rows,
        )
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
            _n(errors, "red"),
            _n(warnings, "yellow"),
        )
    console.print(table)
    if result.changed == 0:
        console.print("no-op: every row already matched KV; nothing was rewritten")
    console.print(f"findings stored in phasegate_findings (run_id {result.run_id})")
    print_findings(result.inventory.findings, console, per_kind=3)
    return result


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
