"""``phasegate shapes check`` and ``phasegate shapes plans``: the query-shape commands."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from phasegate.console import print_plans, print_shape_findings
from phasegate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK
from phasegate.plans import MODES, PLAN_SCALE, check_plan
from phasegate.queries import Query, load_catalog
from phasegate.settings import Settings, redact_url
from phasegate.shapes import (
    NOTICES,
    SchemaModel,
    Statement,
    check_all,
    check_schema,
    from_catalog,
)
from phasegate.shapes.extract import extract
from phasegate.stores import connect_pg

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    shapes = sub.add_parser("shapes", help="query shapes: sqlglot checks and EXPLAIN plans")
    actions = shapes.add_subparsers(dest="action", required=True, metavar="ACTION")
    queries = argparse.ArgumentParser(add_help=False)
    queries.add_argument(
        "--queries",
        type=Path,
        metavar="DIR",
        help="a query catalog folder of headed .sql files (default: phasegate's catalog)",
    )
    check = actions.add_parser(
        "check",
        parents=[common, queries],
        help="static checks of the catalog and/or an app's SQL against the schema's indexes",
        description="Parse every query with Postgres's own grammar and check that an index "
        "serves it: WHERE equalities and ORDER BY against index keys (structurally, so "
        "LEAST(a,b) is not LEAST(b,a)), unknown tables and columns, OR-of-swapped-pairs, "
        "IN-pairs, = ANY(array) where a GIN index exists; app queries on a catalogued read "
        "path order and limit as it does; INSERTs into migrated tables are upserts; DDL "
        "runs twice and builds indexes CONCURRENTLY; every foreign key has an index. "
        "Indexes come from --schema FILE, else --pg-url's catalog, else phasegate's schema "
        "(matched by keys and predicate, not name). Exit 1 when anything is found.",
    )
    check.add_argument(
        "--app-src",
        type=Path,
        metavar="DIR",
        help="also check SQL found in an app's source: .sql files; JS/TS sql`...` "
        "templates and query()/pool.query()/client.query()/sql()/sql.unsafe() calls "
        "(templates, strings, + of constants); Python execute()/fetch*() (psycopg, "
        "asyncpg) and SQLAlchemy text(); every parameter form becomes $n",
    )
    check.set_defaults(run=_check)
    plans = actions.add_parser(
        "plans",
        parents=[common, queries],
        help="EXPLAIN ANALYZE every catalogued query (custom and generic plans)",
        description="Judge each catalogued query's plan: the expected index is used with "
        "every key expression in its Index Cond, and no Seq Scan reads a table above "
        "--seqscan-rows. Against --pg-url (read only; load and ANALYZE it first), or by "
        f"default a sandbox database loaded at the {PLAN_SCALE} scale.",
    )
    plans.set_defaults(run=_plans)


def _catalog(args: argparse.Namespace) -> list[Query]:
    return list(load_catalog(args.queries).values())


def _check(args: argparse.Namespace, settings: Settings) -> int:
    statements: list[Statement] = []
    if args.queries or not args.app_src:
        statements += from_catalog(_catalog(args))
    if args.app_src:
        found = extract(args.app_src)
        statements += found.statements
        console.print(f"{args.app_src}: {found.summary()}", markup=False)
        for unread in found.unread:
            console.print(f"[yellow]{escape(str(unread))}[/]")
    schema = SchemaModel.for_target(settings.schema, settings.pg_url)
    for note in schema.skipped:
        console.print(f"[dim]{note}[/]")
    findings = check_all(statements, schema) + check_schema(schema)
    print_shape_findings(statements, findings, schema, console)
    if any(f.rule not in NOTICES for f in findings):
        return EXIT_GATE_FAILED
    return EXIT_OK if statements else EXIT_INCONCLUSIVE  # no SQL found proves nothing


def _plans(args: argparse.Namespace, settings: Settings) -> int:
    from phasegate.commands import load_sandbox

    catalog = _catalog(args)
    with ExitStack() as stack:
        if settings.pg_url:
            conn = stack.enter_context(connect_pg(settings.pg_url))
            conn.read_only = True
            where = redact_url(settings.pg_url)
        else:
            conn = stack.enter_context(load_sandbox(settings, PLAN_SCALE, console)).pg
            where = f"sandbox, {PLAN_SCALE} scale"
        schema = SchemaModel.resolve(settings.schema, conn)
        checks = [
            check_plan(conn, q, schema, mode, settings.seqscan_rows)
            for q in catalog
            for mode in MODES
        ]
    print_plans(checks, console, where)
    return EXIT_OK if all(c.passed for c in checks) else EXIT_GATE_FAILED
