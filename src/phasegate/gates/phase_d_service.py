"""Phase D's ``kv-free-reads`` and ``kv-writes-stopped``: life without KV, asked of
the reference service.

The service with every type reading and writing Postgres answers each read
endpoint for real parameter sets (the catalog's samples) twice: once with KV
reachable, once with its KV URL on a dead port (nothing listens there). Every
answer must be a 200 both times with the same JSON: a read path that still
touches KV answers differently, or not at all, once KV is gone. Only reads are
sent, so the given stores stay as they were.

For ``kv-writes-stopped`` the service, every type writing Postgres only, takes
each data type's app writes (the Phase B workloads) on scratch stores, while
the Redis server reports every command it runs on a key (keyspace
notifications): any write event on any key, expiry aside, is a KV write that
should have stopped, named with its key and command.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from phasegate.burst import send
from phasegate.burst_workloads import read_url, workload
from phasegate.endpoints import ENDPOINT_TYPES, ENDPOINTS, WRITES
from phasegate.keyspace import key_text
from phasegate.kvwatch import KvWatch
from phasegate.load import params, runner
from phasegate.parity.postgres import PgConn
from phasegate.servers.process import free_port
from phasegate.show import shown

PER_ENDPOINT = 3  # parameter sets asked of each read endpoint
TIMEOUT_S = 10.0


@dataclass
class KvFree:
    """Per data type: requests answered, and what differed without KV."""

    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            return int(r.status), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:200]
    except OSError as exc:
        return 0, str(exc)


def kv_free_reads(
    kv_url: str,
    pg_url: str,
    pg: PgConn,
    folder: Path,
    *,
    defects: Sequence[str] = (),
    per_endpoint: int = PER_ENDPOINT,
) -> KvFree:
    """Every read endpoint with KV, then with KV gone; the differences per type."""
    sets = params.sample(pg, limit=per_endpoint)
    asks = [
        (name, p) for name in sorted(ENDPOINTS) if name in sets for p in sets[name][:per_endpoint]
    ]
    extra = [a for d in defects for a in ("--inject-defect", d)]
    extra += ["--journal", str(folder / "journal.jsonl")]
    folder.mkdir(parents=True, exist_ok=True)
    answers = []
    for kv in (kv_url, f"redis://127.0.0.1:{free_port()}/0"):  # the second: nothing listens
        with runner.service(kv, pg_url, read="pg", write="pg", extra=extra, folder=folder) as svc:
            answers.append([_get(read_url(svc.url, name, p)) for name, p in asks])
    out = KvFree()
    for (name, p), with_kv, without in zip(asks, *answers, strict=True):
        type_id = ENDPOINT_TYPES[name]
        out.requests[type_id] += 1
        asked = f"{name} {shown(p)}"
        if with_kv[0] != 200:
            out.problems[type_id].append(f"{asked}: HTTP {with_kv[0]} even with KV: {with_kv[1]}")
        elif without[0] != 200:
            out.problems[type_id].append(
                f"{asked}: HTTP {without[0]} once KV was gone (the path still reads KV): "
                f"{shown(without[1])}"
            )
        elif without[1] != with_kv[1]:
            out.problems[type_id].append(
                f"{asked}: answered differently once KV was gone: with KV {shown(with_kv[1])}, "
                f"without {shown(without[1])}"
            )
    return out


@dataclass
class KvWrites:
    """Per data type: writes acknowledged, refused, and the KV keys they changed."""

    acked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def kv_writes_stopped(
    kv_url: str,
    pg_url: str,
    kv: redis.Redis,
    pg: PgConn,
    folder: Path,
    *,
    seed: int,
    per_type: int = 5,
    extra: Sequence[str] = (),
) -> KvWrites:
    """Each writable type's writes, one type at a time, KV's write events read after each
    type (keyspace notifications, see :mod:`~phasegate.kvwatch`)."""
    folder.mkdir(parents=True, exist_ok=True)
    args = [*extra, "--journal", str(folder / "journal.jsonl")]
    out = KvWrites()
    types = sorted({op.type_id for op in WRITES.values()})
    with (
        runner.service(kv_url, pg_url, read="pg", write="pg", extra=args, folder=folder) as svc,
        KvWatch(kv) as watch,
    ):
        watch.mark()  # whatever the service did on its way up is not a type's write
        for type_id in types:
            for write in workload(type_id, pg, per_type, seed, windows=1).writes[:per_type]:
                status, _body, error = send(svc.url, write)
                if status is not None and status < 300:
                    out.acked[type_id] += 1
                else:
                    out.refused[type_id].append(f"{write.op}: {status} {error}")
            seen: dict[bytes, list[str]] = {}
            for e in watch.mark():
                seen.setdefault(e.key, [])
                if e.event not in seen[e.key]:
                    seen[e.key].append(e.event)
            for key, events in sorted(seen.items()):
                out.problems[type_id].append(f"{key_text(key)}: {', '.join(events)} in KV")
    return out
