"""Bad values lose nothing: one bad element of a container is one finding and the
rest decode; what cannot be decoded counts as missing; implausible values are
warnings; secret fields never reach a finding."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from fixtures.migration import Migration
from phasegate.gates.phase_a import PhaseA
from phasegate.inventory import take_inventory
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS
from tests.test_phase_a_gate import SEED


def test_one_bad_byte_in_vibe_messages_loses_one_element_not_the_key(
    migration: Migration,
) -> None:
    """Invalid UTF-8 in one element of the vibe:messages array: every other message
    still decodes, the bad one is a finding at its index, and counts fail by one."""
    kv = migration.kv
    before = take_inventory(kv, ["messages"]).types["messages"].records
    raw = kv.get("vibe:messages")
    assert isinstance(raw, bytes)
    elements = orjson.loads(raw)
    bad = orjson.dumps(
        {"id": "msg_badbyte", "from": "al", "to": "bo", "text": "caf\x00", "createdAt": None}
    ).replace(b"caf\\u0000", b"caf\xff")
    kv.set("vibe:messages", b"[" + b",".join([*map(orjson.dumps, elements), bad]) + b"]")
    inventory = take_inventory(kv, ["messages"]).types["messages"]
    assert inventory.records == before
    undecodable = [f for f in inventory.decoded.findings if f.kind == "undecodable"]
    assert [(f.key, f.detail) for f in undecodable] == [
        ("vibe:messages#msg_badbyte", "invalid UTF-8 in this element")
    ]
    assert undecodable[0].raw is not None
    assert "\\xff" in undecodable[0].raw
    gate = PhaseA(kv, migration.pg, SEED, 10.0)
    counts = gate.run("counts", "messages")
    assert counts.status == "fail"
    assert f"KV {before + 1:,} records (1 could not be decoded)" in counts.message
    assert "vibe:messages#msg_badbyte could not be decoded" in counts.explain()
    assert gate.run("coverage", "messages").status == "fail"


def test_one_bad_game_in_vibe_games_loses_only_that_game(migration: Migration) -> None:
    """The same for the vibe:games object: one game is a finding, the others decode."""
    kv = migration.kv
    raw = kv.get("vibe:games")
    assert isinstance(raw, bytes)
    games = orjson.loads(raw)
    games["game_bad"] = {"id": "game_bad", "type": "chess", "players": ["al"], "state": "X"}
    kv.set("vibe:games", orjson.dumps(games).replace(b'"state":"X"', b'"state":"\xfe"'))
    inventory = take_inventory(kv, ["games"]).types["games"]
    assert inventory.records == len(games) - 1
    assert [f.key for f in inventory.decoded.findings if f.kind == "undecodable"] == [
        "vibe:games#game_bad"
    ]


def test_implausible_values_are_warnings_and_still_migrated() -> None:
    """A 1970 timestamp, a far-future one and a handle with a space: warnings naming
    key and field; the records are kept as they are."""
    decoded = MAPPINGS["messages"].decode(
        [
            (
                "scheme2",
                KvEntry(
                    "msg:m1",
                    "string",
                    b'{"id":"m1","from":"al","to":"sam smith","text":"x",'
                    b'"createdAt":"1970-01-01T00:00:01Z","readAt":"2150-01-01T00:00:00Z"}',
                ),
            )
        ]
    )
    assert ("m1",) in decoded.records
    assert decoded.records[("m1",)]["created_at"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    warnings = sorted(
        (f.key, f.field, f.detail.split(" ")[0])
        for f in decoded.findings
        if f.kind == "implausible_value"
    )
    assert warnings == [
        ("msg:m1", "created_at", "timestamp"),
        ("msg:m1", "read_at", "timestamp"),
        ("msg:m1", "to_user", "handle"),
    ]
    assert all(f.severity == "warning" for f in decoded.findings if f.kind == "implausible_value")


def test_a_record_hash_with_very_many_fields_is_a_warning() -> None:
    """A user hash that grew 5,000 stray fields is migrated, with a warning naming it."""
    fields = {f"x{i}".encode(): b"1" for i in range(5000)}
    decoded = MAPPINGS["users"].decode(
        [("user_hash", KvEntry("user:al", "hash", {b"username": b"al", **fields}))]
    )
    assert ("al",) in decoded.records
    assert any(
        f.kind == "implausible_value" and f.key == "user:al" and "fields (over 1,000)" in f.detail
        for f in decoded.findings
    )


def test_secret_fields_never_reach_a_finding() -> None:
    """An undecodable user hash holding a recoveryKey: the finding's excerpt masks it."""
    decoded = MAPPINGS["users"].decode(
        [
            (
                "user_hash",
                KvEntry(
                    "user:al",
                    "hash",
                    {b"username": b"al", b"recoveryKey": b"RK-Secr3t", b"createdAt": b"notadate"},
                ),
            )
        ]
    )
    assert decoded.findings
    for finding in decoded.findings:
        assert "RK-Secr3t" not in str(finding)
        assert "RK-Secr3t" not in (finding.raw or "")


def test_conflicting_copies_show_both_values_and_mask_secrets() -> None:
    """Two copies of one user disagree: the finding shows the two values of that field
    only (a secret field as length and digest), never the whole other record."""
    decoded = MAPPINGS["users"].decode(
        [
            ("user_hash", KvEntry("user:al", "hash", {b"username": b"al", b"building": b"x"})),
            ("user_hash", KvEntry("user:@Al", "hash", {b"username": b"al", b"building": b"y"})),
        ]
    )
    conflicts = [f for f in decoded.findings if f.kind == "conflicting_copies"]
    assert conflicts, [str(f) for f in decoded.findings]
    assert (
        'kept "x", other "y"' in conflicts[0].detail or 'kept "y", other "x"' in conflicts[0].detail
    )
    assert "{" not in conflicts[0].detail
