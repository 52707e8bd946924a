"""Decode memos: a run that reuses them answers exactly as a fresh decode, and never
hides a change made in either store since the memos were written."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

import phasegate.parity.compare as compare_module
from fixtures.migration import Migration, make
from phasegate.backfill import backfill
from phasegate.findings import Finding
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.parity.buckets import WHOLE, split
from phasegate.parity.compare import Scope, compare, spill_folder
from phasegate.parity.digest import DIGEST_BUCKETS
from phasegate.parity.memo import STREAMED, item_hash, memos_for
from phasegate.parity.read import read_kv
from phasegate.parity.spill import read_chunks
from phasegate.parity.tally import Comparison
from phasegate.parity.workers import run_jobs
from phasegate.servers import Sandbox
from tests.test_compare import SCOPE

BUCKETS = 4
PLANTED = "one_sided"  # a kind board's decoder never finds


def _compare(m: Migration, memo: Path | None, scope: Scope = SCOPE) -> Comparison:
    return compare(m.kv, m.pg, TYPE_IDS, scope, buckets=BUCKETS, memo_dir=memo)


def _memo_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.pickle"))


def test_a_memoized_pass_is_the_fresh_pass_and_the_memos_are_used(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The first pass writes the memos, the second answers from them: both equal a pass
    without memos; a planted memo finding shows up, so the second pass did use them."""
    for m in make(sandbox):
        fresh = _compare(m, None)
        assert _compare(m, tmp_path) == fresh
        files = _memo_files(tmp_path)
        assert len(files) == BUCKETS
        assert _compare(m, tmp_path) == fresh
        # Plant a finding in one memo of board: only a pass that reads it reports it.
        for path in files:
            memo = pickle.loads(path.read_bytes())
            if memo.get("board"):
                entry = next(iter(memo["board"].values()))
                entry.findings.append(Finding("board", PLANTED, "board:entry:x", "from a memo"))
                path.write_bytes(pickle.dumps(memo))
                break
        planted = _compare(m, tmp_path).types["board"].findings[PLANTED]
        assert planted == fresh.types["board"].findings[PLANTED] + 1


def test_another_seed_or_clock_on_the_same_memos_counts_as_a_fresh_pass(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The sample depends on the seed (decoded again), the last 24 hours on the clock
    (counted from the memo's recency values): both as without memos."""
    for m in make(sandbox):
        _compare(m, tmp_path)
        for scope in (
            dataclasses.replace(SCOPE, seed=11),
            dataclasses.replace(SCOPE, now=SCOPE.now - timedelta(hours=30)),
            dataclasses.replace(SCOPE, now=SCOPE.now + timedelta(hours=20)),
        ):
            assert _compare(m, tmp_path, scope) == _compare(m, None, scope), scope


def test_memo_files_that_cannot_be_read_are_decoded_again_and_rewritten(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A memo file cut short, of garbage or holding another object (a run killed
    mid-copy, a disk fault, another tool's or version's file) is no memo: the pass decodes those
    work buckets, answers as without memos, and writes good memos in their place."""
    for m in make(sandbox):
        fresh = _compare(m, None)
        _compare(m, tmp_path)
        files = _memo_files(tmp_path)
        assert len(files) == BUCKETS
        files[0].write_bytes(files[0].read_bytes()[:40])
        files[1].write_bytes(b"not a pickle at all")
        files[2].write_bytes(pickle.dumps(["a list, not a memo"]))
        files[3].write_bytes(pickle.dumps({"board": "x", "messages": {0: "x", 1: None}}))
        assert _compare(m, tmp_path) == fresh
        for path in files:
            assert isinstance(pickle.loads(path.read_bytes()), dict), path


def test_a_change_in_either_store_after_the_memos_is_found_naming_the_field(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """One KV value edited (its bucket's raw hash changes) and one Postgres row edited
    (its digest no longer matches the memo's): both found, field named."""
    for m in make(sandbox):
        _compare(m, tmp_path)
        _compare(m, tmp_path)
        key = next(k for k in m.kv.scan_iter("board:entry:*", count=1000))
        value = m.kv.get(key)
        assert isinstance(value, bytes)
        m.kv.set(key, value.replace(b'"content":"', b'"content":"edited '))
        m.pg.execute(
            "UPDATE messages SET text = text || ' (tampered)' "
            "WHERE id = (SELECT min(id) FROM messages)"
        )
        m.pg.commit()
        after = _compare(m, tmp_path)
        board = "\n".join(after.types["board"].differences["full"].examples)
        assert after.types["board"].differences["full"].count == 1, board
        assert "field content" in board, board
        assert key.decode() in board, board
        messages = "\n".join(after.types["messages"].differences["full"].examples)
        assert after.types["messages"].differences["full"].count == 1, messages
        assert "field text" in messages, messages
        assert "(tampered)" in messages, messages
        assert after == _compare(m, None)


def test_a_memoized_backfill_rerun_writes_only_what_changed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A re-run with memos changes nothing; one KV record edited is one update."""
    for m in make(sandbox):
        kv: redis.Redis = m.kv
        first = backfill(kv, m.pg, restart=True, memo_dir=tmp_path)
        assert first.changed == 0  # the migration was already complete
        again = backfill(kv, m.pg, restart=True, memo_dir=tmp_path)
        assert again.changed == 0
        assert all(r.unchanged == first.types[t].unchanged for t, r in again.types.items())
        assert [f for t in again.types.values() for f in t.findings] == [
            f for t in first.types.values() for f in t.findings
        ]
        key = next(k for k in kv.scan_iter("board:entry:*", count=1000))
        value = kv.get(key)
        assert isinstance(value, bytes)
        kv.set(key, value.replace(b'"content":"', b'"content":"edited '))
        edited = backfill(kv, m.pg, restart=True, memo_dir=tmp_path, types=["board"])
        assert (edited.types["board"].inserted, edited.types["board"].updated) == (0, 1)


def test_a_backfill_leaves_memos_the_gate_uses_as_they_are(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A backfill given the gate's scope writes memos with its counts: the comparison
    run next answers from them (a planted memo finding shows) and equals a fresh one."""
    for m in make(sandbox):
        backfill(m.kv, m.pg, restart=True, memo_dir=tmp_path, memo_scope=SCOPE)
        path = next(p for p in _memo_files(tmp_path) if pickle.loads(p.read_bytes()).get("board"))
        memo = pickle.loads(path.read_bytes())
        entry = next(iter(memo["board"].values()))
        entry.findings.append(Finding("board", PLANTED, "board:entry:x", "from a memo"))
        path.write_bytes(pickle.dumps(memo))
        # The backfill's work buckets, as the gate's pass sizes them (from DBSIZE).
        fresh = compare(m.kv, m.pg, TYPE_IDS, SCOPE)
        memoized = compare(m.kv, m.pg, TYPE_IDS, SCOPE, memo_dir=tmp_path)
        assert (
            memoized.types["board"].findings[PLANTED] == fresh.types["board"].findings[PLANTED] + 1
        )
        memoized.types["board"].findings[PLANTED] -= 1
        assert memoized == fresh


def test_over_complete_memos_the_readers_spill_where_entries_are_not_their_values(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Once a run left a memo for every work bucket, the readers spill (type, variant,
    key name, TYPE, bucket) and no value: the same places a spill of values holds."""
    for m in make(sandbox):
        memos = memos_for(tmp_path / "memo", m.kv, BUCKETS, WHOLE)
        first = spill_folder(tmp_path / "first", BUCKETS, 2, m.kv, memos)
        assert first.reread is None  # no memos yet: values are spilled
        _compare(m, tmp_path / "memo")
        assert memos.complete(BUCKETS)
        lazy = spill_folder(tmp_path / "lazy", BUCKETS, 2, m.kv, memos)
        assert lazy.reread is not None
        assert "password" not in repr(lazy)
        places = {}
        for folder in (first, lazy):
            folder.path.mkdir()
            read_kv(m.kv, TYPE_IDS, folder, hashing=True)
            items = [i for w in range(BUCKETS) for p in folder.kv_all(w) for i in read_chunks(p)]
            places[folder.path.name] = sorted(
                (t, v, k if isinstance(k, str) else k.decode(), r, b)
                for _kind, t, v, k, r, *_value, b in items
            )
            kinds = {i[0] for i in items}
            assert kinds == ({"kv"} if folder is first else {"at"}), kinds
        assert places["lazy"] == sorted(set(places["first"]))
        assert len(places["lazy"]) > 100


def test_a_key_edited_between_the_read_and_the_workers_read_makes_no_memo(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket to decode is read again by the worker; when its entries changed since
    the readers hashed them, what was decoded is not what was hashed, so no memo is
    kept for it, and the next pass decodes it again and finds what changed."""
    for m in make(sandbox):
        _compare(m, tmp_path)
        key = next(k for k in m.kv.scan_iter("board:entry:*", count=1000))
        value = m.kv.get(key)
        assert isinstance(value, bytes)
        m.kv.set(key, value.replace(b'"content":"', b'"content":"first edit '))
        entry = KvEntry(key.decode(), "string", value)
        (bucket,) = {b for b, _ in split(MAPPINGS["board"], "entry", entry, DIGEST_BUCKETS)}
        path = memos_for(tmp_path, m.kv, BUCKETS, WHOLE).path(bucket % BUCKETS)
        assert bucket in pickle.loads(path.read_bytes())["board"]
        second = value.replace(b'"content":"', b'"content":"second edit ')

        def edit_then_run(
            jobs: list[tuple[object, ...]],
            edit: tuple[redis.Redis, bytes, bytes] = (m.kv, key, second),
            run: Callable[[list[tuple[object, ...]]], list[object]] = run_jobs,
        ) -> list[object]:
            if jobs and jobs[0][0] == "digest":  # after the read, before the workers
                edit[0].set(edit[1], edit[2])
            return run(jobs)

        monkeypatch.setattr(compare_module, "run_jobs", edit_then_run)
        during = _compare(m, tmp_path)
        monkeypatch.undo()
        board = "\n".join(during.types["board"].differences["full"].examples)
        assert "second edit" in board, board  # what the worker read
        assert bucket not in pickle.loads(path.read_bytes())["board"]
        after = _compare(m, tmp_path)
        assert "second edit" in "\n".join(after.types["board"].differences["full"].examples)
        assert after == _compare(m, None)


def test_a_key_name_that_is_not_utf8_is_read_again_by_its_bytes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A worker reads a key again by the name SCAN gave, not by its escaped text: a
    key of invalid UTF-8 whose value changed is decoded as a fresh pass decodes it."""
    for m in make(sandbox):
        key = next(k for k in m.kv.scan_iter("board:entry:*", count=1000))
        value = m.kv.get(key)
        assert isinstance(value, bytes)
        odd = b"board:entry:\xff\\x" + key.rsplit(b":", 1)[1]
        m.kv.set(odd, value)
        _compare(m, tmp_path)
        m.kv.set(odd, value.replace(b'"content":"', b'"content":"edited '))
        assert memos_for(tmp_path, m.kv, BUCKETS, WHOLE).complete(BUCKETS)
        memoized = _compare(m, tmp_path)
        fresh = _compare(m, None)
        assert memoized == fresh
        shown = str(fresh.types["board"].findings) + str(fresh.types["board"].differences)
        assert "\\xff" in shown, shown


def _routes(root: Path) -> dict[int, object]:
    """Every route the readers kept, by whole-entry hash (parts in any order: a set
    splits in its members' order, which differs between processes)."""
    out: dict[int, object] = {}
    for path in root.rglob("*.routes"):
        with path.open("rb") as fh:
            while True:
                try:
                    batch = pickle.load(fh)
                except EOFError:
                    break
                out.update({h: r if isinstance(r, int) else sorted(r) for h, r in batch.items()})
    return out


def test_route_memos_are_kept_beside_the_memos_and_a_bad_one_is_no_memo(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Each reader keeps where its entries went (whole-entry hash -> route, a dict per
    batch); an unchanged keyspace keeps the same routes again, and a route memo
    that cannot be read is split afresh: the pass is the fresh pass either way."""
    for m in make(sandbox):
        fresh = _compare(m, None)
        assert _compare(m, tmp_path) == fresh
        first = _routes(tmp_path)
        mapped = sum(n for counts in fresh.keyspace.keys.values() for n in counts.values())
        assert 0 < len(first) <= mapped
        assert _compare(m, tmp_path) == fresh
        assert _routes(tmp_path) == first
        for path in tmp_path.rglob("*.routes"):
            path.write_bytes(b"not a route memo")
        assert _compare(m, tmp_path) == fresh
        assert _routes(tmp_path) == first


def test_a_wrong_route_memo_is_an_error_naming_the_key_and_is_not_kept(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Route memos changed to send three entries one bucket on (a tampered or stale
    file): the pass is red with a misrouted error naming each key, never a pass that
    quietly compares less; it drops the route memos, so the next pass is the fresh one."""
    for m in make(sandbox):
        fresh = _compare(m, None)
        _compare(m, tmp_path)
        _compare(m, tmp_path)  # memos complete: the readers spill where entries are
        moved: list[int] = []
        for path in tmp_path.rglob("*.routes"):
            batches = []
            with path.open("rb") as fh:
                while True:
                    try:
                        batches.append(pickle.load(fh))
                    except EOFError:
                        break
            for batch in batches:
                for whole, route in list(batch.items()):
                    if isinstance(route, int) and len(moved) < 3:
                        batch[whole] = (route + 1) % DIGEST_BUCKETS
                        moved.append(whole)
            path.write_bytes(b"".join(pickle.dumps(b) for b in batches))
        assert len(moved) == 3
        wrong = _compare(m, tmp_path)
        errors = [e for r in wrong.types.values() for e in r.errors.examples if "route memo" in e]
        assert sum(r.findings["misrouted"] for r in wrong.types.values()) == 3, errors
        assert len(errors) == 3, errors
        assert all(": read again in work bucket" in e for e in errors), errors
        assert not list(tmp_path.rglob("*.routes"))
        assert _compare(m, tmp_path) == fresh


def test_a_large_value_is_hashed_in_pieces_in_any_order_and_each_member_counts() -> None:
    """A registry hash far above STREAMED members (vibe:invites holds 200,000 at 10x)
    hashes the same read in any order, and not the same with one member changed,
    dropped or moved to another field."""
    fields = {f"code{i}".encode(): f"by{i}".encode() for i in range(STREAMED * 3 + 7)}

    def of(value: object) -> int:
        return item_hash("invites", "registry", "vibe:invites", "hash", value)

    first = of(fields)
    assert of(dict(reversed(list(fields.items())))) == first
    assert of({**fields, b"code5": b"by-someone-else"}) != first
    assert of({k: v for k, v in fields.items() if k != b"code5"}) != first
    assert of({**fields, b"code5": b"by6", b"code6": b"by5"}) != first
    members = set(fields)
    assert of(members - {b"code5"}) != of(members)


def test_a_router_that_disagrees_with_its_records_buckets_is_an_error_naming_the_key(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team's router that sends an entry to another bucket than its record's (here:
    board entries whose value says "misrouted" go one bucket on) compares the record
    against the wrong rows: the pass says so, an error naming the key, beside the
    missing and extra row it shows. Once one entry is misrouted, the type's memos
    are not trusted: a pass with the memos of a run before the edit equals a pass
    without memos."""
    board = MAPPINGS["board"]

    def router(variant: str, entry: KvEntry, buckets: int) -> Iterator[tuple[int, KvEntry]]:
        for bucket, part in split(board, variant, entry, buckets):  # by key, as board routes
            off = isinstance(part.value, bytes) and b"misrouted" in part.value
            yield ((bucket + 1) % buckets if off else bucket), part

    # In this process (workers=0): worker processes would import the real mapping.
    monkeypatch.setitem(MAPPINGS, "board", dataclasses.replace(board, router=router))
    for m in make(sandbox):
        before = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=BUCKETS, workers=0)
        assert before.types["board"].findings["misrouted"] == 0
        again = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=BUCKETS, workers=0, memo_dir=tmp_path)
        assert again == before  # routed as by key: memos made, and equal
        key = next(k for k in m.kv.scan_iter("board:entry:*", count=1000))
        value = m.kv.get(key)
        assert isinstance(value, bytes)
        m.kv.set(key, value.replace(b'"content":"', b'"content":"misrouted '))
        memoized = compare(
            m.kv, m.pg, TYPE_IDS, SCOPE, buckets=BUCKETS, workers=0, memo_dir=tmp_path
        )
        result = memoized.types["board"]
        assert result.findings["misrouted"] == 1
        errors = "\n".join(result.errors.examples)
        assert f"{key.decode()}: routed to bucket" in errors, errors
        assert "The mapping's router is wrong" in errors, errors
        shown = "\n".join(result.differences["full"].examples)
        assert result.differences["full"].count == 2, shown  # missing here, extra there
        record = key.decode().removeprefix("board:entry:")
        assert f"board {record} (" in shown, shown  # missing in Postgres
        assert f"board {record}: in Postgres, not in KV" in shown, shown
        assert memoized == compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=BUCKETS, workers=0)
