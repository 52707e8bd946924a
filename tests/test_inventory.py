"""The inventory of a real Redis: every key classified, nothing skipped silently."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest
import redis

from phasegate import keyspace
from phasegate.inventory import take_inventory
from phasegate.keyspace import Reader
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import Decoded, VariantEntry


def test_seeded_keyspace_is_fully_mapped_with_no_errors(seeded_kv: redis.Redis) -> None:
    """The generator writes only mapped or KV-only keys, all decodable."""
    inv = take_inventory(seeded_kv)
    assert inv.total_keys == seeded_kv.dbsize()
    assert inv.keyspace_findings == []
    assert [str(f) for f in inv.findings if f.severity == "error"] == []
    assert set(inv.kv_only) >= {"presence", "session", "typing", "ratelimit", "invite"}
    for type_id in TYPE_IDS:
        assert inv.types[type_id].records > 0, type_id


def test_unmapped_and_wrong_type_keys_are_errors_naming_the_key(
    scratch_kv_client: redis.Redis,
) -> None:
    """A key of no known type, or of an unexpected Redis TYPE, is an error finding."""
    scratch_kv_client.set("cart:42", b"{}")
    scratch_kv_client.hset("msg:m1", mapping={"from": "al"})
    scratch_kv_client.xadd("streak:al", {"x": "1"})
    scratch_kv_client.set("presence:al", b"1")
    inv = take_inventory(scratch_kv_client)
    assert [(f.kind, f.key) for f in inv.keyspace_findings] == [("unmapped_key", "cart:42")]
    wrong = {(f.type_id, f.key, f.kind) for f in inv.findings if f.kind == "wrong_type"}
    assert wrong == {("messages", "msg:m1", "wrong_type"), ("streaks", "streak:al", "wrong_type")}
    assert inv.kv_only == {"presence": 1}


def test_undecodable_values_are_findings_and_the_rest_still_decodes(
    scratch_kv_client: redis.Redis,
) -> None:
    """One bad value costs one finding with the raw bytes kept, not the whole type."""
    scratch_kv_client.set("msg:good", b'{"id":"good","from":"al","to":"bo","text":"hi"}')
    scratch_kv_client.set("msg:bad", b'{"id":"bad","from":"al","text":"\xff\xfe')
    scratch_kv_client.set(b"board:entry:\xff", b"{}")
    inv = take_inventory(scratch_kv_client, ["messages", "board"])
    messages = inv.types["messages"].decoded
    assert list(messages.records) == [("good",)]
    (bad,) = messages.findings
    assert (bad.kind, bad.key) == ("undecodable", "msg:bad")
    assert bad.raw is not None
    assert "\\xff" in bad.raw
    board = inv.types["board"].decoded.findings
    assert [f.key for f in board if f.kind == "undecodable"] == ["board:entry:\\xff"]


def test_borrowed_keys_count_once_in_the_keyspace(seeded_kv: redis.Redis) -> None:
    """Achievements read the streak keys without claiming them as their own."""
    inv = take_inventory(seeded_kv, ["achievements"])
    assert inv.types["achievements"].keys == {}
    assert inv.types["achievements"].records > 0
    assert MAPPINGS["achievements"].borrows == ("streaks",)


@pytest.mark.parametrize("reads", ["one entry", "every entry"])
def test_a_failing_decoder_fails_the_inventory_without_hanging(
    seeded_kv: redis.Redis, monkeypatch: pytest.MonkeyPatch, reads: str
) -> None:
    """Decoders run in threads; a crash in one is raised to the caller, whether it
    came early or after the decoder read its whole stream (that one once hung)."""

    def broken(entries: Iterable[VariantEntry]) -> Decoded:
        if reads == "one entry":
            next(iter(entries))
        else:
            list(entries)
        raise RuntimeError("decoder bug")

    monkeypatch.setitem(MAPPINGS, "board", dataclasses.replace(MAPPINGS["board"], decoder=broken))
    with pytest.raises(RuntimeError, match="decoder bug"):
        take_inventory(seeded_kv)


@pytest.mark.parametrize("fast", [True, False], ids=["hiredis-reader", "read_response"])
def test_a_key_whose_type_changed_since_it_was_listed_is_skipped_and_the_reads_go_on(
    scratch_kv_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """One command per key in one write: a key that is no longer a list answers
    WRONGTYPE in its place, which skips that key alone; the replies after it are
    still each key's own, and the connection serves the next batch. Both ways of
    taking the replies."""
    monkeypatch.setattr(keyspace, "FAST_REPLIES", fast)
    kv = scratch_kv_client
    kv.rpush("thread:al:bo", b"m1", b"m2")
    kv.set("thread:al:cy", b"now a string")
    kv.rpush("thread:al:dy", b"m3")
    kv.hset("unread:bo", mapping={"al": "2"})
    reader = Reader(kv)
    keys = [b"thread:al:bo", b"thread:al:cy", b"thread:al:gone", b"thread:al:dy"]
    assert reader.types(keys) == ["list", "string", "none", "list"]
    assert reader.read("list", keys) == [[b"m1", b"m2"], None, [], [b"m3"]]
    assert reader.read("hash", [b"unread:bo"]) == [{b"al": b"2"}]
    many = [f"list:{i}".encode() for i in range(3000)]  # replies over several socket reads
    for key in many:
        kv.rpush(key, key * 20)
    assert reader.read("list", many) == [[key * 20] for key in many]
    assert kv.ping()
