"""The pytest plugin: options, the phase marker, the run header, store fixtures.

Every setting is a pytest option too (``pytest --phase=A --kv-url ...``), with
the same precedence as the CLI. ``--phase X`` runs the checks that must pass
to leave phase X; tests marked for another phase are skipped with a reason.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest
import redis

from phasegate.servers import Sandbox, open_sandbox, scratch_database, scratch_kv
from phasegate.settings import PHASES, SETTINGS, Settings, redact_url, resolve
from phasegate.stores import connect_kv


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phasegate", "phasegate (flag > PHASEGATE_* env > pyproject)")
    for s in SETTINGS:
        if s.is_flag:
            group.addoption(s.flag, dest=f"phasegate_{s.name}", action="store_const",
                            const="true", default=None, help=f"{s.help} [env {s.env}]")  # fmt: skip
        else:
            group.addoption(s.flag, dest=f"phasegate_{s.name}", default=None, metavar=s.metavar,
                            help=f"{s.help} [env {s.env}]")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "phase(X): a gate check that must pass to leave phase X (A backfill, B dual-write, "
        "C read cutover, D deprecation); skipped when --phase names another phase",
    )
    flags = {s.name: config.getoption(f"phasegate_{s.name}") for s in SETTINGS}
    config.stash[_SETTINGS] = resolve(flags)


_SETTINGS = pytest.StashKey[Settings]()


def settings_of(config: pytest.Config) -> Settings:
    return config.stash[_SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = settings_of(config)
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("phasegate", "psycopg", "redis", "sqlglot", "hypothesis")
    )
    kv, pg = redact_url(s.kv_url or "(sandbox)"), redact_url(s.pg_url or "(sandbox)")
    targets = f"targets: kv {kv}, pg {pg}"
    sandbox = (
        f"sandbox: pg {redact_url(s.sandbox_pg_url or 'embedded/docker')}, "
        f"kv {redact_url(s.sandbox_kv_url or 'embedded/docker')}"
    )
    return [
        f"phasegate: phase {s.phase or 'all'}, seed {s.seed}, scale {s.scale}; {versions}",
        targets,
        sandbox,
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = settings_of(config).phase
    for item in items:
        marker = item.get_closest_marker("phase")
        if marker is None:
            continue
        wanted = marker.args[0] if marker.args else None
        if wanted not in PHASES:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.phase needs one of {PHASES}")
        if phase is not None and wanted != phase:
            item.add_marker(
                pytest.mark.skip(reason=f"phase {wanted} check; run with --phase={wanted}")
            )


@pytest.fixture(scope="session")
def phasegate_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved settings of this run."""
    return settings_of(request.config)


@pytest.fixture(scope="session")
def sandbox(phasegate_settings: Settings) -> Iterator[Sandbox]:
    """Sandbox servers for this worker: given URLs, Docker, or embedded ones."""
    with open_sandbox(phasegate_settings) as servers:
        yield servers


@pytest.fixture
def scratch_pg_url(sandbox: Sandbox) -> Iterator[str]:
    """A fresh, empty Postgres database on the sandbox, dropped after the test."""
    with scratch_database(sandbox.pg_url, prefix="phasegate_test") as url:
        yield url


@pytest.fixture
def scratch_kv_url(sandbox: Sandbox) -> Iterator[str]:
    """A claimed, empty Redis DB on the sandbox, flushed after the test."""
    with scratch_kv(sandbox.kv_url) as url:
        yield url


@pytest.fixture
def scratch_kv_client(scratch_kv_url: str) -> Iterator[redis.Redis]:
    """A client on :func:`scratch_kv_url`."""
    client = connect_kv(scratch_kv_url)
    yield client
    client.close()
