"""``phasegate archive`` (take, verify) and ``phasegate restore``: Phase D's KV archive
(:mod:`phasegate.archive`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from phasegate import archive
from phasegate.console import progress_bars
from phasegate.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from phasegate.settings import Settings, redact_url
from phasegate.stores import connect_kv

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    take = sub.add_parser(
        "archive",
        parents=[common],
        help="archive every KV key (or `archive verify DIR`)",
        description="`phasegate archive --kv-url URL --out DIR` reads every key of the store "
        "(SCAN and typed reads; read only) into DIR/keys.jsonl.gz, binary-safe, expiries as "
        "absolute times, with DIR/manifest.json: per Redis type the key count, the SHA-256 "
        "of the archive, when it was taken and when it may be deleted "
        "(--archive-retention-days). `phasegate archive verify DIR` checks an archive "
        "against its manifest and every key's digest (exit 1 when it does not hold).",
    )
    take.add_argument("action", nargs="*", metavar="verify DIR", help="verify an archive")
    take.add_argument("--out", type=Path, metavar="DIR", help="the folder to write (new)")
    take.set_defaults(run=_archive)
    restore = sub.add_parser(
        "restore",
        parents=[common],
        help="restore an archive into an empty Redis DB (--kv-url)",
        description="Write every key of the archive into --kv-url, which must be an empty "
        "DB (a non-empty one is refused), expiries kept; keys whose expiry passed since "
        "the archive was taken are not written.",
    )
    restore.add_argument("folder", type=Path, metavar="DIR")
    restore.set_defaults(run=_restore)


def _archive(args: argparse.Namespace, settings: Settings) -> int:
    if args.action:
        if len(args.action) != 2 or args.action[0] != "verify":
            raise UsageError(
                f"unknown archive action {' '.join(args.action)!r}",
                hint="`phasegate archive --kv-url URL --out DIR` or `phasegate archive verify DIR`",
            )
        return _verify(Path(args.action[1]))
    if not settings.kv_url or args.out is None:
        raise UsageError(
            "archive needs --kv-url (the store) and --out (a new folder)",
            hint="phasegate archive --kv-url redis://... --out archive/",
        )
    client = connect_kv(settings.kv_url, timeout_s=settings.store_timeout)
    started = time.monotonic()
    with progress_bars(console) as progress:
        task = progress.add_task("archiving keys", total=None, rate="")

        def on_keys(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=done, total=total, rate=f"{rate:,.0f} keys/s")

        manifest = archive.take(
            client,
            args.out,
            source=redact_url(settings.kv_url),
            retention_days=settings.archive_retention_days,
            progress=on_keys,
        )
    size = (args.out / archive.KEYS_FILE).stat().st_size
    types = ", ".join(f"{n:,} {t}" for t, n in manifest.types.items())
    types = ", ".join(f"{n:,} {t}" for t, n in manifest.types.items())
    console.print(
        f"archived {manifest.keys:,} keys ({types}) "
        f"into {args.out} in {time.monotonic() - started:.1f} s: {size:,} bytes compressed; "
        f"sha256 {manifest.sha256[:16]}...; may be deleted after {manifest.delete_after}"
    )
    return EXIT_OK


def _verify(folder: Path) -> int:
    with console.status(f"verifying {folder}"):
        result = archive.verify(folder)
    for problem in result.problems[:20]:
        console.print(f"[red]{problem}[/]", markup=True)
    if len(result.problems) > 20:
        console.print(f"... and {len(result.problems) - 20} more")
    if result.ok:
        console.print(f"[green]PASS[/] {folder}: {result.keys:,} keys match the manifest")
        return EXIT_OK
    console.print(f"[bold red]FAIL[/] {folder}: {len(result.problems)} problems")
    return EXIT_GATE_FAILED


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kv_url:
        raise UsageError("restore needs --kv-url (an empty Redis DB)")
    client = connect_kv(settings.kv_url, timeout_s=settings.store_timeout)
    archive.refuse_non_empty(client)
    started = time.monotonic()
    with progress_bars(console) as progress:
        task = progress.add_task("restoring keys", total=None, rate="")
        written = archive.restore(
            args.folder,
            client,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"restored {written:,} keys into {redact_url(settings.kv_url)} in "
        f"{time.monotonic() - started:.1f} s"
    )
    return EXIT_OK
