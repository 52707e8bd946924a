"""Phase D: the archive round-trips every Redis type binary-safe with its expiry,
and each gate check fails on the defect it guards against, naming the key: a key
missing from the archive, a corrupted value, a lost TTL, a value changed before
the restore (the drill's Phase A comparison names the field), an archive kept
fewer than 30 days, a restore into a non-empty DB. A clean archive passes."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from fixtures.migration import Migration
from phasegate import archive
from phasegate.errors import UsageError
from phasegate.gates.phase_d import PhaseD
from phasegate.keyspace import scan_keys
from phasegate.servers import Sandbox, scratch_database, scratch_kv
from phasegate.stores import connect_kv
from tests.test_phase_a_gate import SEED


def fill_every_type(kv: redis.Redis) -> None:
    """One key of each Redis type, with bytes that are not UTF-8 in keys and values."""
    kv.set(b"bin:\xff\x00key", b"\x00\xfe\xffvalue")
    kv.hset("h:1", mapping={b"f\xff": b"\x01", "name": "al"})
    kv.rpush("l:1", b"b", b"a", b"b", b"\xff")
    kv.sadd("s:1", b"x", b"\x00")
    kv.zadd("z:1", {b"m1": 1.5, b"m2": -3.0, b"\xffm": 1e-9})
    kv.xadd("st:1", {b"f": b"v1"}, id="1-1")
    kv.xadd("st:1", {b"f": b"\xff"}, id="2-0")
    kv.set("ttl:1", "soon", px=3_600_000)


def typed(kv: redis.Redis) -> dict[bytes, tuple[str, Any, int]]:
    """Every key as (type, encoded value, TTL in s rounded)."""
    out = {}
    for keys in scan_keys(kv):
        for entry in archive.read_live(kv, keys):
            assert entry is not None
            ttl = int(kv.pttl(entry.key))
            out[entry.key] = (entry.rtype, entry.value, round(ttl / 10_000) if ttl > 0 else -1)
    return out


def test_every_redis_type_round_trips_binary_safe_with_its_ttl(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with scratch_kv(sandbox.kv_url) as source_url, scratch_kv(sandbox.kv_url) as target_url:
        source, target = connect_kv(source_url), connect_kv(target_url)
        fill_every_type(source)
        manifest = archive.take(source, tmp_path / "a", source="test")
        assert manifest.keys == 7
        assert manifest.types == {
            "hash": 1,
            "list": 1,
            "set": 1,
            "stream": 1,
            "string": 2,
            "zset": 1,
        }
        assert manifest.retention.days == 30
        assert archive.verify(tmp_path / "a").ok
        assert archive.restore(tmp_path / "a", target) == 7
        assert typed(target) == typed(source)
        assert target.lrange("l:1", 0, -1) == [b"b", b"a", b"b", b"\xff"]
        assert 3_590_000 < int(target.pttl("ttl:1")) <= 3_600_000
        with pytest.raises(UsageError, match=r"refusing to restore into Redis DB \d+ .* 7 keys"):
            archive.restore(tmp_path / "a", target)
        source.close()
        target.close()


def rewrite(folder: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Tamper with an archive's lines; the manifest's hash and counts follow (so the
    archive is self-consistent and only the gate's comparisons can tell)."""
    path = folder / archive.KEYS_FILE
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    kept = [c for c in (change(line) for line in lines) if c is not None]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(line) + "\n" for line in kept)
    manifest = json.loads((folder / archive.MANIFEST).read_text())
    manifest["keys"] = len(kept)
    types: dict[str, int] = {}
    for line in kept:
        types[line["t"]] = types.get(line["t"], 0) + 1
    manifest["types"] = dict(sorted(types.items()))
    manifest["sha256"] = archive.file_sha256(path)
    (folder / archive.MANIFEST).write_text(json.dumps(manifest))


def key_of(line: dict[str, Any]) -> bytes:
    return archive.from_b64(line["k"])


@pytest.fixture
def gate(migration: Migration, sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[[], PhaseD]]:
    """A fresh archive of the clean migration, and a gate over it made on demand."""
    folder = tmp_path / "archive"
    archive.take(migration.kv, folder, source="sandbox")
    with contextlib.ExitStack() as stack:

        def scratch() -> str:
            return stack.enter_context(scratch_kv(sandbox.kv_url))

        def scratch_pg() -> str:
            return stack.enter_context(scratch_database(sandbox.pg_url))

        def make(defects: tuple[str, ...] = (), write_modes: tuple[str, ...] = ()) -> PhaseD:
            return PhaseD(
                migration.kv,
                migration.pg,
                folder,
                scratch,
                SEED,
                10.0,
                kv_url=migration.kv_url,
                pg_url=migration.pg_url,
                work=tmp_path / "service",
                defects=defects,
                scratch_pg=scratch_pg,
                write_modes=write_modes,
            )

        yield make


def test_a_clean_archive_passes_every_check(gate: Callable[..., PhaseD]) -> None:
    d = gate()
    for type_id in ("users", "messages", "friends", "invites", "streaks"):
        for check in ("archive-complete", "restore-drill"):
            result = d.run(check, type_id)
            assert result.status == "pass", result.explain()
    assert d.run("restore-drill", "achievements").status == "pass"
    assert d.run("retention", "archive").status == "pass"


def test_a_key_missing_from_the_archive_fails_naming_it(gate: Callable[..., PhaseD]) -> None:
    d = gate()
    dropped: list[bytes] = []

    def drop_one_friend(line: dict[str, Any]) -> dict[str, Any] | None:
        if not dropped and key_of(line).startswith(b"friends:"):
            dropped.append(key_of(line))
            return None
        return line

    rewrite(d.folder, drop_one_friend)
    result = d.run("archive-complete", "friends")
    assert result.status == "fail"
    assert f"{dropped[0].decode()}: missing from the archive" in result.explain()
    assert d.run("archive-complete", "messages").status == "pass"


def test_the_store_changing_after_the_archive_is_judged_key_by_key(
    gate: Callable[..., PhaseD], migration: Migration
) -> None:
    """After the archive: a message key added (missing from it) and a friends key made
    a hash (wrong type) fail, naming the keys; a key deleted and a short-lived rate
    limit made since are noted, not failures."""
    d = gate()
    kv = migration.kv
    friend = next(iter(kv.scan_iter(match="friends:*", count=1000)))
    gone = next(iter(kv.scan_iter(match="invite:*", count=1000)))
    kv.set("msg:made-after-the-archive", '{"id": "made-after-the-archive"}')
    kv.delete(friend)
    kv.hset(friend, "was", "a set")
    kv.delete(gone)
    kv.set("ratelimit:late:1", "1", ex=60)
    messages = d.run("archive-complete", "messages")
    assert messages.status == "fail"
    assert "msg:made-after-the-archive: missing from the archive" in messages.explain()
    friends = d.run("archive-complete", "friends")
    assert friends.status == "fail"
    assert f"{friend.decode()}: archived as a set, the store holds a hash" in friends.explain()
    notes = d.completeness.notes["keyspace"]
    assert f"{gone.decode()}: archived, since gone from the store" in notes
    assert "ratelimit:late:1: short-lived, made after the archive" in notes
    assert d.run("archive-complete", "users").status == "pass"


def test_a_corrupted_value_fails_verify_retention_and_completeness(
    gate: Callable[..., PhaseD],
) -> None:
    d = gate()
    path = d.folder / archive.KEYS_FILE
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    target = next(line for line in lines if key_of(line).startswith(b"user:"))
    target["v"] = [[archive.to_b64(b"name"), archive.to_b64(b"tampered")]]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    name = key_of(target).decode()
    checked = archive.verify(d.folder)
    assert f"{name}: its value does not match its digest" in checked.problems
    assert any("SHA-256" in p for p in checked.problems)
    retention = d.run("retention", "archive")
    assert retention.status == "fail"
    assert name in retention.explain()
    complete = d.run("archive-complete", "users")
    assert complete.status == "fail"
    assert f"{name}: the archived value differs from the store's" in complete.explain()


def test_a_lost_ttl_fails_naming_the_key(gate: Callable[..., PhaseD], migration: Migration) -> None:
    d = gate()
    volatile = next(
        k
        for keys in scan_keys(migration.kv, match="invite:*")
        for k in keys
        if migration.kv.pttl(k) > 0
    )

    def lose_ttl(line: dict[str, Any]) -> dict[str, Any]:
        return {**line, "x": None} if key_of(line) == volatile else line

    rewrite(d.folder, lose_ttl)
    row = next(
        t
        for t in ("invites", "keyspace")
        if volatile.decode() in _problems(d, "archive-complete", t)
    )
    assert "expiry lost" in _problems(d, "archive-complete", row)


def _problems(d: PhaseD, check: str, type_id: str) -> str:
    return d.run(check, type_id).explain()


def test_a_value_changed_before_the_restore_fails_the_drill_naming_the_field(
    gate: Callable[..., PhaseD],
) -> None:
    """A self-consistent archive whose message text differs from the store: the
    restored KV no longer matches Postgres, and the drill's Phase A names it."""
    d = gate()
    changed: list[str] = []

    def edit_one_message(line: dict[str, Any]) -> dict[str, Any]:
        if changed or line["t"] != "string" or not key_of(line).startswith(b"msg:"):
            return line
        value = json.loads(archive.from_b64(line["v"]))
        value["text"] = "edited in the archive"
        encoded = archive.to_b64(json.dumps(value).encode())
        changed.append(key_of(line).decode())
        return {**line, "v": encoded, "d": archive.digest("string", encoded)}

    rewrite(d.folder, edit_one_message)
    assert archive.verify(d.folder).ok
    drill = d.run("restore-drill", "messages")
    assert drill.status == "fail"
    text = drill.explain()
    assert "Phase A full on the restored KV" in text
    assert "field text" in text
    assert "edited in the archive" in text
    complete = d.run("archive-complete", "messages")
    assert f"{changed[0]}: the archived value differs" in complete.explain()


def test_an_archive_kept_fewer_than_30_days_fails_retention(gate: Callable[..., PhaseD]) -> None:
    d = gate()
    path = d.folder / archive.MANIFEST
    manifest = json.loads(path.read_text())
    taken = datetime.fromisoformat(manifest["taken_at"])
    manifest["delete_after"] = (taken + timedelta(days=10)).isoformat()
    path.write_text(json.dumps(manifest))
    result = d.run("retention", "archive")
    assert result.status == "fail"
    assert "10 days after it was taken" in result.explain()
    assert "fewer than 30" in result.explain()


def test_the_cli_archives_verifies_and_restores(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`phasegate archive`, `archive verify`, `restore`: exit 0 on a round trip, 1 on
    a tampered archive, 2 on a non-empty target; no password shown."""
    from phasegate.cli import main

    with scratch_kv(sandbox.kv_url) as source_url, scratch_kv(sandbox.kv_url) as target_url:
        source = connect_kv(source_url)
        fill_every_type(source)
        secret = source_url.replace("redis://", "redis://default:Secr3tPW@")
        folder = str(tmp_path / "a")
        assert main(["archive", "--kv-url", source_url, "--out", folder]) == 0
        out = capsys.readouterr().out
        assert "archived 7 keys" in out
        assert main(["archive", "verify", folder]) == 0
        assert main(["restore", folder, "--kv-url", target_url]) == 0
        assert "restored 7 keys" in capsys.readouterr().out
        assert main(["restore", folder, "--kv-url", target_url]) == 2
        assert "refusing to restore" in capsys.readouterr().err
        manifest = json.loads((tmp_path / "a" / archive.MANIFEST).read_text())
        assert "Secr3tPW" not in json.dumps(manifest)
        code = main(["archive", "--kv-url", secret, "--out", str(tmp_path / "b")])
        shown = capsys.readouterr()
        assert "Secr3tPW" not in shown.out + shown.err
        if code == 0:  # a server without a password may accept any: the manifest masks it
            written = (tmp_path / "b" / archive.MANIFEST).read_text()
            assert "Secr3tPW" not in written
            assert "default:***@" in written
        rewrite(tmp_path / "a", lambda line: line)
        with gzip.open(tmp_path / "a" / archive.KEYS_FILE, "at") as f:
            f.write('{"k": "eA==", "t": "string", "x": null, "d": "0", "v": "eA=="}\n')
        assert main(["archive", "verify", folder]) == 1
        assert "x: its value does not match its digest" in capsys.readouterr().out
        source.close()


def test_kv_free_reads_pass_and_a_read_path_still_touching_kv_fails(
    gate: Callable[..., PhaseD],
) -> None:
    """Every read endpoint answers the same with KV on a dead port; a service whose
    Postgres read path still calls KV fails it, naming the endpoint and request."""
    clean = gate()
    for type_id in ("messages", "friends", "users"):
        result = clean.run("kv-free-reads", type_id)
        assert result.status == "pass", result.explain()
    assert clean.run("kv-free-reads", "achievements").status == "skip"
    broken = gate(("pg-read-touches-kv",)).run("kv-free-reads", "messages")
    assert broken.status == "fail"
    text = broken.explain()
    assert "inbox {" in text
    assert "once KV was gone (the path still reads KV)" in text


def test_kv_writes_stopped_fails_when_a_type_still_writes_kv(
    gate: Callable[..., PhaseD],
) -> None:
    """The service with friends still dual-writing: friends fails naming the KV key
    its write changed; messages, writing Postgres only, pass."""
    d = gate(write_modes=("--write", "friends=dual"))
    friends = d.run("kv-writes-stopped", "friends")
    assert friends.status == "fail"
    assert "friends:" in friends.explain()
    assert "in KV" in friends.explain()
    assert d.run("kv-writes-stopped", "messages").status == "pass"
    assert d.run("kv-writes-stopped", "achievements").status == "skip"
