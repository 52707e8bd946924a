"""Phase B at volume: a long dual-write burst with every fault kind, then reconcile.

    python benchmarks/phase_b_burst.py [--writes 10000] [--scale 6mo] [--threads 8]

Starts a durable embedded Postgres and Valkey (the faults stop and kill them),
loads the scale's fixture (seed, backfill, foreign keys), serves the reference
service in dual mode with shadow reads, and sends ``--writes`` app writes
spread over every data type that has writes, one window per fault kind (each
fault held 1.5 s, the rest of the window healthy). Then: the journal, the read
paths compared before reconcile, ``reconcile`` (timed), the read paths and the
full comparison after, a second reconcile (must repair nothing). Prints the
numbers and a Markdown row for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from phasegate import burst, burst_workloads
from phasegate.gates import phase_b
from phasegate.reconcile import reconcile
from phasegate.stores import connect_kv

TYPES = phase_b.TYPES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--scale", default="6mo")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-b-") as folder:
        t = time.monotonic()
        with burst.open_rig(Path(folder), seed=args.seed, scale=args.scale) as rig:
            print(f"rig up ({args.scale}) in {time.monotonic() - t:.1f} s", flush=True)
            windows: list[list[burst.Write]] = [[] for _ in burst.FAULTS]
            reads: list[tuple[str, dict[str, object]]] = []
            per_type = args.writes // len(TYPES)
            with rig.conn() as pg:
                for type_id in TYPES:
                    work = burst_workloads.workload(type_id, pg, per_type, args.seed)
                    for i, part in enumerate(work.windows):
                        windows[i].extend(part)
                    reads += work.reads
            total = sum(map(len, windows))
            t = time.monotonic()

            def window(kind: str, done: list[burst.Outcome]) -> None:
                print(
                    f"  {kind:13} {len(done):5} writes, {sum(o.acked for o in done):5} acked, "
                    f"journal {len(list(rig.journal.entries())):6}  ({time.monotonic() - t:.0f} s)",
                    flush=True,
                )

            outcomes = burst.run(rig, windows, on_window=window, threads=args.threads)
            burst_s = time.monotonic() - t
            status = rig.status()
            entries = list(rig.journal.entries())
            sides = Counter(e.failed for e in entries)
            pending = len(rig.journal.pending())
            before, n = asyncio.run(phase_b.read_paths(rig.pg_url, rig.kv_url, reads))
            kv = connect_kv(rig.kv_url)
            with rig.conn() as pg:
                first = reconcile(kv, pg, rig.journal)
                second = reconcile(kv, pg, rig.journal)
            kv.close()
            after, _ = asyncio.run(phase_b.read_paths(rig.pg_url, rig.kv_url, reads))
    acked = sum(o.acked for o in outcomes)
    print()
    print(
        f"machine: {platform.machine()}, {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"
    )
    rate = total / burst_s
    print(f"writes sent {total:,}, acknowledged {acked:,} in {burst_s:.0f} s ({rate:.0f}/s)")
    print(
        f"journaled {len(entries):,} ({sides['pg']:,} Postgres missed, {sides['kv']:,} KV missed); "
        f"{pending:,} pending when the burst ended (the rest replayed by the writer itself)"
    )
    print(f"write-failure alert: {status['writes']['alert']}")
    share = 100 * len(before) / n
    print(f"read paths differing before reconcile: {len(before)} of {n} ({share:.2f}%)")
    print(f"reconcile: {first.verdict()} in {first.seconds:.1f} s")
    print(
        f"  differences found by its comparison: {sum(first.differences_before.values())}, "
        f"after: {sum(first.differences_after.values())}"
    )
    print(f"read paths differing after reconcile: {len(after)} of {n}")
    print(f"second reconcile: {second.verdict()} in {second.seconds:.1f} s")
    print(f"total {time.monotonic() - started:.0f} s")
    print()
    print(
        f"| {args.scale} | {total:,} | {acked:,} | {len(entries):,} "
        f"({sides['pg']:,} / {sides['kv']:,}) | {pending:,} | {share:.2f}% | "
        f"{first.seconds:.1f} s | {100 * len(after) / n:.2f}% | {second.verdict()} |"
    )


if __name__ == "__main__":
    main()
