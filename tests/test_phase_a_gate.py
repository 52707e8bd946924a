"""The Phase A gate fails on each seeded defect, naming type, key and field, and
passes on a clean migration for several fixture seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from fixtures.migration import Migration, make, rerun_evidence
from phasegate import mappings
from phasegate.gates.phase_a import CHECKS, PhaseA
from phasegate.inventory import take_inventory
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import Decoded, VariantEntry
from phasegate.parity.decode import in_sample
from phasegate.servers import Sandbox

HOUR_MS = 3_600_000
SEED = 7


def gate(m: Migration, *, full: bool = True) -> PhaseA:
    """The gate as it would run now against these stores (KV read afresh)."""
    return PhaseA(m.kv, m.pg, SEED, 10.0, full, rerun=rerun_evidence(m))


def sampled_message(m: Migration, *, recent: bool | None = None, in_sample_: bool = True) -> str:
    """A message id in (or out of) the 10% sample, optionally from the last 24 hours."""
    rows = m.pg.execute(
        "SELECT id, created_at > now() - interval '24 hours' FROM messages "
        "WHERE created_at IS NOT NULL ORDER BY id"
    ).fetchall()
    for msg_id, is_recent in rows:
        if in_sample(SEED, (msg_id,), 10.0) == in_sample_ and recent in (None, is_recent):
            return str(msg_id)
    raise AssertionError("the fixture has no such message")


def failing(result_text: str, *needles: str) -> None:
    for needle in needles:
        assert needle in result_text, f"{needle!r} not in:\n{result_text}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clean_migration_passes_every_check(sandbox: Sandbox, seed: int) -> None:
    """Every check of every type passes (or is not applicable) on a clean migration."""
    for m in make(sandbox, seed):
        g = gate(m)
        results = [g.run("coverage", "keyspace")] + [g.run(c, t) for t in TYPE_IDS for c in CHECKS]
        failed = [r.explain() for r in results if r.status == "fail"]
        assert failed == []
        ran = {(r.type_id, r.check) for r in results if r.status == "pass"}
        assert ("messages", "recency") in ran
        assert ("messages", "full") in ran
        assert ("messages", "rerun") in ran


def test_a_dropped_row_fails_counts_naming_the_key(migration: Migration) -> None:
    """One message deleted from Postgres: counts fail and name it with its KV key."""
    victim = sampled_message(migration)
    migration.pg.execute("DELETE FROM messages WHERE id = %s", (victim,))
    result = gate(migration).run("counts", "messages")
    assert result.status == "fail"
    failing(result.explain(), "messages/counts", "999 rows", f"missing in Postgres: {victim}")
    sample = gate(migration).run("sample", "messages")
    failing(sample.explain(), victim, "missing in Postgres", "did not write it")


def test_a_changed_field_fails_the_sample_naming_the_field(migration: Migration) -> None:
    """A changed text in a sampled record is named with type, key and field."""
    victim = sampled_message(migration)
    migration.pg.execute("UPDATE messages SET text = 'tampered' WHERE id = %s", (victim,))
    result = gate(migration).run("sample", "messages")
    assert result.status == "fail"
    failing(result.explain(), f"messages {victim}", "field text", 'Postgres "tampered"')


def test_a_timestamp_shifted_by_one_second_is_caught(migration: Migration) -> None:
    """created_at off by exactly 1 s: field named, precision named as the likely cause."""
    victim = sampled_message(migration)
    migration.pg.execute(
        "UPDATE messages SET created_at = created_at + interval '1 second' WHERE id = %s",
        (victim,),
    )
    result = gate(migration).run("sample", "messages")
    failing(result.explain(), victim, "field created_at", "shifted by +1.000 s")


def test_swapped_from_and_to_are_named_as_swapped(migration: Migration) -> None:
    """from_user and to_user exchanged: both fields named, the swap stated."""
    victim = sampled_message(migration)
    migration.pg.execute(
        "ALTER TABLE messages DROP CONSTRAINT messages_from_user_fkey, "
        "DROP CONSTRAINT messages_to_user_fkey"
    )
    migration.pg.execute(
        "UPDATE messages SET from_user = to_user, to_user = from_user WHERE id = %s", (victim,)
    )
    result = gate(migration).run("sample", "messages")
    failing(result.explain(), victim, "field from_user", "from_user and to_user are swapped")


def test_created_at_replaced_by_now_is_recognised(migration: Migration) -> None:
    """The app's own backfill bug: an old message stamped with now()."""
    victim = sampled_message(migration, recent=False)
    migration.pg.execute("UPDATE messages SET created_at = now() WHERE id = %s", (victim,))
    result = gate(migration).run("sample", "messages")
    failing(result.explain(), victim, "field created_at", "replaced by now()")


def test_an_orphan_handle_fails_refint(migration: Migration) -> None:
    """A message naming a handle that is not a user, with its key missing, fails refint."""
    victim = sampled_message(migration)
    migration.pg.execute("ALTER TABLE messages DROP CONSTRAINT messages_from_user_fkey")
    migration.pg.execute("UPDATE messages SET from_user = 'ghost' WHERE id = %s", (victim,))
    result = gate(migration).run("refint", "messages")
    assert result.status == "fail"
    failing(
        result.explain(),
        f"messages {victim} field from_user: handle 'ghost' is not in users",
        "messages.from_user: no foreign key",
    )


def test_an_unmapped_key_pattern_fails_coverage(migration: Migration) -> None:
    """A key no mapping knows and the KV-only list lacks fails the keyspace check."""
    migration.kv.set("cart:42", b'{"items":[]}')
    result = gate(migration).run("coverage", "keyspace")
    assert result.status == "fail"
    failing(result.explain(), "cart:42", "matches no data type")


def test_an_undecodable_value_fails_coverage_and_is_kept(migration: Migration) -> None:
    """Bad JSON under msg:* is an error naming the key, with the raw bytes kept."""
    migration.kv.set("msg:broken", b'{"id":"broken","from":"al","to":')
    result = gate(migration).run("coverage", "messages")
    assert result.status == "fail"
    failing(result.explain(), "undecodable at msg:broken", "bad JSON")
    raw = [
        f.raw for f in take_inventory(migration.kv, ["messages"]).findings if f.key == "msg:broken"
    ]
    assert raw == ['{"id":"broken","from":"al","to":']


def test_a_missing_recent_record_fails_recency_though_the_sample_passes(
    migration: Migration,
) -> None:
    """A last-24-hours record outside the 10% sample: the sample misses it, recency not."""
    victim = sampled_message(migration, recent=True, in_sample_=False)
    migration.pg.execute("DELETE FROM messages WHERE id = %s", (victim,))
    g = gate(migration)
    assert g.run("sample", "messages").status == "pass"
    result = g.run("recency", "messages")
    assert result.status == "fail"
    failing(result.explain(), "messages/recency", victim, "missing in Postgres")


def test_a_rerun_that_is_not_a_no_op_fails(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that stamps missing read_at with now() changes rows on every run."""
    honest = MAPPINGS["messages"]

    def stamps_now(entries: Iterable[VariantEntry]) -> Decoded:
        out = honest.decoder(entries)
        for record in out.records.values():
            if record["read_at"] is None:
                record["read_at"] = datetime.now(UTC)
        return out

    buggy = dataclasses.replace(honest, decoder=stamps_now)
    monkeypatch.setitem(mappings.MAPPINGS, "messages", buggy)
    monkeypatch.setattr("phasegate.backfill.WORKERS", 0)  # decode here, with the bug
    for m in make(sandbox):
        assert m.second is not None
        assert m.second.types["messages"].updated > 0
        result = gate(m).run("rerun", "messages")
        assert result.status == "fail"
        failing(result.explain(), "second backfill changed", "field read_at", "not deterministic")
