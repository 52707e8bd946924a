"""CI: the Phase A, C and D gates against given servers, as a release engineer
would run them.

Claims a scratch Redis DB and a scratch database on this machine's servers,
fills them with the CLI at the 6mo scale (seed, schema apply, backfill, fk add,
then ANALYZE), runs the README's gate commands against them as *given* targets
(they only read), and removes both. Phase D (archive, verify, restore, the
gate) runs on a second pair at the ``now`` scale, to keep CI short: at 6mo the
gate alone takes about 50 s (the README's benchmark table).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

import psycopg

from phasegate.servers import scratch_database, scratch_kv

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
KV = "redis://127.0.0.1:6379/0"


def run(*argv: str) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def main() -> int:
    with scratch_kv(KV) as kv, scratch_database(PG, prefix="phasegate_ci") as pg:
        run("phasegate", "seed", "--kv-url", kv, "--scale", "6mo")
        run("phasegate", "schema", "apply", "--pg-url", pg)
        run("phasegate", "backfill", "--kv-url", kv, "--pg-url", pg)
        run("phasegate", "fk", "add", "--pg-url", pg, "--create-missing-handles")
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute("ANALYZE")  # part of loading, as after any bulk load
        codes = []
        for gate in (
            ["phasegate", "doctor", "--kv-url", kv, "--pg-url", pg],
            ["pytest", "--phase=A", "--kv-url", kv, "--pg-url", pg],  # the README's, as written
            ["pytest", "parity", "--phase=A", "--full", "--kv-url", kv, "--pg-url", pg],
            ["pytest", "query_shapes", "--phase=C", "--kv-url", kv, "--pg-url", pg],
            ["pytest", "load", "--phase=C", "--kv-url", kv, "--pg-url", pg, "--load-run-time=20s"],
            ["phasegate", "shapes", "plans", "--pg-url", pg],
        ):
            print("+", " ".join(gate), flush=True)
            codes.append(subprocess.run(gate, check=False).returncode)
    codes.append(phase_d())
    return max(codes)


def phase_d() -> int:
    """The README's Phase D commands, as written, on a `now` pair of given stores."""
    with (
        scratch_kv(KV) as kv,
        scratch_kv(KV) as empty,
        scratch_database(PG, prefix="phasegate_ci") as pg,
        tempfile.TemporaryDirectory() as folder,
    ):
        run("phasegate", "seed", "--kv-url", kv)
        run("phasegate", "schema", "apply", "--pg-url", pg)
        run("phasegate", "backfill", "--kv-url", kv, "--pg-url", pg)
        run("phasegate", "fk", "add", "--pg-url", pg, "--create-missing-handles")
        out = f"{folder}/archive/"
        codes = []
        for gate in (
            ["phasegate", "archive", "--kv-url", kv, "--out", out],
            ["phasegate", "archive", "verify", out],
            ["phasegate", "restore", out, "--kv-url", empty],
            ["pytest", "--phase=D", "--kv-url", kv, "--pg-url", pg, f"--archive={out}"],
        ):
            print("+", " ".join(gate), flush=True)
            codes.append(subprocess.run(gate, check=False).returncode)
        return max(codes)


if __name__ == "__main__":
    sys.exit(main())
