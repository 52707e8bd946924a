"""``phasegate serve`` and ``phasegate load run|baseline``: the service and the load gate."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from phasegate.console import print_load
from phasegate.dualwrite.writer import DEFECTS
from phasegate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, UsageError
from phasegate.journal import DEFAULT_JOURNAL
from phasegate.load.stats import (
    EXIT_MEANING,
    INCONCLUSIVE_CODES,
    Budgets,
    LoadResult,
    baseline_regressions,
)
from phasegate.plans import PLAN_SCALE
from phasegate.settings import Settings, redact_url

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
LOAD_SCALE = PLAN_SCALE  # realistic volume for the sandbox load


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="the reference service: /vibe endpoints over --kv-url and --pg-url",
        description="Serve the /vibe endpoints the load touches. Per data type a read "
        "source (kv|pg) and a write mode (kv|dual|pg): --read TYPE=SRC, --write TYPE=MODE, "
        "or PHASEGATE_READ_<TYPE> / PHASEGATE_WRITE_<TYPE>; what a rollback flips.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--read", action="append", default=[], metavar="TYPE=SRC")
    serve.add_argument("--write", action="append", default=[], metavar="TYPE=MODE")
    serve.add_argument("--read-all", default="kv", choices=("kv", "pg"), help="default kv")
    serve.add_argument("--write-all", default="kv", choices=("kv", "dual", "pg"), help="default kv")
    serve.add_argument(
        "--inject-delay",
        action="append",
        default=[],
        metavar="ENDPOINT=MS",
        help="add a delay to an endpoint (to show the gate failing on a slow path)",
    )
    serve.add_argument(
        "--inject-errors",
        action="append",
        default=[],
        metavar="ENDPOINT=PCT",
        help="fail this share of an endpoint's requests with HTTP 500",
    )
    serve.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_JOURNAL,
        metavar="FILE",
        help="where dual writes record what one store missed (default %(default)s)",
    )
    serve.add_argument(
        "--shadow",
        action="store_true",
        help="shadow reads: also read the other store, compare, keep divergence per "
        "endpoint (GET /_phasegate/status); callers still get the configured source",
    )
    serve.add_argument(
        "--write-timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="a store that does not answer a write within S seconds counts as failed "
        "(default %(default)s)",
    )
    serve.add_argument(
        "--inject-defect",
        action="append",
        default=[],
        choices=DEFECTS,
        help="break a dual-write rule on purpose (to prove the Phase B gate catches it)",
    )
    serve.set_defaults(run=_serve)

    load = sub.add_parser("load", help="Locust load: the p95 gate and its baseline")
    actions = load.add_subparsers(dest="action", required=True, metavar="ACTION")
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--profile",
        choices=("http", "db"),
        default="http",
        help="http: the endpoints (default); db: the catalogued queries",
    )
    options.add_argument(
        "--tags", nargs="+", default=[], metavar="TYPE", help="only these data types' tasks"
    )
    run = actions.add_parser(
        "run",
        parents=[common, options],
        help="run Locust headless and judge p95, errors and throughput per endpoint",
        description="Against --load-host (the real app; parameters from --pg-url) or the "
        f"reference service reading Postgres on a sandbox loaded at {LOAD_SCALE}. Compares "
        "p95 with --baseline-file when it exists. Exit 1 if the gate fails.",
    )
    run.add_argument(
        "--read-from",
        choices=("kv", "pg"),
        default="pg",
        help="the reference service's read source (default pg)",
    )
    run.set_defaults(run=_run)
    baseline = actions.add_parser(
        "baseline",
        parents=[common, options],
        help="record p95 per endpoint with reads from KV (before dual-write)",
    )
    baseline.set_defaults(run=_baseline, read_from="kv")


def _pairs(items: list[str], flag: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"{flag} {item!r}: expected ENDPOINT=NUMBER")
    return out


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from phasegate.app.modes import Modes
    from phasegate.app.server import Inject, create_app

    if not (settings.kv_url and settings.pg_url):
        raise UsageError("serve needs --kv-url and --pg-url (the stores to serve from)")
    modes = Modes.parse(args.read, args.write, read_all=args.read_all, write_all=args.write_all)
    inject = Inject(
        _pairs(args.inject_delay, "--inject-delay"), _pairs(args.inject_errors, "--inject-errors")
    )
    console.print(f"serving http://{args.host}:{args.port}: {modes.describe()}")
    from phasegate.journal import Journal

    app = create_app(
        settings.kv_url,
        settings.pg_url,
        modes,
        inject,
        Journal(args.journal),
        shadow=args.shadow,
        divergence_budget_percent=settings.divergence_budget_percent,
        write_failure_budget_percent=settings.write_failure_budget_percent,
        store_timeout_s=args.write_timeout,
        defects=frozenset(args.inject_defect),
        admin_token=os.environ.get("PHASEGATE_ADMIN_TOKEN") or None,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return EXIT_OK


def _load(args: argparse.Namespace, settings: Settings, name: str) -> tuple[LoadResult, int, Path]:
    from phasegate.commands import load_sandbox
    from phasegate.load import runner

    folder = Path(settings.reports_dir) / "load"
    folder.mkdir(parents=True, exist_ok=True)
    with (
        runner.target(
            settings,
            lambda: load_sandbox(settings, LOAD_SCALE, console),
            profile=args.profile,
            read=args.read_from,
            write="kv" if args.read_from == "kv" else "dual",
            folder=folder,
        ) as where,
        console.status(
            f"Locust: {settings.load_users} users for {settings.load_run_time} "
            f"against {redact_url(where.host)}"
        ),
    ):
        run = runner.run_locust(
            where.host,
            where.params_file,
            users=settings.load_users,
            run_time=settings.load_run_time,
            budgets=Budgets.of(settings),
            folder=folder,
            profile=args.profile,
            tags=args.tags,
            exclude_tags=where.exclude_tags,
            name=name,
        )
    console.print(f"Locust's report: {run.html}")
    return run.result, run.exit_code, run.html


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.load import runner

    result, code, _html = _load(args, settings, "run")
    baseline = runner.read_baseline(Path(settings.baseline_file))
    regressions = (
        baseline_regressions(result, baseline, settings.baseline_tolerance_percent)
        if baseline
        else []
    )
    print_load(result, console, baseline)
    for line in regressions:
        console.print(f"[bold red]baseline[/]: {line}")
    ok = code == 0 and not regressions
    why = [EXIT_MEANING.get(code, f"Locust exit code {code}")] if code else []
    why += [f"{len(regressions)} p95 over the baseline"] if regressions else []
    console.print(
        f"{'[bold green]PASS[/]' if ok else '[bold red]FAIL[/]'} load gate"
        + (f": {'; '.join(why)}" if why else "")
        + ("" if baseline else f" (no baseline at {settings.baseline_file})")
    )
    if code in INCONCLUSIVE_CODES and not regressions:
        return EXIT_INCONCLUSIVE
    return EXIT_OK if ok else EXIT_GATE_FAILED


def _baseline(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.load import runner

    result, _code, _html = _load(args, settings, "baseline")
    print_load(result, console, None)
    if not result.requests:
        console.print("[bold red]no requests measured: baseline not written (inconclusive)[/]")
        return EXIT_INCONCLUSIVE
    source = settings.load_host or "reference service reading KV"
    runner.save_baseline(result, Path(settings.baseline_file), source=redact_url(source))
    console.print(f"baseline written to {settings.baseline_file}")
    return EXIT_OK
