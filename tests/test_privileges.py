"""The gate runs with least privilege: a Redis ACL user with only the documented
commands and a SELECT-only Postgres role; one command less fails clearly, naming
the user, the command and the key, never as "cannot reach"."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from fixtures.migration import Migration
from phasegate import doctor
from phasegate.errors import PermissionRefusedError
from phasegate.gates.phase_a import CHECKS, PhaseA
from phasegate.mappings import TYPE_IDS
from phasegate.stores import connect_kv, connect_pg
from tests.test_phase_a_gate import SEED

PASSWORD = "pw-" + secrets.token_hex(4)


def _as_user(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    auth = f"{user}:{password}@" if password else f"{user}@"
    return urlunsplit(parts._replace(netloc=auth + host))


@pytest.fixture
def acl_user(migration: Migration) -> Iterator[str]:
    """A Redis user with exactly the commands `phasegate doctor` documents (deleted after)."""
    name = "phasegate_test_" + secrets.token_hex(4)
    line = doctor.acl_lines()[0].replace("phasegate_gate", name).replace("CHANGE-ME", PASSWORD)
    migration.kv.execute_command(*line.split())  # type: ignore[no-untyped-call]
    yield name
    migration.kv.execute_command("ACL", "DELUSER", name)  # type: ignore[no-untyped-call]


def _gate_results(kv: redis.Redis, pg: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    gate = PhaseA(kv, pg, SEED, 10.0, full=True)
    results = [gate.run("coverage", "keyspace")] + [
        gate.run(c, t) for t in TYPE_IDS for c in CHECKS
    ]
    return [r.explain() for r in results if r.status == "fail"]


def test_the_gate_passes_as_the_documented_acl_user(migration: Migration, acl_user: str) -> None:
    """Only the documented commands (and a SELECT-only role): every check passes."""
    kv = connect_kv(_as_user(migration.kv_url, acl_user, PASSWORD))
    assert _gate_results(kv, migration.pg) == []
    kv.close()


@pytest.mark.parametrize("command", ["lrange", "hgetall", "mget"])
def test_one_read_command_less_names_user_command_and_key(
    migration: Migration, acl_user: str, command: str
) -> None:
    """A read refused: PermissionRefusedError naming the user and the command."""
    migration.kv.execute_command("ACL", "SETUSER", acl_user, f"-{command}")  # type: ignore[no-untyped-call]
    kv = connect_kv(_as_user(migration.kv_url, acl_user, PASSWORD))
    with pytest.raises(PermissionRefusedError) as refused:
        PhaseA(kv, migration.pg, SEED, 10.0).run("counts", "messages")
    message = str(refused.value)
    assert f"Redis user {acl_user} may not run" in message
    assert command.upper() in message
    assert " on " in message
    kv.close()


def test_no_ping_is_a_refusal_not_unreachable(migration: Migration, acl_user: str) -> None:
    """-ping: the server answered, so the error says refused, with the ACL hint."""
    migration.kv.execute_command("ACL", "SETUSER", acl_user, "-ping")  # type: ignore[no-untyped-call]
    with pytest.raises(PermissionRefusedError, match="may not run PING") as refused:
        connect_kv(_as_user(migration.kv_url, acl_user, PASSWORD))
    assert "cannot reach" not in str(refused.value)
    assert "phasegate doctor" in str(refused.value)


@pytest.fixture
def select_only_role(migration: Migration) -> Iterator[str]:
    """A Postgres role with the documented gate GRANTs only (dropped after)."""
    role = "phasegate_test_" + secrets.token_hex(4)
    database = migration.pg.info.dbname
    migration.pg.execute(f'CREATE ROLE "{role}" LOGIN')
    for line in doctor.grant_lines(f'"{database}"')[2:5]:
        migration.pg.execute(line.replace("phasegate_gate", f'"{role}"'))
    yield role
    migration.pg.execute(f'DROP OWNED BY "{role}"')
    migration.pg.execute(f'DROP ROLE "{role}"')


def test_the_gate_passes_with_a_select_only_role(
    migration: Migration, select_only_role: str
) -> None:
    """The documented SELECT grants are enough for every Phase A check."""
    with connect_pg(_as_user(migration.pg_url, select_only_role)) as pg:
        pg.read_only = True
        assert _gate_results(migration.kv, pg) == []


def test_one_table_less_names_the_role_and_the_table(
    migration: Migration, select_only_role: str
) -> None:
    """SELECT revoked on games: refused, naming the role and the table."""
    migration.pg.execute(f'REVOKE SELECT ON games FROM "{select_only_role}"')
    with (
        connect_pg(_as_user(migration.pg_url, select_only_role)) as pg,
        pytest.raises(PermissionRefusedError) as refused,
    ):
        PhaseA(migration.kv, pg, SEED, 10.0).run("counts", "games")
    message = str(refused.value)
    assert f"Postgres role {select_only_role}" in message
    assert "games" in message


def test_doctor_reports_what_the_users_may_do(migration: Migration, acl_user: str) -> None:
    """doctor: every gate command allowed for the documented user; one removed is refused."""
    url = _as_user(migration.kv_url, acl_user, PASSWORD)
    assert not list(doctor.summary(doctor.kv_checks(url)))
    migration.kv.execute_command("ACL", "SETUSER", acl_user, "-smembers")  # type: ignore[no-untyped-call]
    refused = list(doctor.summary(doctor.kv_checks(url)))
    assert len(refused) == 1
    assert refused[0].startswith("redis: SMEMBERS refused")
    pg = {c.need: c.allowed for c in doctor.pg_checks(migration.pg_url)}
    assert pg["SELECT on the migrated tables"] is True
