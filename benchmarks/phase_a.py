"""Phase A benchmarks, each beside its raw floor, measured in one run on the same servers.

    python benchmarks/phase_a.py --kv-url redis://127.0.0.1:6379/9 \\
        --pg-url postgresql://postgres@127.0.0.1:5432/postgres [--scale 12mo]

Seeds the KV (unless it already holds data; ``--flush`` empties it first, and
several scales, comma-separated, each seed their own), then in fresh databases:
backfill vs a plain COPY of the same rows into the same indexed tables; a
no-op re-run (time and WAL), a re-run after 100 KV messages were edited and
one after they were put back; the full parity pass vs reading the same data as
bytes (typed SCAN + MGET/Lua from Redis, binary COPY TO STDOUT from Postgres);
the full parity pass again after 100 message rows were changed in Postgres.
Each step runs in its own child process so its peak memory is its own.
Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from phasegate import schema
from phasegate.backfill import backfill
from phasegate.keyspace import Reader, read_untyped, scan_keys
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.parity import forks
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList
from phasegate.seed.generator import generate
from phasegate.stores import connect_kv, connect_pg, with_database


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would carry the parent's peak
    at fork across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _wal(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return str(row[0]) if row else "0/0"


def _wal_bytes(conn: psycopg.Connection[Any], start: str, end: str) -> int:
    row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (end, start)).fetchone()
    return int(float(str(row[0]))) if row else 0


def _workers_peak_mb() -> float:
    """The largest reader's or worker's peak RSS: they are the fork server's children
    (it waited for them), so it counts once this step has waited for the server."""
    forks.close_all()
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def step_backfill(kv_url: str, pg_url: str) -> dict[str, Any]:
    kv = connect_kv(kv_url)
    with connect_pg(pg_url) as pg:
        start_lsn = _wal(pg)
        started = time.perf_counter()
        scope = Scope(7, 10.0, datetime.now(UTC), AllowList())  # the parity step's
        result = backfill(kv, pg, memo_dir=_MEMO.get("dir"), memo_scope=scope)
        seconds = time.perf_counter() - started
        wal = _wal_bytes(pg, start_lsn, _wal(pg))
    rows = sum(r.rows for r in result.types.values())
    return {
        "seconds": seconds,
        "rows": rows,
        "changed": result.changed,
        "updated": sum(r.updated for r in result.types.values()),
        "skipped": sum(r.skipped_rows for r in result.types.values()),
        "wal_bytes": wal,
        "peak_mb": _peak_mb(),
        "workers_peak_mb": _workers_peak_mb(),
    }


def step_copy_floor(source_url: str, pg_url: str) -> dict[str, Any]:
    """Plain COPY of the same rows into the same indexed tables: the rows the backfill
    wrote (in ``source_url``), first dumped to files as binary COPY (not timed), then
    loaded (timed). Memory stays a buffer at any scale."""
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        dumps: list[tuple[sql.Composed, Path]] = []
        with connect_pg(source_url) as source, source.cursor() as out:
            for type_id in TYPE_IDS:
                mapping = MAPPINGS[type_id]
                cols = sql.SQL(", ").join(map(sql.Identifier, mapping.column_names))
                table = sql.Identifier(mapping.table)
                path = Path(tmp) / f"{type_id}.copy"
                outof = sql.SQL("COPY {} ({}) TO STDOUT (FORMAT binary)").format(table, cols)
                with out.copy(outof) as reading, path.open("wb") as fh:
                    for chunk in reading:
                        fh.write(chunk)
                into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table, cols)
                dumps.append((into, path))
        with connect_pg(pg_url) as pg:
            started = time.perf_counter()
            with pg.transaction(), pg.cursor() as cur:
                for into, path in dumps:
                    with cur.copy(into) as writing, path.open("rb") as fh:
                        while chunk := fh.read(1 << 20):
                            writing.write(chunk)
                    rows += max(cur.rowcount, 0)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_mb": _peak_mb()}


def step_parity(kv_url: str, pg_url: str) -> dict[str, Any]:
    """The comparison pass as the gate runs it: bucketed, two worker processes."""
    started = time.perf_counter()
    with connect_pg(pg_url) as pg:
        pg.read_only = True
        scope = Scope(7, 10.0, datetime.now(UTC), AllowList())
        results = compare(connect_kv(kv_url), pg, TYPE_IDS, scope, memo_dir=_MEMO.get("dir")).types
    seconds = time.perf_counter() - started
    compared = sum(r.compared["full"] for r in results.values())
    failed = [e for r in results.values() for e in r.differences["full"].examples]
    differences = sum(r.differences["full"].count for r in results.values())
    workers_mb = _workers_peak_mb()
    return {
        "seconds": seconds,
        "records": compared,
        "failed": failed,
        "differences": differences,
        "buckets": sum(r.digest_buckets for r in results.values()),
        "fetched": sum(r.fetched_buckets for r in results.values()),
        "peak_mb": _peak_mb(),
        "workers_peak_mb": workers_mb,
    }


def _value_bytes(value: object) -> int:
    """The bytes of a raw value, counted without copying it (the floor's only work on
    what it read: a repr of every value cost the floor seconds of Python)."""
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(map(len, value)) + sum(map(len, value.values()))
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return sum(len(member) + 8 for member, _score in value)  # a sorted set
    assert isinstance(value, list | set), type(value)
    return sum(map(len, value))


def step_read_floor(kv_url: str, pg_url: str) -> dict[str, Any]:
    """Read the same data as bytes: every key's value from Redis, every table from PG."""
    started = time.perf_counter()
    kv_bytes = 0
    kv = connect_kv(kv_url)
    reader = Reader(kv)
    for keys in scan_keys(kv):  # the pass's own read: plain SCAN, TYPEs and values per batch
        for entry in read_untyped(reader, keys, lambda key, rtype: True):
            kv_bytes += _value_bytes(entry.value)
    pg_bytes = 0
    with connect_pg(pg_url) as pg, pg.cursor() as cur:
        for mapping in MAPPINGS.values():
            query = sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(
                sql.Identifier(mapping.table)
            )
            with cur.copy(query) as copy:
                for chunk in copy:
                    pg_bytes += len(chunk)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "kv_bytes": kv_bytes, "pg_bytes": pg_bytes, "peak_mb": _peak_mb()}


def step_seed(kv_url: str, scale: str) -> dict[str, Any]:
    """Seed in a child too, so the parent never holds the keyspace."""
    anchor = int(time.time() * 1000) // 3_600_000 * 3_600_000
    started = time.perf_counter()
    generate(scale, 7, anchor).write(connect_kv(kv_url))
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


STEPS = {
    "backfill": step_backfill,
    "copy-floor": step_copy_floor,
    "parity": step_parity,
    "read-floor": step_read_floor,
}


_MEMO: dict[str, Path] = {}  # "dir": the decode memos of this benchmark run (--memo-dir)


def child(step: str, kv_url: str, pg_url: str) -> dict[str, Any]:
    """One step in a process of its own (for "seed", ``pg_url`` is the scale; for
    "copy-floor", ``kv_url`` is the database the backfill loaded)."""
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, "--kv-url", kv_url, "--pg-url", pg_url]
        + (["--memo-dir", str(_MEMO["dir"])] if "dir" in _MEMO else []),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:  # the step's own traceback, not only its exit status
        sys.exit(f"benchmark step {step} failed (exit {done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    with connect_pg(url) as conn:
        schema.apply(conn)
    return url


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _change_messages(pg_url: str, rows: int) -> None:
    with connect_pg(pg_url) as pg:
        pg.execute(
            "UPDATE messages SET text = coalesce(text, '') || ' (changed)' "
            "WHERE id IN (SELECT id FROM messages ORDER BY md5(id) LIMIT %s)",
            (rows,),
        )
        pg.commit()


def _change_kv_messages(kv_url: str, records: int) -> dict[bytes, bytes]:
    """Edit the text of ``records`` JSON messages in KV; returns their old values."""
    kv = connect_kv(kv_url)
    old: dict[bytes, bytes] = {}
    for key in kv.scan_iter(match="msg:*", count=1000, _type="string"):
        value = kv.get(key)
        if isinstance(value, bytes) and value.count(b'"text":"') == 1:
            old[key] = value
            kv.set(key, value.replace(b'"text":"', b'"text":"(changed) '))
            if len(old) == records:
                break
    return old


def bench(args: argparse.Namespace, scale: str) -> dict[str, Any]:
    kv = connect_kv(args.kv_url)
    if args.flush:
        kv.flushdb()
    seeded: dict[str, Any] | None = None
    if not kv.dbsize():
        seeded = child("seed", args.kv_url, scale)
    load_db = fresh_database(args.pg_url, "phasegate_bench_load")
    floor_db = fresh_database(args.pg_url, "phasegate_bench_floor")
    try:
        first = child("backfill", args.kv_url, load_db)
        floor = child("copy-floor", load_db, floor_db)  # the rows the backfill wrote
        again = child("backfill", args.kv_url, load_db)
        edited = _change_kv_messages(args.kv_url, 100)
        try:
            repair = child("backfill", args.kv_url, load_db)
        finally:
            kv.mset(edited)
        repair_back = child("backfill", args.kv_url, load_db)
        cold = child("parity", args.kv_url, load_db)  # its memos are the backfill's
        parity = child("parity", args.kv_url, load_db)
        read = child("read-floor", args.kv_url, load_db)
        _change_messages(load_db, 100)
        changed = child("parity", args.kv_url, load_db)
    finally:
        drop_database(args.pg_url, "phasegate_bench_load")
        drop_database(args.pg_url, "phasegate_bench_floor")
    rows = first["rows"]
    keys = kv.dbsize()
    print(
        f"Phase A benchmark, scale {scale} ({keys:,} keys, {rows:,} rows); "
        f"{platform.node()}, {datetime.now(UTC):%Y-%m-%d}\n"
    )
    if seeded is not None:
        print(f"seeded in {seeded['seconds']:.1f} s, {seeded['peak_mb']:.0f} MB peak\n")
    print("| step | time | rate | peak memory | floor | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| backfill, fresh | {first['seconds']:.1f} s | {rows / first['seconds']:,.0f} rows/s | "
        f"{first['peak_mb']:.0f} MB (workers {first['workers_peak_mb']:.0f} MB) | "
        f"COPY of the same rows {floor['seconds']:.1f} s | "
        f"{first['seconds'] / floor['seconds']:.1f}x | within 2x, < 300 MB |"
    )
    for name, run in (
        ("no-op re-run", again),
        (f"re-run, {len(edited)} KV records changed", repair),
        ("re-run, changed back", repair_back),
    ):
        print(
            f"| {name} | {run['seconds']:.1f} s | {run['updated']} rows updated, "
            f"{run['skipped']:,} skipped by digest | {run['peak_mb']:.0f} MB (workers "
            f"{run['workers_peak_mb']:.0f} MB) | WAL {run['wal_bytes'] / 1e6:.2f} MB (first run "
            f"{first['wal_bytes'] / 1e6:.0f} MB) | {run['seconds'] / first['seconds']:.2f}x "
            "of the first | < 0.3x, ~0 WAL |"
        )
    print(
        f"| full parity, first after the backfill | {cold['seconds']:.1f} s | "
        f"{cold['records'] / cold['seconds']:,.0f} records/s | {cold['peak_mb']:.0f} MB "
        f"(workers {cold['workers_peak_mb']:.0f} MB) | bytes read {read['seconds']:.1f} s | "
        f"{cold['seconds'] / read['seconds']:.2f}x | |"
    )
    print(
        f"| full parity | {parity['seconds']:.1f} s | {parity['records'] / parity['seconds']:,.0f} "
        f"records/s, {parity['fetched']} of {parity['buckets']:,} buckets fetched | "
        f"{parity['peak_mb']:.0f} MB (workers {parity['workers_peak_mb']:.0f} MB) | "
        f"bytes read {read['seconds']:.1f} s | "
        f"{parity['seconds'] / read['seconds']:.2f}x | within 1.5x, < 300 MB |"
    )
    print(
        f"| full parity, 100 rows changed | {changed['seconds']:.1f} s | "
        f"{changed['differences']} differences, {changed['fetched']} of {changed['buckets']:,} "
        f"buckets fetched | {changed['peak_mb']:.0f} MB (workers "
        f"{changed['workers_peak_mb']:.0f} MB) | the equal pass {parity['seconds']:.1f} s | "
        f"{changed['seconds'] / parity['seconds']:.2f}x | about 1x |\n"
    )
    if parity["failed"]:
        print("\nparity differences:", *parity["failed"], sep="\n")
    return {"scale": scale, "keys": keys, "rows": rows, "backfill": first, "parity": parity}


def print_growth(runs: list[dict[str, Any]]) -> None:
    """Time, rate and peak memory per scale, side by side: linear time, flat memory."""
    print(
        "| scale | keys | rows | backfill | rows/s | peak (parent, workers) "
        "| parity | records/s | peak (parent, workers) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        b, p = run["backfill"], run["parity"]
        print(
            f"| {run['scale']} | {run['keys']:,} | {run['rows']:,} | {b['seconds']:.1f} s | "
            f"{run['rows'] / b['seconds']:,.0f} | "
            f"{b['peak_mb']:.0f}, {b['workers_peak_mb']:.0f} MB | {p['seconds']:.1f} s | "
            f"{p['records'] / p['seconds']:,.0f} | "
            f"{p['peak_mb']:.0f}, {p['workers_peak_mb']:.0f} MB |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kv-url", required=True)
    parser.add_argument("--pg-url", required=True, help="admin URL; bench databases are made")
    parser.add_argument("--scale", default="12mo", help="one scale or several: now,6mo,12mo,10x")
    parser.add_argument("--flush", action="store_true", help="empty the KV DB before seeding")
    parser.add_argument("--step", choices=[*STEPS, "seed"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--memo-dir", type=Path, help="decode memos (default: a fresh folder per run)"
    )
    args = parser.parse_args()
    if args.step == "seed":
        print(json.dumps(step_seed(args.kv_url, args.pg_url)))
        return
    if args.step:
        if args.memo_dir is not None:
            _MEMO["dir"] = args.memo_dir
        print(json.dumps(STEPS[args.step](args.kv_url, args.pg_url)))
        return
    memos = tempfile.TemporaryDirectory(prefix="phasegate-bench-memo-")
    _MEMO["dir"] = args.memo_dir or Path(memos.name)
    scales = args.scale.split(",")
    if len(scales) > 1 and not args.flush:
        parser.error("several scales need --flush (each seeds the KV DB afresh)")
    with memos:
        runs = [bench(args, scale) for scale in scales]
    if len(runs) > 1:
        print_growth(runs)


if __name__ == "__main__":
    main()
