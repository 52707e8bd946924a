"""The pytest plugin: options, the phase marker, the run header, store fixtures.

Every setting is a pytest option too (``pytest --phase=A --kv-url ...``), with
the same precedence as the CLI. ``--phase X`` runs the checks that must pass
to leave phase X; tests marked for another phase are skipped with a reason.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis

from phasegate import report
from phasegate.parity.result import CheckResult
from phasegate.plans import PLAN_SCALE
from phasegate.servers import Sandbox, open_sandbox, scratch_database, scratch_kv
from phasegate.settings import PHASES, SETTINGS, Settings, redact_url, resolve
from phasegate.stores import connect_kv


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phasegate", "phasegate (flag > PHASEGATE_* env > pyproject)")
    for s in SETTINGS:
        if s.is_flag:
            group.addoption(
                s.flag,
                dest=f"phasegate_{s.name}",
                action="store_const",
                const="true",
                default=None,
                help=f"{s.help} [env {s.env}]",
            )
        else:
            group.addoption(
                s.flag,
                dest=f"phasegate_{s.name}",
                default=None,
                metavar=s.metavar,
                help=f"{s.help} [env {s.env}]",
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "phase(X): a gate check that must pass to leave phase X (A backfill, B dual-write, "
        "C read cutover, D deprecation); skipped when --phase names another phase",
    )
    config.addinivalue_line(
        "markers",
        "own_servers: starts servers of its own (to stop and kill them) instead of using "
        "the sandbox, so it runs the same whatever the sandbox is",
    )
    flags = {s.name: config.getoption(f"phasegate_{s.name}") for s in SETTINGS}
    config.stash[_SETTINGS] = resolve(flags)
    config.pluginmanager.register(GateReporter(config), "phasegate-reporter")


_SETTINGS = pytest.StashKey[Settings]()
RESULT_PROPERTY = "phasegate_result"


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


@pytest.fixture
def record_check(request: pytest.FixtureRequest) -> Callable[[CheckResult], None]:
    """Attach a gate check's result to the test's report (it survives xdist)."""

    def record(result: CheckResult) -> None:
        request.node.user_properties.append(
            (RESULT_PROPERTY, json.dumps(result.as_dict(), default=str))
        )

    return record


class GateReporter:
    """Collects gate results from test reports (on the xdist controller too) and
    writes the run's report at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = report.GateResults()
        self.written = ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "phase" not in report.keywords:
            return
        got = [json.loads(str(v)) for name, v in report.user_properties if name == RESULT_PROPERTY]
        collector = self.results
        if report.when == "call":
            collector.results.extend(CheckResult.from_dict(r) for r in got)
            if report.failed and not got:
                collector.errors.append((report.nodeid, _short(report)))
        elif report.when == "setup" and report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            collector.phase_skips.append((report.nodeid, reason.removeprefix("Skipped: ")))
        elif report.failed:
            collector.errors.append((report.nodeid, _short(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.results.has_gate_activity:
            return  # xdist workers send their reports to the controller, which writes
        s = settings_of(self.config)
        summary = report.Summary(
            run_id=report.new_run_id(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            phase=s.phase,
            context={
                "seed": s.seed,
                "sample_rate_percent": s.sample_rate,
                "full": s.full,
                "kv": redact_url(s.kv_url) if s.kv_url else f"sandbox ({s.scale} fixture)",
                "pg": redact_url(s.pg_url) if s.pg_url else "sandbox",
                **self._plan_context(s),
            },
            results=tuple(self.results.results),
            phase_skips=tuple(self.results.phase_skips),
            errors=tuple(self.results.errors),
        )
        folder = report.write(summary, s.reports_dir)
        self.written = f"{folder}/report.md (verdict {summary.verdict})"

    def _plan_context(self, s: Settings) -> dict[str, str]:
        checks = {r.check for r in self.results.results}
        realistic = f"sandbox ({PLAN_SCALE} fixture)"
        out = {}
        if any(c.startswith("plan-") for c in checks):
            out["plans_on"] = redact_url(s.pg_url) if s.pg_url else realistic
        if "throughput" in checks:
            target = s.load_host or (s.pg_url and "reference service on the given stores")
            out["load_on"] = redact_url(target) if target else f"reference service, {realistic}"
        return out

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.written:
            terminalreporter.write_line(f"phasegate report: {self.written}")


def _short(report: pytest.TestReport) -> str:
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1] if text else report.outcome
