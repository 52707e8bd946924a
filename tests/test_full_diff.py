"""The bucketed full diff: exact (bucket-wise decode = whole decode) and it bites."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.migration import Migration
from fixtures.strategies import KEYSPACES
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import VariantEntry
from phasegate.parity.buckets import record_bucket, split
from phasegate.parity.full import full_diff
from phasegate.servers import Sandbox
from tests.test_phase_a_gate import make, sampled_message


@pytest.mark.parametrize("type_id", sorted(KEYSPACES))
@settings(max_examples=60, deadline=None)
@given(data=st.data(), buckets=st.sampled_from([1, 3, 7]))
def test_decoding_bucket_by_bucket_gives_the_whole_decode(
    type_id: str, data: st.DataObject, buckets: int
) -> None:
    """Every record lands whole in the bucket its key hashes to, whatever the split."""
    mapping = MAPPINGS[type_id]
    entries = data.draw(KEYSPACES[type_id])
    whole = mapping.decode(entries).records
    parts: dict[int, list[VariantEntry]] = defaultdict(list)
    owner = mapping.borrows[0] if mapping.borrows else type_id
    for variant, entry in entries:
        for bucket, part in split(owner, variant, entry, buckets):
            parts[bucket].append((variant, part))
    merged = {}
    for bucket, mine in parts.items():
        for key, record in mapping.decode(mine).records.items():
            assert key not in merged, f"{key} decoded in two buckets"
            assert record_bucket(type_id, record, buckets) == bucket
            merged[key] = record
    assert merged == whole


def test_full_diff_of_a_clean_migration_compares_everything(sandbox: Sandbox) -> None:
    """Every record of every type compared, no difference, counts as the inventory's."""
    for m in make(sandbox):
        assert m.second is not None
        result = full_diff(m.kv, m.pg, TYPE_IDS, buckets=5)
        for type_id in TYPE_IDS:
            records = m.second.inventory.types[type_id].records
            assert result[type_id].kv_records == records, type_id
            assert result[type_id].differences == 0, result[type_id].examples


def test_full_diff_finds_a_changed_a_dropped_and_an_extra_row(sandbox: Sandbox) -> None:
    """The bucketed diff names the same defects as the in-memory one."""
    for m in make(sandbox):
        changed, dropped = sampled_message(m), sampled_message(m, in_sample_=False)
        _defects(m, changed, dropped)
        result = full_diff(m.kv, m.pg, ["messages", "friends"], buckets=4)
        messages = "\n".join(result["messages"].examples)
        assert result["messages"].differences == 2
        assert f"messages {changed} (" in messages
        assert "field text" in messages
        assert f"{dropped}" in messages
        assert "missing in Postgres" in messages
        assert result["friends"].differences == 1
        assert "in Postgres, not in KV" in result["friends"].examples[0]


def _defects(m: Migration, changed: str, dropped: str) -> None:
    m.pg.execute("UPDATE messages SET text = 'tampered' WHERE id = %s", (changed,))
    m.pg.execute("DELETE FROM messages WHERE id = %s", (dropped,))
    m.pg.execute("ALTER TABLE friends DROP CONSTRAINT friends_handle_fkey")
    m.pg.execute("INSERT INTO friends VALUES ('ghost', 'vibe')")
