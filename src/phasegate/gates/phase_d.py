"""The Phase D gate: can KV be deprecated? Its archive is whole, restores, and is kept.

Checks per data type (row ``keyspace`` for KV-only and unmapped keys; the
retention check on row ``archive``):

- ``archive-complete``: every key the live store holds is in the archive, of the
  same Redis type, its archived value's digest (recomputed, never trusted from
  the file) equal to the live value's, and its expiry kept (within the restore
  tolerance). A short-lived KV-only key (a rate limit) made after the archive
  was taken is noted, not a failure.
- ``restore-drill``: the archive restored into an empty scratch Redis of the
  sandbox holds every archived key, type, value and expiry (within
  ``restore_ttl_tolerance``), and the Phase A comparison (counts and every
  record) of the restored KV against Postgres passes.
- ``kv-free-reads``: the reference service, every type reading and writing
  Postgres, answers each read endpoint the same once KV is unreachable
  (:mod:`~phasegate.gates.phase_d_service`).
- ``kv-writes-stopped``: after the 7-day window, with every type writing
  Postgres only, the service's app writes change no KV key (measured on the
  Redis server: its keyspace notifications name every command run on a key), on
  scratch stores of the sandbox made from the archive (restored, then backfilled).
- ``retention``: the archive may be deleted no sooner than
  ``archive_retention_days`` (30) after it was taken, and it verifies against
  its manifest.

The live store and Postgres are only read. Memory: a batch of keys at a time,
and 8 bytes per archived key (its hash) to find live keys the archive lacks.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import redis

from phasegate import archive, schema
from phasegate.archive import Entry
from phasegate.backfill import backfill
from phasegate.endpoints import ENDPOINT_TYPES, WRITES
from phasegate.errors import UsageError
from phasegate.gates.phase_a import PhaseA
from phasegate.gates.phase_d_service import KvFree, KvWrites, kv_free_reads, kv_writes_stopped
from phasegate.gates.registry import PHASE_CHECKS
from phasegate.gates.result import CheckResult, verdict
from phasegate.keyspace import scan_keys
from phasegate.mappings import MAPPINGS, classify
from phasegate.parity.postgres import PgConn
from phasegate.stores import connect_kv, connect_pg

PHASE = "D"
CHECKS = PHASE_CHECKS["D"]
T = TypeVar("T")
KEYSPACE = "keyspace"  # the row of keys no mapping owns
ARCHIVE = "archive"  # the row of the retention check


def _keys_of(type_id: str) -> str:
    """The type whose keys hold ``type_id``'s records (achievements ride in streaks)."""
    mapping = MAPPINGS.get(type_id)
    return mapping.carried_by or type_id if mapping else type_id


def row_of(entry: Entry) -> str:
    """The report row of a key: its data type, or ``keyspace``."""
    found = classify(entry.name, entry.rtype)
    return found.type_id if found.kind in ("mapped", "wrong_type") and found.type_id else KEYSPACE


def _expiry_problem(
    name: str, kept: int | None, expected: int | None, tolerance_ms: float, what: str
) -> str | None:
    if expected is None and kept is None:
        return None
    if expected is None:
        return f"{name}: {what} expires at {kept} ms, the source never expires"
    if kept is None:
        return f"{name}: expiry lost: {what} never expires, the source expires at {expected} ms"
    if abs(kept - expected) > tolerance_ms:
        return f"{name}: {what} expires {(kept - expected) / 1000:+.1f} s from the source"
    return None


@dataclass
class Tallies:
    """Per row: keys judged and what was wrong."""

    keys: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    parity: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class PhaseD:
    """The Phase D checks: a live KV (read only), its archive, Postgres, and an empty
    scratch Redis for the restore drill."""

    kv: redis.Redis
    pg: PgConn
    folder: Path
    scratch: Callable[[], str]  # the URL of an empty Redis DB of the sandbox, made when asked
    seed: int
    sample_rate: float
    retention_days: int = archive.RETENTION_DAYS
    ttl_tolerance_s: float = 5.0
    # for kv-free-reads: the stores' URLs (the reference service connects to them)
    kv_url: str = ""
    pg_url: str = ""
    work: Path | None = None  # the service's logs
    defects: tuple[str, ...] = ()  # the service's, on purpose (tests)
    scratch_pg: Callable[[], str] | None = None  # an empty database of the sandbox
    write_modes: tuple[str, ...] = ()  # kv-writes-stopped: the service's --write flags (tests)

    def run(self, check: str, type_id: str) -> CheckResult:
        if check not in CHECKS:
            raise ValueError(f"unknown Phase D check {check!r}")
        if check == "retention":
            return self.check_retention()
        if check == "archive-complete":
            return self._judge(type_id, check, self.completeness, "archived")
        if check == "kv-free-reads":
            return self.check_kv_free_reads(type_id)
        if check == "kv-writes-stopped":
            return self.check_kv_writes_stopped(type_id)
        return self._judge(type_id, check, self.drill, "restored")

    @cached_property
    def manifest(self) -> archive.Manifest:
        return archive.Manifest.read(self.folder)

    @cached_property
    def completeness(self) -> Tallies:
        """Every archived key against the live store, a batch at a time; then every
        live key the archive lacks.

        Memory: 8 bytes per archived key (a sorted array of key hashes, to find the
        live keys missing from it), where an index of the archive took about 550
        bytes a key (487 MB at 12mo). Two keys sharing a 64-bit hash would hide a
        missing key: at a million keys the odds are about 3 in 10^8.
        """
        out = Tallies()
        tolerance = self.ttl_tolerance_s * 1000
        archived = array("Q")
        for batch in _batches(archive.entries(self.folder), archive.BATCH):
            lives = archive.read_live(self.kv, [e.key for e in batch])
            for kept, live in zip(batch, lives, strict=True):
                archived.append(_hash(kept.key))
                if live is None:
                    out.notes[KEYSPACE].append(f"{kept.name}: archived, since gone from the store")
                    continue
                row = row_of(live)
                out.keys[row] += 1
                if problem := _archived_problem(kept, live, tolerance):
                    out.problems[row].append(problem)
        known = array("Q", sorted(archived))
        del archived
        for keys in scan_keys(self.kv, batch=archive.BATCH):
            missing = [key for key in keys if not _holds(known, _hash(key))]
            for live in archive.read_live(self.kv, missing) if missing else []:
                if live is None:
                    continue  # gone since SCAN
                row = row_of(live)
                out.keys[row] += 1
                if live.expire_at_ms is not None and row == KEYSPACE:
                    out.notes[row].append(f"{live.name}: short-lived, made after the archive")
                else:
                    out.problems[row].append(f"{live.name}: missing from the archive")
        return out

    @cached_property
    def drill(self) -> Tallies:
        """The archive restored into an empty scratch Redis, read back key by key, then
        the Phase A comparison of the restored KV against Postgres."""
        scratch = connect_kv(self.scratch())
        archive.restore(self.folder, scratch)
        out = Tallies()
        tolerance = self.ttl_tolerance_s * 1000
        for batch in _batches(archive.entries(self.folder), archive.BATCH):
            restored = archive.read_live(scratch, [e.key for e in batch])
            for kept, back in zip(batch, restored, strict=True):
                row = row_of(kept)
                out.keys[row] += 1
                if back is None:
                    if kept.expire_at_ms is None:
                        out.problems[row].append(f"{kept.name}: not restored")
                    continue
                if back.rtype != kept.rtype or back.digest != archive.digest(
                    kept.rtype, kept.value
                ):
                    out.problems[row].append(
                        f"{kept.name}: restored value differs from the archive"
                    )
                elif problem := _expiry_problem(
                    kept.name, back.expire_at_ms, kept.expire_at_ms, tolerance, "the restored key"
                ):
                    out.problems[row].append(problem)
        parity = PhaseA(scratch, self.pg, self.seed, self.sample_rate, full=True)
        for type_id in [t for t in MAPPINGS if out.keys.get(_keys_of(t))]:
            for check in ("counts", "full"):
                result = parity.run(check, type_id)
                if result.status == "fail":
                    out.parity[type_id].append(
                        f"Phase A {check} on the restored KV: {result.message}"
                    )
                    out.parity[type_id].extend(f"  {d}" for d in result.details[:5])
        scratch.close()
        return out

    def _judge(self, type_id: str, check: str, tallies: Tallies, done: str) -> CheckResult:
        carrier = _keys_of(type_id)
        if carrier != type_id and check == "archive-complete":
            return CheckResult(
                PHASE,
                type_id,
                check,
                "skip",
                f"{type_id} live inside {carrier} keys: archived with them ({carrier} row)",
            )
        keys = tallies.keys.get(carrier, 0)
        notes = tallies.notes.get(type_id, [])
        if not keys and type_id == KEYSPACE:
            return CheckResult(PHASE, type_id, check, "skip", "no KV-only or unmapped keys")
        if not keys:
            return CheckResult(
                PHASE,
                type_id,
                check,
                "inconclusive",
                f"no {type_id} keys in the store: nothing to judge",
            )
        wrong = tallies.problems.get(type_id, [])
        parity = tallies.parity.get(type_id, [])
        bad = f"{len(wrong)} of {keys:,} {type_id} keys not {done} as they are"
        if parity:
            bad += "; the restored KV does not match Postgres (Phase A)"
        return verdict(
            PHASE,
            type_id,
            check,
            wrong + parity,
            ok=f"all {keys:,} {type_id} keys {done} with type, value and expiry"
            + (
                ", and the restored KV matches Postgres (Phase A)"
                if check == "restore-drill"
                else ""
            )
            + (f" ({len(notes)} noted: {notes[0]})" if notes else ""),
            bad=bad,
            metrics={"keys": keys, "noted": len(notes)},
            thresholds={"ttl_tolerance_s": self.ttl_tolerance_s},
        )

    @cached_property
    def kv_free(self) -> KvFree:
        work = self.work or self.folder.parent / "kv-free-service"
        return kv_free_reads(self.kv_url, self.pg_url, self.pg, work, defects=self.defects)

    def check_kv_free_reads(self, type_id: str) -> CheckResult:
        if not any(t == type_id for t in ENDPOINT_TYPES.values()):
            return CheckResult(PHASE, type_id, "kv-free-reads", "skip", "no read endpoint")
        asked = self.kv_free.requests.get(type_id, 0)
        if not asked:
            return CheckResult(
                PHASE,
                type_id,
                "kv-free-reads",
                "inconclusive",
                f"no {type_id} parameter sets in Postgres to ask its endpoints with",
            )
        return verdict(
            PHASE,
            type_id,
            "kv-free-reads",
            self.kv_free.problems.get(type_id, []),
            ok=f"{asked} reads answered the same with KV gone (every type reading Postgres)",
            bad=f"{{n}} of {asked} {type_id} reads failed or changed once KV was gone",
            metrics={"requests": asked},
        )

    @cached_property
    def kv_writes(self) -> KvWrites:
        """The archive restored into a scratch KV, backfilled into a scratch database:
        stores of the sandbox the service may write to."""
        if self.scratch_pg is None:
            raise UsageError("kv-writes-stopped needs a scratch database of the sandbox")
        kv_url, pg_url = self.scratch(), self.scratch_pg()
        kv = connect_kv(kv_url)
        archive.restore(self.folder, kv)
        with connect_pg(pg_url) as pg:
            schema.apply(pg)
            backfill(kv, pg)
            work = self.work or self.folder.parent / "kv-writes-service"
            return kv_writes_stopped(
                kv_url, pg_url, kv, pg, work, seed=self.seed, extra=self.write_modes
            )

    def check_kv_writes_stopped(self, type_id: str) -> CheckResult:
        check = "kv-writes-stopped"
        if type_id not in {w.type_id for w in WRITES.values()}:
            return CheckResult(PHASE, type_id, check, "skip", "no write op")
        acked = self.kv_writes.acked.get(type_id, 0)
        if not acked:
            return CheckResult(
                PHASE,
                type_id,
                check,
                "inconclusive",
                f"no {type_id} write was acknowledged, so none could be watched: "
                + "; ".join(self.kv_writes.refused.get(type_id, [])[:2]),
            )
        return verdict(
            PHASE,
            type_id,
            check,
            self.kv_writes.problems.get(type_id, []),
            ok=f"{acked} acknowledged {type_id} writes with every type writing Postgres "
            "changed no KV key",
            bad=f"{{n}} KV keys changed by {acked} {type_id} writes that should reach "
            "Postgres only",
            metrics={"writes": acked},
        )

    def check_retention(self) -> CheckResult:
        m = self.manifest
        problems = []
        if m.retention.days < self.retention_days:
            problems.append(
                f"the archive may be deleted after {m.delete_after}: {m.retention.days} days "
                f"after it was taken ({m.taken_at}), fewer than {self.retention_days}"
            )
        checked = archive.verify(self.folder)
        problems += checked.problems
        return verdict(
            PHASE,
            ARCHIVE,
            "retention",
            problems,
            ok=f"{m.keys:,} keys taken {m.taken_at}, kept until {m.delete_after} "
            f"({m.retention.days} days); the archive verifies against its manifest",
            bad="{n} problems with the archive's retention or integrity",
            metrics={"keys": m.keys, "retention_days": m.retention.days, "sha256": m.sha256},
            thresholds={"retention_days": self.retention_days},
        )


def _archived_problem(kept: Entry, live: Entry, tolerance_ms: float) -> str | None:
    """What differs between an archived key and the store's (its digest recomputed
    from the archived value, never taken from the file)."""
    if kept.rtype != live.rtype:
        return f"{live.name}: archived as a {kept.rtype}, the store holds a {live.rtype}"
    if (was := archive.digest(kept.rtype, kept.value)) != live.digest:
        return (
            f"{live.name}: the archived value differs from the store's "
            f"(digest {was[:12]}, live {live.digest[:12]})"
        )
    return _expiry_problem(
        live.name, kept.expire_at_ms, live.expire_at_ms, tolerance_ms, "the archived key"
    )


def _hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _holds(known: array[int], value: int) -> bool:
    at = bisect.bisect_left(known, value)
    return at < len(known) and known[at] == value


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
