"""Each mapping decodes the real KV variants the way docs/data-model.md says."""

from __future__ import annotations

from datetime import UTC, date, datetime

from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Decoded, VariantEntry
from phasegate.seed.shapes import dumps

T1 = 1767801301123
T1_DT = datetime(2026, 1, 7, 15, 55, 1, 123000, tzinfo=UTC)


def decode(type_id: str, *entries: tuple[str, str, str, object]) -> Decoded:
    pairs: list[VariantEntry] = [(v, KvEntry(k, t, val)) for v, k, t, val in entries]  # type: ignore[arg-type]
    return MAPPINGS[type_id].decode(pairs)


def kinds(decoded: Decoded) -> list[str]:
    return sorted(f.kind for f in decoded.findings)


def test_messages_scheme3_read_state_comes_from_unread_counts() -> None:
    """The newest `count` scheme-3 messages from a sender are unread; older ones read."""
    elements = [
        dumps(
            {
                "id": f"m{i}",
                "from": "@Al",
                "to": "bo",
                "body": f"t{i}",
                "type": "dm",
                "timestamp": T1 + i,
                "read_at": None,
            }
        )
        for i in range(4)
    ]
    out = decode(
        "messages",
        ("scheme3", "messages:bo", "list", elements),
        ("thread", "thread:al:bo", "list", elements[:2]),
        ("unread", "unread:bo", "hash", {b"al": b"2"}),
    )
    read = {k[0]: r["read"] for k, r in out.records.items()}
    assert read == {"m0": True, "m1": True, "m2": False, "m3": False}
    assert kinds(out) == []


def test_messages_same_id_in_two_schemes_is_merged_and_conflicts_reported() -> None:
    """One id in msg:{id} and vibe:messages is one row; a differing field is a finding."""
    scheme2 = {
        "id": "m1",
        "from": "al",
        "to": "bo",
        "text": "hello",
        "body": "hello",
        "createdAt": T1,
        "read": True,
        "v": 2,
    }
    scheme1 = [
        {
            "id": "m1",
            "from": "al",
            "to": "bo",
            "text": "HELLO",
            "createdAt": "2026-01-07T15:55:01.123Z",
            "read": True,
        }
    ]
    out = decode(
        "messages",
        ("scheme2", "msg:m1", "string", dumps(scheme2)),
        ("scheme1", "vibe:messages", "string", dumps(scheme1)),
    )
    record = out.records[("m1",)]
    assert record["text"] == "hello"
    assert record["created_at"] == T1_DT
    assert record["metadata"] == {"v": 2, "kv_schemes": [1, 2]}
    (conflict,) = out.findings
    assert conflict.kind == "conflicting_copies"
    assert conflict.key == "msg m1"
    assert conflict.field == "text"
    assert "msg:m1 vs vibe:messages#m1" in conflict.detail


def test_messages_mixed_thread_list_and_dangling_ids() -> None:
    """A thread list holding bare ids and JSON objects decodes both; gone ids are info."""
    element = dumps({"id": "m2", "from": "bo", "to": "al", "body": "yo", "timestamp": T1})
    out = decode(
        "messages",
        (
            "scheme2",
            "msg:m1",
            "string",
            dumps({"id": "m1", "from": "al", "to": "bo", "text": "x", "createdAt": T1}),
        ),
        ("thread", "thread:al:bo", "list", [b"m1", element, b"msg_deleted"]),
    )
    assert set(out.records) == {("m1",), ("m2",)}
    (dangling,) = out.findings
    assert (dangling.kind, dangling.severity, dangling.key) == (
        "dangling_id",
        "info",
        "thread:al:bo",
    )
    assert "msg_deleted" in dangling.detail


def test_messages_welcome_dm_is_a_system_message_and_missing_time_stays_null() -> None:
    """The short welcome form sets system_msg; no createdAt means NULL, not now()."""
    welcome = {
        "id": "w1",
        "from": "vibe",
        "to": "al",
        "text": "welcome",
        "read": False,
        "system": True,
    }
    record = decode("messages", ("scheme2", "msg:w1", "string", dumps(welcome))).records[("w1",)]
    assert record["system_msg"] is True
    assert record["created_at"] is None


def test_messages_nul_in_text_is_rejected_with_the_kv_key() -> None:
    """Postgres text rejects NUL: the message becomes a finding naming its KV key."""
    bad = {"id": "m1", "from": "al", "to": "bo", "text": "a\u0000b", "createdAt": T1}
    out = decode("messages", ("scheme2", "msg:m1", "string", dumps(bad)))
    assert out.records == {}
    (finding,) = out.findings
    assert (finding.kind, finding.key, finding.field) == ("rejected_by_postgres", "msg:m1", "text")
    assert finding.raw is not None
    assert "\\x00" in finding.raw


def test_users_merge_hash_and_registry_and_keep_extra_fields() -> None:
    """user:{h} and vibe:handles merge into one row; unknown fields land in metadata."""
    out = decode(
        "users",
        (
            "user_hash",
            "user:Seth",
            "hash",
            {
                b"username": b"Seth",
                b"building": b"null",
                b"createdAt": b"2026-01-07T15:55:01.123Z",
                b"status": b"active",
            },
        ),
        (
            "registry",
            "vibe:handles",
            "hash",
            {
                b"seth": dumps(
                    {
                        "handle": "seth",
                        "registeredAtTs": T1,
                        "isAgent": False,
                        "status": "dormant",
                        "one_liner": "ships",
                        "capabilities": ["dm"],
                    }
                )
            },
        ),
    )
    user = out.records[("seth",)]
    assert user["building"] is None
    assert (user["status"], user["registry_status"]) == ("active", "dormant")
    assert user["created_at"] == user["registered_at"] == T1_DT
    assert user["metadata"] == {"one_liner": "ships", "kv_sources": ["registry", "user"]}
    assert kinds(out) == ["merged_spellings"]


def test_users_disagreeing_sources_are_reported() -> None:
    """The hash wins a disagreement and the registry's value is named in a finding."""
    out = decode(
        "users",
        ("user_hash", "user:al", "hash", {b"publicKey": b"k1"}),
        ("registry", "vibe:handles", "hash", {b"al": dumps({"handle": "al", "publicKey": "k2"})}),
    )
    assert out.records[("al",)]["public_key"] == "k1"
    (conflict,) = out.findings
    assert (conflict.kind, conflict.field, conflict.key) == (
        "conflicting_copies",
        "public_key",
        "vibe:handles#al",
    )


def test_streaks_both_redis_types_and_spellings_keep_the_latest() -> None:
    """HASH and JSON streaks decode; of two spellings the latest lastActive wins."""
    out = decode(
        "streaks",
        (
            "hash",
            "streak:@Seth",
            "hash",
            {b"current": b"1", b"longest": b"9", b"totalDays": b"20", b"lastActive": b"2025-12-01"},
        ),
        (
            "json",
            "streak:seth",
            "string",
            dumps(
                {
                    "current": 7,
                    "longest": 9,
                    "lastActive": "2026-01-07",
                    "activeDays": ["2026-01-07"],
                    "badges": ["verified_builder"],
                }
            ),
        ),
    )
    streak = out.records[("seth",)]
    assert (streak["current_streak"], streak["total_days"]) == (7, None)
    assert streak["active_days"] == [date(2026, 1, 7)]
    assert kinds(out) == ["conflicting_copies", "merged_spellings"]
    conflict = next(f for f in out.findings if f.kind == "conflicting_copies")
    assert conflict.key == "streak:@Seth"


def test_streak_counter_that_is_not_a_number_is_undecodable() -> None:
    """A non-numeric counter names the key and field, and nothing crashes."""
    out = decode("streaks", ("hash", "streak:al", "hash", {b"current": b"twelve"}))
    (finding,) = out.findings
    assert (finding.kind, finding.key, finding.field) == ("undecodable", "streak:al", "current")


def test_achievements_come_from_json_streak_badges() -> None:
    """One row per badge of a JSON streak, unlocked_at NULL (KV never recorded it)."""
    out = decode(
        "achievements",
        (
            "json",
            "streak:al",
            "string",
            dumps(
                {
                    "current": 30,
                    "badges": ["verified_builder", {"id": "dedicated_builder", "unlockedAt": T1}],
                }
            ),
        ),
        ("hash", "streak:bo", "hash", {b"current": b"9"}),
    )
    assert out.records == {
        ("al", "verified_builder"): {
            "handle": "al",
            "badge": "verified_builder",
            "unlocked_at": None,
        },
        ("al", "dedicated_builder"): {
            "handle": "al",
            "badge": "dedicated_builder",
            "unlocked_at": T1_DT,
        },
    }


def test_connections_by_type_not_by_key_shape() -> None:
    """consent:pending:{to} SETs and consent:{from}:{to} STRINGs both feed connections."""
    out = decode(
        "connections",
        (
            "record",
            "consent:al:bo",
            "string",
            dumps({"status": "accepted", "requestedAt": T1, "_source": "v1"}),
        ),
        ("status_set", "consent:accepted:bo", "set", {b"al"}),
        ("status_set", "consent:pending:bo", "set", {b"cy"}),
        ("status_set", "consent:blocked:bo", "set", {b"al"}),
    )
    assert out.records[("al", "bo")]["metadata"] == {"_source": "v1"}
    assert out.records[("cy", "bo")]["status"] == "pending"
    assert "conflicting_copies" in kinds(out)


def test_friends_one_sided_pair_is_reported_and_kept() -> None:
    """A pair written in one direction only is migrated as is and reported."""
    out = decode("friends", ("set", "friends:al", "set", {b"bo"}))
    assert out.records == {("al", "bo"): {"handle": "al", "friend": "bo"}}
    assert kinds(out) == ["one_sided"]


def test_invites_iso_and_ms_copies_that_disagree_are_reported() -> None:
    """created_at and created_at_ts must agree; ISO is kept and the gap reported."""
    value = dumps(
        {
            "code": "VIBE-AAAA-ALAL",
            "created_by": "al",
            "created_at": "2026-01-07T15:55:01.123Z",
            "created_at_ts": T1 + 1000,
            "status": "available",
        }
    )
    out = decode("invites", ("registry", "vibe:invites", "hash", {b"VIBE-AAAA-ALAL": value}))
    assert out.records[("VIBE-AAAA-ALAL",)]["created_at"] == T1_DT
    (finding,) = out.findings
    assert (finding.kind, finding.key, finding.field) == (
        "conflicting_copies",
        "vibe:invites#VIBE-AAAA-ALAL",
        "created_at",
    )


def test_games_players_are_canonical_and_bad_entries_are_findings() -> None:
    """Players fold to canonical handles; a game that is not an object is undecodable."""
    value = dumps({"g1": {"id": "g1", "type": "chess", "players": ["@Al", "bo"]}, "g2": 5})
    out = decode("games", ("registry", "vibe:games", "string", value))
    assert out.records[("g1",)]["players"] == ["al", "bo"]
    undecodable = [f for f in out.findings if f.kind == "undecodable"]
    assert [f.key for f in undecodable] == ["vibe:games#g2"]


def test_board_entry_and_index_lists() -> None:
    """Entries decode; a category list naming an entry of another category is reported."""
    entry = dumps(
        {
            "id": "e1",
            "author": "al",
            "content": "hi",
            "category": "idea",
            "tags": [],
            "timestamp": T1,
        }
    )
    out = decode(
        "board",
        ("entry", "board:entry:e1", "string", entry),
        ("category", "board:category:shipped", "list", [b"e1"]),
        ("feed", "board:entries", "list", [b"e1", b"e0"]),
    )
    assert out.records[("e1",)]["created_at"] == T1_DT
    assert kinds(out) == ["dangling_id", "index_mismatch"]
