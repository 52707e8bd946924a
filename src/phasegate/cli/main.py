"""The ``phasegate`` command. One place catches errors; exit codes are fixed:
0 pass, 1 gate failed, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import redis
from rich.console import Console

from phasegate import __version__, schema
from phasegate.cli import archive as cli_archive
from phasegate.cli import doctor as cli_doctor
from phasegate.cli import guard as cli_guard
from phasegate.cli import load as cli_load
from phasegate.cli import reconcile as cli_reconcile
from phasegate.cli import report as cli_report
from phasegate.cli import shapes as cli_shapes
from phasegate.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, PhasegateError, UsageError
from phasegate.mappings import TYPE_IDS
from phasegate.settings import SETTINGS, Settings, redact_url, resolve, settings_table
from phasegate.stores import connect_kv, connect_pg

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False)


# Settings of the pytest gate alone: no command takes them.
PYTEST_ONLY = frozenset({"buckets"})


def _settings_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (flag > PHASEGATE_* env > pyproject > default)")
    for s in SETTINGS:
        if not s.has_flag or s.name in PYTEST_ONLY:
            continue
        help_text = s.option_help(default=True)
        if s.is_flag:
            group.add_argument(
                s.flag,
                dest=s.name,
                action="store_const",
                const="true",
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                s.flag, dest=s.name, metavar=s.metavar or None, default=None, help=help_text
            )
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _settings_parent()
    typed = argparse.ArgumentParser(add_help=False)
    typed.add_argument(
        "--type",
        action="append",
        choices=TYPE_IDS,
        dest="types",
        help="only this data type (repeatable; default all)",
    )
    parser = argparse.ArgumentParser(
        prog="phasegate",
        description="Gatekeeper for moving the /vibe app from Redis (KV) to Postgres, "
        "phase by phase. Gates run as pytest (pytest --phase=A); this command drives "
        "the stores and the demo.",
        epilog="Exit codes (the same under pytest): 0 pass, 1 gate failed, 2 usage or "
        "environment error (a store unreachable or refusing), 3 inconclusive (nothing to judge).",
    )
    parser.add_argument("--version", action="version", version=f"phasegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="seed scratch stores on the sandbox, apply the schema, print the inventory",
    )
    demo.set_defaults(run=_demo)

    seed = sub.add_parser(
        "seed",
        parents=[common],
        help="write /vibe-shaped data in every real variant into --kv-url",
    )
    seed.add_argument("--anchor", help="'now' of the data, ISO-8601 (default: this hour, UTC)")
    seed.add_argument("--flush", action="store_true", help="FLUSHDB the target first")
    seed.set_defaults(run=_seed)

    inventory = sub.add_parser(
        "inventory",
        parents=[common, typed],
        help="classify and decode every key of --kv-url (read only)",
    )
    inventory.add_argument(
        "--findings",
        type=int,
        default=10,
        metavar="N",
        help="show at most N findings per kind (default 10)",
    )
    inventory.set_defaults(run=_inventory)

    backfill = sub.add_parser(
        "backfill",
        parents=[common, typed],
        help="copy --kv-url into --pg-url through the mappings (idempotent, resumable)",
    )
    backfill.add_argument(
        "--restart",
        action="store_true",
        help="start a new run instead of resuming an unfinished one",
    )
    backfill.add_argument(
        "--batch-rows",
        type=int,
        default=50_000,
        metavar="N",
        help="rows per transaction and checkpoint (default 50000)",
    )
    backfill.set_defaults(run=_backfill)

    fk = sub.add_parser("fk", help="foreign keys to users(handle)")
    fk_sub = fk.add_subparsers(dest="action", required=True, metavar="ACTION")
    fk_add = fk_sub.add_parser(
        "add",
        parents=[common],
        help="list orphan handles; add the foreign keys (ON DELETE CASCADE) when there are none",
    )
    fk_add.add_argument(
        "--create-missing-handles",
        action="store_true",
        help="create stub users for orphaned system and agent accounts",
    )
    fk_add.set_defaults(run=_fk_add)

    schema_cmd = sub.add_parser("schema", help="the Postgres target schema")
    schema_sub = schema_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply_cmd = schema_sub.add_parser(
        "apply", parents=[common], help="create tables and indexes in --pg-url (idempotent)"
    )
    apply_cmd.set_defaults(run=_schema_apply)
    show = schema_sub.add_parser("show", help="print the DDL")
    show.set_defaults(run=lambda _a, _s: print(schema.schema_sql()) or EXIT_OK)

    cli_shapes.add_parsers(sub, common)
    cli_load.add_parsers(sub, common)
    cli_reconcile.add_parsers(sub, common, typed)
    cli_doctor.add_parsers(sub, common)
    cli_archive.add_parsers(sub, common)
    cli_guard.add_parsers(sub, common)
    cli_report.add_parsers(sub, common)

    servers = sub.add_parser(
        "servers",
        parents=[common],
        help="start the sandbox servers, print their URLs, keep them up until Ctrl-C",
    )
    servers.set_defaults(run=_servers)

    table = sub.add_parser("settings", parents=[common], help="show resolved settings")
    table.add_argument("--markdown", action="store_true", help="print the README table")
    table.set_defaults(run=_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
        settings = resolve(flags)
        if settings.buckets:
            raise UsageError(
                f"buckets={settings.buckets} (from {settings.sources.get('buckets', '?')}) is "
                "for the Phase A gate: pytest --phase=A --buckets i/N",
                hint="unset PHASEGATE_BUCKETS (or the pyproject key) for phasegate commands",
            )
        code: int = args.run(args, settings)
    except PhasegateError as exc:
        err.print(f"[bold red]phasegate: {redact_url(exc.message)}[/]")
        if exc.hint:
            err.print(f"  hint: {exc.hint}")
        return exc.exit_code
    except (psycopg.Error, redis.RedisError) as exc:
        # a store refused or failed mid-command: say which, without a traceback
        store = "Postgres" if isinstance(exc, psycopg.Error) else "Redis"
        err.print(f"[bold red]phasegate: {store} error: {redact_url(str(exc).strip())}[/]")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return code


def _require(value: str | None, flag: str, what: str) -> str:
    if not value:
        raise UsageError(f"{flag} is required: {what}", hint=f"pass {flag} URL or set the env var")
    return value


def _anchor_ms(text: str | None) -> int:
    if text is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        return int(now.timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--anchor {text!r} is not ISO-8601", hint="e.g. 2026-11-25T15:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.commands import seed_store

    url = _require(settings.kv_url, "--kv-url", "the Redis to write the fixture data into")
    client = connect_kv(url)
    seed_store(
        client,
        settings.scale,
        settings.seed,
        _anchor_ms(args.anchor),
        flush=args.flush,
        console=console,
        where=redact_url(url),
    )
    return EXIT_OK


def _inventory(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.commands import inventory_with_progress
    from phasegate.console import print_inventory

    url = _require(settings.kv_url, "--kv-url", "the Redis to read")
    inv = inventory_with_progress(connect_kv(url), args.types or TYPE_IDS, console)
    print_inventory(inv, console, per_kind=args.findings)
    return EXIT_OK


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.commands import backfill_with_progress
    from phasegate.parity.compare import Scope
    from phasegate.parity.postgres import AllowList

    kv_url = _require(settings.kv_url, "--kv-url", "the Redis to copy from")
    pg_url = _require(settings.pg_url, "--pg-url", "the Postgres to copy into")
    if args.batch_rows < 1:
        raise UsageError("--batch-rows must be at least 1")
    with connect_pg(pg_url) as pg:
        backfill_with_progress(
            connect_kv(kv_url),
            pg,
            args.types or TYPE_IDS,
            console,
            restart=args.restart,
            batch_rows=args.batch_rows,
            memo_dir=settings.memo_path(),
            # The memos carry the Phase A gate's counts: its next run decodes no equal bucket.
            memo_scope=Scope(
                settings.seed,
                settings.sample_rate,
                datetime.now(UTC),
                AllowList.load(settings.pg_only_allowlist),
            ),
        )
    return EXIT_OK


def _fk_add(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.console import print_fk_report
    from phasegate.fk import add_foreign_keys

    pg_url = _require(settings.pg_url, "--pg-url", "the Postgres to add foreign keys to")
    with connect_pg(pg_url) as pg:
        report = add_foreign_keys(pg, create_missing=args.create_missing_handles)
    print_fk_report(report, console)
    return EXIT_GATE_FAILED if report.blocked else EXIT_OK


def _schema_apply(_args: argparse.Namespace, settings: Settings) -> int:
    url = _require(settings.pg_url, "--pg-url", "the Postgres to create the schema in")
    with connect_pg(url) as conn:
        before = schema.catalog_snapshot(conn)
        schema.apply(conn)
        after = schema.catalog_snapshot(conn)
    changed = "no change (already applied)" if before == after else "tables and indexes created"
    console.print(f"schema applied to {redact_url(url)}: {changed}")
    return EXIT_OK


def _servers(_args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.servers import open_sandbox

    with open_sandbox(settings) as sandbox:
        console.print(f"postgres  {redact_url(sandbox.pg_url)}  ({sandbox.origin['pg']})")
        console.print(f"redis     {redact_url(sandbox.kv_url)}  ({sandbox.origin['kv']})")
        console.print("up until Ctrl-C; e.g. phasegate seed --kv-url <redis> --flush")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping")
    return EXIT_OK


def _settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(settings_table())
        return EXIT_OK
    for name, value, origin in settings.describe():
        console.print(f"{name:16} {value:40} [dim]{origin}[/]")
    return EXIT_OK


def _demo(_args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.commands import run_demo

    started = time.monotonic()
    code = run_demo(settings, console)
    console.print(f"[dim]demo finished in {time.monotonic() - started:.1f} s[/]")
    return code
