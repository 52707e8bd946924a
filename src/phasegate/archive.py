"""Phase D's KV archive: every key, binary-safe, with a manifest; verify; restore.

``take`` reads the store once (SCAN, then per batch one pipeline of TYPE,
PTTL and a typed read: GET, HGETALL, LRANGE, SMEMBERS, ZRANGE WITHSCORES,
XRANGE; DUMP for any other type) and streams it, so memory stays bounded by one
batch whatever the size. The archive folder holds:

- ``keys.jsonl.gz``: one line per key: ``k`` the key and ``v`` its value as
  base64 of the raw bytes (hash fields and values, list items, set members,
  sorted-set members with scores, stream entries), ``t`` its Redis type, ``x``
  its absolute expiry in ms since the epoch (null for none), ``d`` its digest;
- ``manifest.json``: when it was taken and from where (password masked), when
  it may be deleted (``retention_days`` after, 30 by default), the key count
  per Redis type, and the SHA-256 of ``keys.jsonl.gz``.

A key's digest is SHA-256 over its type and its value in a canonical order
(hash fields and set members sorted; lists, sorted sets and streams in their
own order), so the live store can be compared with the archive key by key.
Typed reads, not DUMP, so an archive restores into any Redis or Valkey
version (DUMP payloads are refused by older servers), and works on Upstash.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from phasegate.errors import UsageError
from phasegate.keyspace import key_text, scan_keys
from phasegate.stores import kv_errors

KEYS_FILE = "keys.jsonl.gz"
MANIFEST = "manifest.json"
FORMAT = 1
RETENTION_DAYS = 30
BATCH = 500
Progress = Callable[[int, int], None]  # (keys done, keys in the store)

_READ: dict[str, Callable[[Any, bytes], Any]] = {
    "string": lambda p, k: p.get(k),
    "hash": lambda p, k: p.hgetall(k),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "set": lambda p, k: p.smembers(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
    "stream": lambda p, k: p.xrange(k),
}


def to_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def from_b64(text: str) -> bytes:
    return base64.b64decode(text)


def encode(rtype: str, value: Any) -> Any:
    """A value as read by redis-py, in the archive's JSON form (canonical order)."""
    if rtype in ("string", "dump"):
        return to_b64(value)
    if rtype == "hash":
        return [[to_b64(f), to_b64(v)] for f, v in sorted(value.items())]
    if rtype == "list":
        return [to_b64(v) for v in value]
    if rtype == "set":
        return [to_b64(v) for v in sorted(value)]
    if rtype == "zset":
        return [[to_b64(m), repr(float(s))] for m, s in value]
    if rtype == "stream":
        return [
            [to_b64(i), [[to_b64(f), to_b64(v)] for f, v in sorted(e.items())]] for i, e in value
        ]
    raise ValueError(rtype)


def digest(rtype: str, encoded: Any) -> str:
    """SHA-256 of a key's type and encoded value.

    >>> digest("set", encode("set", {b"b", b"a"})) == digest("set", encode("set", {b"a", b"b"}))
    True
    """
    text = json.dumps([rtype, encoded], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One archived key."""

    key: bytes
    rtype: str  # a Redis type, or "dump" for a type archived by DUMP
    value: Any  # encoded
    expire_at_ms: int | None
    digest: str

    @property
    def name(self) -> str:
        return key_text(self.key)

    def line(self) -> str:
        return json.dumps(
            {
                "k": to_b64(self.key),
                "t": self.rtype,
                "x": self.expire_at_ms,
                "d": self.digest,
                "v": self.value,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, line: str) -> Entry:
        data = json.loads(line)
        return cls(from_b64(data["k"]), data["t"], data["v"], data["x"], data["d"])


@dataclass(frozen=True)
class Manifest:
    taken_at: str
    delete_after: str
    retention_days: int
    source: str
    keys: int
    types: dict[str, int]
    sha256: str
    format: int = FORMAT

    @property
    def retention(self) -> timedelta:
        return datetime.fromisoformat(self.delete_after) - datetime.fromisoformat(self.taken_at)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise UsageError(
                f"{folder}: no {MANIFEST}, so this is not a phasegate archive",
                hint="take one with `phasegate archive --kv-url URL --out DIR`",
            )
        return cls(**json.loads(path.read_text()))


def read_live(client: redis.Redis, keys: Sequence[bytes]) -> list[Entry | None]:
    """The keys' current entries (None for a key that vanished since SCAN)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
    with kv_errors(client, "TYPE and PTTL", key_text(keys[0])):
        replies = pipe.execute()
    now_ms = int(time.time() * 1000)
    types = [r.decode() for r in replies[::2]]
    ttls = replies[1::2]
    pipe = client.pipeline(transaction=False)
    for key, rtype in zip(keys, types, strict=True):
        reader = _READ.get(rtype)
        if reader is not None:
            reader(pipe, key)
        elif rtype != "none":
            pipe.dump(key)
    with kv_errors(client, "typed reads", key_text(keys[0])):
        values = iter(pipe.execute())
    out: list[Entry | None] = []
    for key, rtype, ttl in zip(keys, types, ttls, strict=True):
        if rtype == "none":
            out.append(None)
            continue
        value = next(values)
        kind = rtype if rtype in _READ else "dump"
        if value is None:  # expired or deleted between the reads
            out.append(None)
            continue
        encoded = encode(kind, value)
        expiry = now_ms + int(ttl) if ttl is not None and int(ttl) >= 0 else None
        out.append(Entry(key, kind, encoded, expiry, digest(kind, encoded)))
    return out


def live_entries(
    client: redis.Redis, progress: Progress | None = None, batch: int = BATCH
) -> Iterator[Entry]:
    """Every key of the store, read once, in SCAN order."""
    with kv_errors(client, "DBSIZE"):
        total = int(client.dbsize())
    done = 0
    for keys in scan_keys(client, batch=batch):
        for entry in read_live(client, keys):
            if entry is not None:
                yield entry
        done += len(keys)
        if progress is not None:
            progress(done, total)


def take(
    client: redis.Redis,
    folder: Path,
    *,
    source: str,
    retention_days: int = RETENTION_DAYS,
    progress: Progress | None = None,
) -> Manifest:
    """Archive every key of ``client`` into ``folder`` (created; must hold no archive)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / MANIFEST).exists():
        raise UsageError(f"{folder} already holds an archive", hint="choose another --out")
    taken = datetime.now(UTC).replace(microsecond=0)
    types: dict[str, int] = {}
    count = 0
    path = folder / KEYS_FILE
    with gzip.open(path, "wt", encoding="ascii", compresslevel=6) as out:
        for entry in live_entries(client, progress):
            out.write(entry.line() + "\n")
            types[entry.rtype] = types.get(entry.rtype, 0) + 1
            count += 1
    manifest = Manifest(
        taken_at=taken.isoformat(),
        delete_after=(taken + timedelta(days=retention_days)).isoformat(),
        retention_days=retention_days,
        source=source,
        keys=count,
        types=dict(sorted(types.items())),
        sha256=file_sha256(path),
    )
    (folder / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=2) + "\n")
    return manifest


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def entries(folder: Path) -> Iterator[Entry]:
    with gzip.open(folder / KEYS_FILE, "rt", encoding="ascii") as lines:
        for line in lines:
            yield Entry.parse(line)


@dataclass
class Verified:
    """An archive checked against its manifest."""

    keys: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(folder: Path) -> Verified:
    """The file's SHA-256, every key's digest against its value, the counts."""
    manifest = Manifest.read(folder)
    result = Verified()
    actual = file_sha256(folder / KEYS_FILE)
    if actual != manifest.sha256:
        result.problems.append(
            f"{KEYS_FILE}: SHA-256 {actual[:16]}... is not the manifest's {manifest.sha256[:16]}..."
        )
    types: dict[str, int] = {}
    for entry in entries(folder):
        result.keys += 1
        types[entry.rtype] = types.get(entry.rtype, 0) + 1
        if digest(entry.rtype, entry.value) != entry.digest:
            result.problems.append(f"{entry.name}: its value does not match its digest")
    if result.keys != manifest.keys or types != manifest.types:
        result.problems.append(
            f"the archive holds {result.keys} keys {types}, the manifest says "
            f"{manifest.keys} {manifest.types}"
        )
    return result


def refuse_non_empty(client: redis.Redis) -> None:
    with kv_errors(client, "DBSIZE"):
        size = int(client.dbsize())
    if size:
        where = client.connection_pool.connection_kwargs
        raise UsageError(
            f"refusing to restore into Redis DB {where.get('db', 0)} at "
            f"{where.get('host')}:{where.get('port')}: it holds {size:,} keys",
            hint="restore into an empty DB (a new one, or FLUSHDB it yourself first)",
        )


def restore(
    folder: Path, client: redis.Redis, *, progress: Progress | None = None, batch: int = BATCH
) -> int:
    """Write the archive into an empty Redis DB, expiries kept; returns keys written.
    A key whose expiry has passed since it was archived is not written."""
    refuse_non_empty(client)
    manifest = Manifest.read(folder)
    written = 0
    pipe = client.pipeline(transaction=False)
    pending = 0
    now_ms = int(time.time() * 1000)
    for entry in entries(folder):
        if entry.expire_at_ms is not None and entry.expire_at_ms <= now_ms:
            continue
        _write(pipe, entry)
        pending += 1
        written += 1
        if pending >= batch:
            with kv_errors(client, "restore writes", entry.name):
                pipe.execute()
            pending = 0
            if progress is not None:
                progress(written, manifest.keys)
    with kv_errors(client, "restore writes"):
        pipe.execute()
    if progress is not None:
        progress(written, manifest.keys)
    return written


def _write(pipe: Any, e: Entry) -> None:
    key, v = e.key, e.value
    if e.rtype == "string":
        pipe.set(key, from_b64(v))
    elif e.rtype == "hash":
        pipe.hset(key, mapping={from_b64(f): from_b64(x) for f, x in v})
    elif e.rtype == "list":
        pipe.rpush(key, *[from_b64(x) for x in v])
    elif e.rtype == "set":
        pipe.sadd(key, *[from_b64(x) for x in v])
    elif e.rtype == "zset":
        pipe.zadd(key, {from_b64(m): float(s) for m, s in v})
    elif e.rtype == "stream":
        for entry_id, fields in v:
            pipe.xadd(key, {from_b64(f): from_b64(x) for f, x in fields}, id=from_b64(entry_id))
    else:  # a type archived by DUMP
        pipe.restore(key, 0, from_b64(v), replace=False)
    if e.expire_at_ms is not None:
        pipe.pexpireat(key, e.expire_at_ms)
