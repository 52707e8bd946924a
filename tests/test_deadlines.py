"""A frozen store fails the gate within the store timeout, once, naming the store and
what it was doing; data nested deep enough to reach a recursion limit is a finding."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import orjson
import pytest

from fixtures.migration import Migration
from phasegate.errors import StoreTimeoutError
from phasegate.faults import FaultProxy
from phasegate.gates.phase_a import PhaseA
from phasegate.inventory import Inventory, take_inventory
from phasegate.stores import connect_kv, connect_pg
from tests.test_phase_a_gate import SEED

TIMEOUT_S = 1.5


def test_a_frozen_redis_fails_within_the_deadline_once(migration: Migration) -> None:
    """Redis stalls mid-gate: the first check fails within a few timeouts naming Redis
    and the command; every later check fails at once with the same error."""
    with FaultProxy.before(migration.kv_url) as proxy:
        kv = connect_kv(proxy.url_for(migration.kv_url), timeout_s=TIMEOUT_S)
        gate = PhaseA(kv, migration.pg, SEED, 10.0, timeout_s=TIMEOUT_S)
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(
            StoreTimeoutError, match=r"Redis at 127\.0\.0\.1:\d+/\d+ did not answer"
        ):
            gate.run("counts", "messages")
        assert time.monotonic() - started < 10 * TIMEOUT_S
        again = time.monotonic()
        with pytest.raises(StoreTimeoutError):
            gate.run("sample", "users")
        assert time.monotonic() - again < 0.5
        kv.close()


def test_a_frozen_postgres_fails_within_the_deadline_naming_the_table(
    migration: Migration,
) -> None:
    """Postgres stalls while its rows stream: the pass fails naming Postgres and the table."""
    with FaultProxy.before(migration.pg_url) as proxy:
        pg = connect_pg(proxy.url_for(migration.pg_url))
        gate = PhaseA(migration.kv, pg, SEED, 10.0, timeout_s=TIMEOUT_S)
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError, match=r"Postgres at .* while streaming the rows of"):
            gate.run("counts", "messages")
        assert time.monotonic() - started < 10 * TIMEOUT_S
        proxy.heal()
        pg.close()


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("levels", [333, 1024, 5000])
def test_deeply_nested_json_is_a_finding_not_a_hang(migration: Migration, levels: int) -> None:
    """A message whose payload nests hundreds of levels: the inventory and the gate
    finish, and name the key as undecodable; the other messages are untouched."""
    body = orjson.dumps({"id": "deep1", "from": "al", "to": "bo", "text": "x", "payload": 0})
    migration.kv.set("msg:deep1", body.replace(b'"payload":0', b'"payload":' + _deep(levels)))
    box: list[Inventory] = []
    reader = threading.Thread(target=lambda: box.append(take_inventory(migration.kv)), daemon=True)
    reader.start()
    reader.join(120)
    assert not reader.is_alive(), "the inventory hung"
    findings = [f for f in box[0].findings if f.key == "msg:deep1"]
    assert [f.kind for f in findings] == ["undecodable"]
    assert "nested deeper than 100 levels" in findings[0].detail
    coverage = PhaseA(migration.kv, migration.pg, SEED, 10.0).run("coverage", "messages")
    assert coverage.status == "fail"
    assert "msg:deep1" in coverage.explain()


def test_a_decoder_that_breaks_names_the_key_it_broke_on() -> None:
    """A decoder bug (never bad data: that is a finding) names the entry it broke on."""
    from dataclasses import replace

    from phasegate.keyspace import KvEntry
    from phasegate.mappings import MAPPINGS
    from phasegate.mappings.base import Decoded, VariantEntry
    from phasegate.parity.decode import decode_naming_the_key

    def brittle(entries: Iterable[VariantEntry]) -> Decoded:
        for _variant, entry in entries:
            if entry.key == "friends:bo":
                raise KeyError("boom")
        return Decoded()

    mapping = replace(MAPPINGS["friends"], decoder=brittle)
    entries = [
        ("set", KvEntry("friends:al", "set", {b"bo"})),
        ("set", KvEntry("friends:bo", "set", {b"al"})),
    ]
    with pytest.raises(RuntimeError, match=r"decoding friends broke on key friends:bo \(set\)"):
        decode_naming_the_key(mapping, entries)


@pytest.mark.parametrize(
    ("pytest_status", "verdict", "phase", "code"),
    [
        (0, "pass", "A", 0),
        (1, "fail", "A", 1),
        (1, "error", "A", 2),
        (0, "inconclusive", "A", 3),
        (2, "pass", "A", 2),  # interrupted (the gate deadline)
        (3, "pass", "A", 2),  # a pytest internal error is never "inconclusive"
        (1, "pass", None, 1),  # without --phase a library test failed
    ],
)
def test_the_exit_code_follows_the_verdict(
    pytest_status: int, verdict: str, phase: str | None, code: int
) -> None:
    """0 pass, 1 fail, 2 error, 3 inconclusive, the same as the CLI's codes."""
    from phasegate.plugin import _exit_status

    assert _exit_status(pytest_status, verdict, phase) == code
