"""Properties of every mapping over every KV variant (Hypothesis).

Well-formed keyspaces decode with no error findings and their records survive
canonical -> row -> canonical unchanged; damaged values become findings that
name the key, never exceptions.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.strategies import CORRUPTIONS, KEYSPACES, corrupt_value
from phasegate.findings import Severity
from phasegate.keyspace import KvEntry
from phasegate.mappings import MAPPINGS, classify
from phasegate.mappings.base import VariantEntry

TYPES = sorted(KEYSPACES)
# Values that are JSON text: truncating one must be reported.
JSON_VARIANTS = {"scheme1", "scheme2", "entry", "json", "record", "registry"}


@pytest.mark.parametrize("type_id", TYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_variant_decodes_cleanly_and_round_trips(type_id: str, data: st.DataObject) -> None:
    """Records of well-formed keys survive to_row/from_row unchanged, with no errors."""
    mapping = MAPPINGS[type_id]
    entries = data.draw(KEYSPACES[type_id])
    decoded = mapping.decode(entries)
    errors = [str(f) for f in decoded.findings if f.severity == Severity.ERROR]
    assert errors == []
    for rkey, record in decoded.records.items():
        assert set(record) == set(mapping.column_names)
        assert mapping.record_key(record) == rkey
        assert mapping.from_row(mapping.to_row(record)) == record
        assert decoded.sources[rkey]


@pytest.mark.parametrize("type_id", TYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_strategy_keys_classify_as_the_variant_they_claim(
    type_id: str, data: st.DataObject
) -> None:
    """The strategies and the mappings' key patterns agree on every key."""
    owner = MAPPINGS[type_id].borrows[0] if MAPPINGS[type_id].borrows else type_id
    for variant, entry in data.draw(KEYSPACES[type_id]):
        where = classify(entry.key, entry.rtype)
        assert (where.kind, where.type_id, where.variant) == ("mapped", owner, variant)


@pytest.mark.parametrize("type_id", TYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_values_become_findings_naming_the_key(type_id: str, data: st.DataObject) -> None:
    """Bad JSON, invalid UTF-8, NUL and non-numbers never raise; the key is named."""
    entries: list[VariantEntry] = data.draw(KEYSPACES[type_id])
    if not entries:
        return
    index = data.draw(st.integers(0, len(entries) - 1))
    how = data.draw(st.sampled_from(CORRUPTIONS))
    variant, entry = entries[index]
    damaged = KvEntry(entry.key, entry.rtype, corrupt_value(entry.value, how))
    entries[index] = (variant, damaged)
    decoded = MAPPINGS[type_id].decode(entries)  # must not raise
    reported = [
        f for f in decoded.findings if f.severity == Severity.ERROR and f.key.startswith(entry.key)
    ]
    derived = bool(MAPPINGS[type_id].borrows)  # achievements read only JSON streaks
    if how == "invalid_utf8" and not derived:
        assert reported, f"{how} in {entry.key} was not reported"
    if how == "truncate" and variant in JSON_VARIANTS and entry.rtype == "string":
        assert reported, f"truncated JSON in {entry.key} was not reported"
    for finding in reported:
        assert finding.type_id == type_id
        assert finding.detail


@pytest.mark.parametrize("type_id", TYPES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_order_keys_are_read_in_changes_no_record_source_or_finding(
    type_id: str, data: st.DataObject
) -> None:
    """SCAN's order, and which reader spilled a key first, are not the data: the same
    entries in any order decode to the same records, sources and findings (the users
    decode once kept whichever copy came first where the user hash and the registry
    disagreed)."""
    mapping = MAPPINGS[type_id]
    entries = data.draw(KEYSPACES[type_id])
    shuffled = data.draw(st.permutations(entries))
    one, other = mapping.decode(entries), mapping.decode(shuffled)
    assert one.records == other.records
    assert one.sources == other.sources
    assert one.findings == other.findings
