"""``phasegate doctor``: what the gate needs of each store and what its users have."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from rich.console import Console

from phasegate import doctor
from phasegate.console import print_doctor_checks
from phasegate.errors import EXIT_OK, EXIT_USAGE, UsageError
from phasegate.settings import Settings, redact_url

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    cmd = sub.add_parser(
        "doctor",
        parents=[common],
        help="check what the gate needs of --kv-url and --pg-url (Redis commands, Postgres "
        "privileges) against what their users may do; print least-privilege ACL and GRANT lines",
        description="Tries every Redis command the gate sends and asks Postgres for every "
        "privilege the gate and the backfill need. Only reads. Exit 0 when the gate can run, "
        "2 when a store refuses something it needs.",
    )
    cmd.set_defaults(run=_doctor)


def _doctor(_args: argparse.Namespace, settings: Settings) -> int:
    if not (settings.kv_url or settings.pg_url):
        raise UsageError(
            "give --kv-url and/or --pg-url: the stores whose users to check",
            hint="phasegate doctor --kv-url redis://USER:PW@HOST:6379/0 --pg-url postgresql://...",
        )
    checks: list[doctor.Check] = []
    if settings.kv_url:
        kv = doctor.kv_checks(settings.kv_url, settings.store_timeout)
        checks += kv
        user, where = doctor.kv_identity(settings.kv_url)
        print_doctor_checks(console, f"Redis {where} as user {user}", kv)
        console.print("Least privilege for the gate and the backfill (Redis 7+ / Valkey):")
        for line in doctor.acl_lines():
            console.print(f"  {line}", markup=False)
    if settings.pg_url:
        pg = doctor.pg_checks(settings.pg_url, settings.store_timeout)
        checks += pg
        print_doctor_checks(console, f"Postgres {redact_url(settings.pg_url)}", pg)
        database = urlsplit(settings.pg_url).path.strip("/") or "DATABASE"
        console.print("Least privilege (run as the tables' owner):")
        for line in doctor.grant_lines(database):
            console.print(f"  {line}", markup=False)
    refused = list(doctor.summary(checks))
    if refused:
        console.print("[bold red]the gate cannot run as these users:[/]")
        for line in refused:
            console.print(f"  - {line}", markup=False)
        return EXIT_USAGE
    console.print("[bold green]the gate can run as these users[/] (it only reads)")
    return EXIT_OK
