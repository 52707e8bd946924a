"""CI: the Phase A gate against given servers, as a release engineer would run it.

Claims a scratch Redis DB and a scratch database on this machine's servers,
fills them with the CLI (seed, schema apply, backfill, fk add), then runs the
README's gate command against them as *given* targets, and removes both.
"""

from __future__ import annotations

import subprocess
import sys

from phasegate.servers import scratch_database, scratch_kv

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
KV = "redis://127.0.0.1:6379/0"


def run(*argv: str) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def main() -> int:
    with scratch_kv(KV) as kv, scratch_database(PG, prefix="phasegate_ci") as pg:
        run("phasegate", "seed", "--kv-url", kv, "--scale", "now")
        run("phasegate", "schema", "apply", "--pg-url", pg)
        run("phasegate", "backfill", "--kv-url", kv, "--pg-url", pg)
        run("phasegate", "fk", "add", "--pg-url", pg, "--create-missing-handles")
        gate = ["pytest", "parity", "--phase=A", "--full", "--kv-url", kv, "--pg-url", pg]
        print("+", " ".join(gate), flush=True)
        return subprocess.run(gate, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
