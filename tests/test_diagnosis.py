"""The diagnosis: differences grouped by KV variant, field and cause over the whole
comparison pass, with counts and shares, before the examples (in the check's
details, so in every report format, and as groups in summary.json)."""

from __future__ import annotations

from fixtures.migration import Migration
from phasegate.gates.phase_a import PhaseA
from phasegate.inventory import take_inventory
from phasegate.mappings import variant_name

SEED = 7


def _sources(m: Migration) -> dict[str, str]:
    """Each message id and the variant of the KV key it was decoded from."""
    decoded = take_inventory(m.kv).types["messages"].decoded
    return {key[0]: variant_name("messages", src) for key, src in decoded.sources.items()}


def test_missing_records_are_diagnosed_by_variant(migration: Migration) -> None:
    """A backfill that skipped two of the three schemes: every missing record is
    attributed to its variant, each at 100% of it, and the third variant at 0."""
    sources = _sources(migration)
    lost = sorted(i for i, v in sources.items() if v.split()[0] in ("scheme1", "scheme2"))
    kept = {v for v in sources.values() if v.split()[0] not in ("scheme1", "scheme2")}
    assert lost
    assert kept
    migration.pg.execute("DELETE FROM messages WHERE id = ANY(%s)", (lost,))
    result = PhaseA(migration.kv, migration.pg, SEED, 10.0, True).run("counts", "messages")
    assert result.status == "fail"
    first = result.details[0]
    assert first.startswith(f"missing in Postgres: {len(lost)} of {len(sources)} records;")
    for variant in ("scheme1 vibe:messages", "scheme2 msg:*"):
        n = sum(1 for i in lost if sources[i] == variant)
        assert f"{variant} {n} (100% of that variant)" in first
    for variant in kept:
        assert f"{variant} 0" in first
    groups = {g["variant"]: g for g in result.metrics["diagnosis"]}
    assert groups["scheme2 msg:*"]["share_percent"] == 100.0
    assert sum(g["count"] for g in groups.values()) == len(lost)


def test_a_changed_field_is_diagnosed_with_its_values(migration: Migration) -> None:
    """read flipped in Postgres for every scheme-2 message read in KV: one group,
    field read, KV true, Postgres false, counted over the whole full diff."""
    sources = _sources(migration)
    scheme2 = [i for i, v in sources.items() if v == "scheme2 msg:*"]
    flipped = migration.pg.execute(
        "UPDATE messages SET read = false WHERE id = ANY(%s) AND read RETURNING id", (scheme2,)
    ).fetchall()
    assert len(flipped) > 10
    result = PhaseA(migration.kv, migration.pg, SEED, 10.0, True).run("full", "messages")
    assert result.status == "fail"
    assert result.details[0] == (
        f"field read differs on {len(flipped)} of {len(scheme2)} scheme2 msg:* records: "
        "KV true, Postgres false"
    )
