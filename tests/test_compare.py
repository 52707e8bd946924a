"""The bucketed comparison pass: exact (bucket-wise decode = whole decode), and it bites."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.migration import Migration, make
from fixtures.strategies import KEYSPACES
from phasegate.inventory import take_inventory
from phasegate.mappings import MAPPINGS, TYPE_IDS
from phasegate.mappings.base import VariantEntry
from phasegate.parity.buckets import record_bucket, split
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList
from phasegate.servers import Sandbox
from tests.test_phase_a_gate import sampled_message


@pytest.mark.parametrize("type_id", sorted(KEYSPACES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
        for bucket, part in split(MAPPINGS[owner], variant, entry, buckets):
            parts[bucket].append((variant, part))
    merged = {}
    for bucket, mine in parts.items():
        for key, record in mapping.decode(mine).records.items():
            assert key not in merged, f"{key} decoded in two buckets"
            assert record_bucket(mapping, record, buckets) == bucket
            merged[key] = record
    assert merged == whole


SCOPE = Scope(7, 10.0, datetime.now(UTC), AllowList())


def test_a_clean_migration_compares_everything_and_finds_nothing(sandbox: Sandbox) -> None:
    """Every record of every type compared, no difference, counts as the inventory's."""
    for m in make(sandbox):
        assert m.second is not None
        result = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=5)
        inventory = take_inventory(m.kv, TYPE_IDS)
        assert result.keyspace.total_keys == m.kv.dbsize()
        assert result.keyspace.unmapped.count == 0
        for type_id in TYPE_IDS:
            c = result.types[type_id]
            assert c.kv_records == inventory.types[type_id].records, type_id
            assert c.compared["full"] >= c.kv_records
            assert c.differences["full"].count == 0, c.differences["full"].examples
            assert c.errors.count == 0


@pytest.mark.parametrize("work", [4, 512])
def test_a_changed_a_dropped_and_an_extra_row_are_each_reported(
    sandbox: Sandbox, work: int
) -> None:
    """Differences land in the right subsets: full always, sample only when sampled;
    with few work buckets or as many as a huge keyspace gets (small spill chunks)."""
    for m in make(sandbox):
        changed, dropped = sampled_message(m), sampled_message(m, in_sample_=False)
        _defects(m, changed, dropped)
        result = compare(m.kv, m.pg, ["messages", "friends"], SCOPE, buckets=work)
        messages = result.types["messages"]
        full = "\n".join(messages.differences["full"].examples)
        assert messages.differences["full"].count == 2
        assert f"messages {changed} (" in full
        assert "field text" in full
        assert dropped in full
        assert messages.differences["sample"].count == 1  # only the sampled one
        assert messages.missing.count == 1
        assert dropped in messages.missing.examples[0]
        friends = result.types["friends"]
        assert friends.extra.count == 1
        assert "in Postgres, not in KV" in friends.differences["full"].examples[0]


def test_the_pass_in_this_process_is_the_pass_in_workers(sandbox: Sandbox) -> None:
    """workers=0 reads and judges in this process, with the same answer as two worker
    processes (it once compared nothing at all and reported no difference)."""
    for m in make(sandbox):
        changed, dropped = sampled_message(m), sampled_message(m, in_sample_=False)
        _defects(m, changed, dropped)
        here = compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=4, workers=0)
        assert here.types["messages"].differences["full"].count == 2
        assert here.types["messages"].missing.count == 1
        assert here.types["friends"].extra.count == 1
        assert here == compare(m.kv, m.pg, TYPE_IDS, SCOPE, buckets=4, workers=2)


def _defects(m: Migration, changed: str, dropped: str) -> None:
    m.pg.execute("UPDATE messages SET text = 'tampered' WHERE id = %s", (changed,))
    m.pg.execute("DELETE FROM messages WHERE id = %s", (dropped,))
    m.pg.execute("ALTER TABLE friends DROP CONSTRAINT friends_handle_fkey")
    m.pg.execute("INSERT INTO friends VALUES ('ghost', 'vibe')")


def test_a_type_whose_keys_do_not_name_its_records_needs_a_router() -> None:
    """No silent fallback: a container key without a router is a declaration error."""
    from dataclasses import replace

    from phasegate.keyspace import KvEntry

    games = replace(MAPPINGS["games"], router=None)
    with pytest.raises(ValueError, match="games: variant 'registry' needs a router"):
        list(split(games, "registry", KvEntry("vibe:games", "string", b"{}"), 4))
    assert MAPPINGS["board"].index_variants == {"feed", "category", "user"}
    # A key that ends in its record key needs none: streak:{handle} goes by its handle.
    streaks = MAPPINGS["streaks"]
    assert streaks.router is None
    assert [b for b, _ in split(streaks, "hash", KvEntry("streak:Al", "hash", {}), 4)] == [
        record_bucket(streaks, {"handle": "al"}, 4)
    ]
