"""The seed generator: deterministic per seed, every variant at every scale."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest
import redis

from fixtures.stores import ANCHOR_MS
from phasegate.handles import canonical_handle
from phasegate.mappings import KV_ONLY, MAPPINGS, classify
from phasegate.seed.generator import SCALES, SPEC_SCALES, generate
from phasegate.seed.writer import Keyspace

ALL_VARIANTS = {(type_id, p.variant) for type_id, m in MAPPINGS.items() for p in m.patterns}


@cache
def keyspace(scale: str, seed: int = 7) -> Keyspace:
    return generate(scale, seed, ANCHOR_MS)


def typed_keys(ks: Keyspace) -> list[tuple[str, str]]:
    return [(key, rtype) for rtype, key, _value in ks.typed()]


def test_same_seed_same_keyspace_other_seed_other_keyspace() -> None:
    """Determinism: (seed, scale, anchor) fixes every byte."""
    again = generate("now", 7, ANCHOR_MS)
    first = keyspace("now")
    assert again.strings == first.strings
    assert again.hashes == first.hashes
    assert again.lists == first.lists
    assert again.sets == first.sets
    assert again.ttls_ms == first.ttls_ms
    assert generate("now", 8, ANCHOR_MS).strings != first.strings


@pytest.mark.parametrize("scale", SPEC_SCALES)
def test_every_variant_appears_at_every_scale(scale: str) -> None:
    """All message schemes, both streak types, both consent schemes, indexes, KV-only."""
    seen: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    for key, rtype in typed_keys(keyspace(scale)):
        where = classify(key, rtype)
        kinds[where.kind] += 1
        if where.kind == "mapped":
            assert where.type_id is not None
            assert where.variant is not None
            seen[(where.type_id, where.variant)] += 1
    assert ALL_VARIANTS - set(seen) == set()
    assert kinds["unmapped"] == kinds["wrong_type"] == 0
    assert kinds["kv_only"] >= len(KV_ONLY)


def test_volumes_follow_the_spec() -> None:
    """The now and 6mo scales hold the spec's counts of users and messages."""
    for scale in ("now", "6mo"):
        ks, size = keyspace(scale), SCALES[scale]
        handles = {canonical_handle(k.split(":", 1)[1]) for k in ks.hashes if k.startswith("user:")}
        handles |= {canonical_handle(f) for f in ks.hashes["vibe:handles"]}
        assert len(handles) >= size.users
        ids = {m["id"] for m in json.loads(ks.strings["vibe:messages"])}
        ids |= {k.removeprefix("msg:") for k in ks.strings if k.startswith("msg:")}
        for key, elements in ks.lists.items():
            if key.startswith("messages:"):
                ids |= {json.loads(e)["id"] for e in elements}
        assert len(ids) == size.messages


def test_messy_real_shapes_are_present() -> None:
    """Mixed thread lists, null hash fields, hyphenated handles, emoji, long text, TTLs."""
    ks = keyspace("6mo")
    mixed = [
        v
        for k, v in ks.lists.items()
        if k.startswith("thread:") and {x.startswith(b"{") for x in v} == {True, False}
    ]
    assert mixed
    assert any(v == b"null" for h in ks.hashes.values() for v in h.values())
    assert any("-" in k for k in ks.hashes if k.startswith("user:"))
    assert any(k != k.lower() for k in ks.hashes if k.startswith("user:"))
    assert any("🚀".encode() in v or "✨".encode() in v for v in ks.strings.values())
    assert max(len(v) for k, v in ks.strings.items() if k.startswith("msg:")) > 1000
    assert any(k.startswith("streak:@") for k in [*ks.hashes, *ks.strings])
    assert ks.ttls_ms
    assert all(t > 0 for t in ks.ttls_ms.values())


def test_written_keyspace_matches_what_was_generated(scratch_kv_client: redis.Redis) -> None:
    """Pipelined writes land every key with its type and TTL."""
    ks = keyspace("now")
    assert ks.write(scratch_kv_client) == len(ks)
    assert scratch_kv_client.dbsize() == len(ks)
    for key, rtype in typed_keys(ks)[::97]:
        assert scratch_kv_client.type(key) == rtype.encode(), key
    ttl_key = next(iter(ks.ttls_ms))
    assert 0 < scratch_kv_client.pttl(ttl_key) <= ks.ttls_ms[ttl_key]
