"""The pytest plugin: options, the phase marker, the run header, store fixtures.

Every setting is a pytest option too (``pytest --phase=A --kv-url ...``), with
the same precedence as the CLI. ``--phase X`` runs the checks that must pass
to leave phase X: gate tests marked for another phase are skipped with a reason
(so the report shows them), and the library's own tests are deselected (they
run when no ``--phase`` is given, always on the sandbox, never on the targets).

The run's exit code is the gate's, as for the CLI: 0 pass, 1 a check failed,
2 usage or environment error (a store unreachable, a permission refused, the
gate deadline passed), 3 inconclusive (nothing to judge).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from phasegate import report, shares
from phasegate.errors import EXIT_GATE_FAILED, EXIT_USAGE, PhasegateError, UsageError
from phasegate.gates.result import CheckResult
from phasegate.plans import PLAN_SCALE
from phasegate.redact import redact
from phasegate.report_model import EXIT_BY_VERDICT
from phasegate.servers import Sandbox, open_sandbox, scratch_database, scratch_kv
from phasegate.settings import PHASES, SETTINGS, Settings, redact_url, resolve
from phasegate.stores import connect_kv


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phasegate", "phasegate (flag > PHASEGATE_* env > pyproject)")
    for s in SETTINGS:
        if not s.has_flag:
            continue
        if s.is_flag:
            group.addoption(
                s.flag,
                dest=f"phasegate_{s.name}",
                action="store_const",
                const="true",
                default=None,
                help=s.option_help(),
            )
        else:
            group.addoption(
                s.flag,
                dest=f"phasegate_{s.name}",
                default=None,
                metavar=s.metavar,
                help=s.option_help(),
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
    flags = {s.name: config.getoption(f"phasegate_{s.name}") for s in SETTINGS if s.has_flag}
    try:
        config.stash[_SETTINGS] = settings = resolve(flags)
    except UsageError as exc:
        pytest.exit(f"phasegate: {exc}", returncode=EXIT_USAGE)
    if settings.buckets and settings.phase != "A":
        pytest.exit(
            f"phasegate: --buckets={settings.buckets} splits the Phase A gate's data checks: "
            "run it with --phase=A",
            returncode=EXIT_USAGE,
        )
    config.pluginmanager.register(GateReporter(config), "phasegate-reporter")


_SETTINGS = pytest.StashKey[Settings]()
RESULT_PROPERTY = "phasegate_result"
SHARE_PROPERTY = "phasegate_share"
ERROR_PROPERTY = "phasegate_error"
# Fixtures that hand a test the *target* stores when --kv-url/--pg-url are given:
# only gate tests may use them; the library's own tests use the sandbox.
TARGET_FIXTURES = frozenset({"phase_a", "phase_d", "plan_db", "load_run", "shape_schema"})


def settings_of(config: pytest.Config) -> Settings:
    return config.stash[_SETTINGS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = settings_of(config)
    kv, pg = redact_url(s.kv_url or "(sandbox)"), redact_url(s.pg_url or "(sandbox)")
    targets = f"targets: kv {kv}, pg {pg}"
    sandbox = (
        f"sandbox: pg {redact_url(s.sandbox_pg_url or 'embedded/docker')}, "
        f"kv {redact_url(s.sandbox_kv_url or 'embedded/docker')}"
    )
    return [
        f"phasegate: phase {s.phase or 'all'}, seed {s.seed}, scale {s.scale}; "
        + report.versions(),
        targets,
        sandbox,
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = settings_of(config).phase
    library: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("phase")
        if marker is None:
            used = TARGET_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if used:
                item.stash[_TARGET_FIXTURES_USED] = sorted(used)
            library.append(item)
            continue
        wanted = marker.args[0] if marker.args else None
        if wanted not in PHASES:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.phase needs one of {PHASES}")
        if phase is not None and wanted != phase:
            item.add_marker(
                pytest.mark.skip(reason=f"phase {wanted} check; run with --phase={wanted}")
            )
    if phase is not None and library:
        # --phase runs the gate only: the library's own tests are for development
        config.hook.pytest_deselected(items=library)
        keep = set(map(id, library))
        items[:] = [item for item in items if id(item) not in keep]
        config.stash[_DESELECTED] = len(library)


_DESELECTED = pytest.StashKey[int]()
_TARGET_FIXTURES_USED = pytest.StashKey[list[str]]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    used = item.stash.get(_TARGET_FIXTURES_USED, None)
    if used:
        raise pytest.UsageError(
            f"{item.nodeid}: only gate tests (@pytest.mark.phase) may use the target "
            f"fixture(s) {', '.join(used)}; library tests use the sandbox"
        )


_FIRST_BROKEN: dict[str, str] = {}  # an environment error's one-line cause -> first test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """An environment error (store unreachable, permission refused, timeout) is one
    line naming the store, not a traceback; no report carries a secret.

    A store that went away breaks every gate check the same way: the first check
    it breaks (per process) is the error shown with its cause; the others are
    shown as not run, naming it, so the terminal says the cause once. The report
    still counts every one of them as an error, and the run exits 2."""
    rep = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, PhasegateError):
        message = redact(str(error))
        cause = message.splitlines()[0]
        rep.user_properties.append((ERROR_PROPERTY, cause))
        first = _FIRST_BROKEN.setdefault(cause, item.nodeid)
        if first == item.nodeid or "phase" not in item.keywords:
            rep.longrepr = f"phasegate: {message}"
        else:
            rep.outcome = "skipped"
            path, line, _ = item.location
            rep.longrepr = (path, (line or 0) + 1, f"not run: {cause} (as {first})")
    elif rep.failed and rep.longrepr is not None:
        text = str(rep.longrepr)
        if redact(text) != text:
            rep.longrepr = redact(text)
    return rep


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    deselected = config.stash.get(_DESELECTED, 0)
    if not deselected:
        return []
    phase = settings_of(config).phase
    return [
        f"phasegate: --phase={phase} runs the phase {phase} gate only; {deselected} library "
        "tests deselected (they run without --phase, on the sandbox)"
    ]


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
def record_check(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach a gate check's result to the test's report (it survives xdist), and,
    in a share of a split run (--buckets), the share's comparison pass."""

    def record(result: CheckResult, share_pass: dict[str, Any] | None = None) -> None:
        request.node.user_properties.append(
            (RESULT_PROPERTY, json.dumps(result.as_dict(), default=str))
        )
        if share_pass is not None:
            request.node.user_properties.append((SHARE_PROPERTY, json.dumps(share_pass)))

    return record


def conclude(result: CheckResult) -> None:
    """End a gate test by its check's status: skip (not applicable), inconclusive
    (shown as a skip whose reason starts INCONCLUSIVE; the run exits 3), or an
    assertion that it passed."""
    __tracebackhide__ = True
    if result.status == "skip":
        pytest.skip(result.message)
    if result.status == "inconclusive":
        pytest.skip(f"INCONCLUSIVE: {result.type_id}/{result.check}: {result.message}")
    assert result.passed, result.explain()


class GateReporter:
    """Collects gate results from test reports (on the xdist controller too) and
    writes the run's report at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = report.GateResults()
        self.share_pass: dict[str, Any] | None = None
        self.written = ""
        self.deadline: threading.Timer | None = None
        self.deadline_passed = False

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        s = settings_of(self.config)
        if s.phase is not None and self.is_controller:
            self.deadline = threading.Timer(s.gate_timeout, self._deadline_passed)
            self.deadline.daemon = True
            self.deadline.start()

    def _deadline_passed(self) -> None:
        self.deadline_passed = True
        seconds = settings_of(self.config).gate_timeout
        sys.stderr.write(f"\nphasegate: the gate deadline ({seconds:g} s) passed: stopping\n")
        os.kill(os.getpid(), signal.SIGINT)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "phase" not in report.keywords:
            return
        props = report.user_properties
        got = [json.loads(str(v)) for name, v in props if name == RESULT_PROPERTY]
        environment = [str(v) for name, v in props if name == ERROR_PROPERTY]
        for name, v in props:
            if name == SHARE_PROPERTY and self.share_pass is None:
                self.share_pass = json.loads(str(v))
        collector = self.results
        if environment:
            collector.errors.append((report.nodeid, environment[0]))
        elif report.when == "call":
            collector.results.extend(CheckResult.from_dict(r) for r in got)
            if report.failed and not got:
                collector.errors.append((report.nodeid, _short(report)))
        elif report.when == "setup" and report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            collector.phase_skips.append((report.nodeid, reason.removeprefix("Skipped: ")))
        elif report.failed:
            collector.errors.append((report.nodeid, _short(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if not self.is_controller:
            return  # xdist workers send their reports to the controller, which writes
        s = settings_of(self.config)
        if self.deadline_passed:
            self.results.errors.append(
                ("(session)", f"the gate deadline of {s.gate_timeout:g} s passed (--gate-timeout)")
            )
        if not self.results.has_gate_activity:
            if s.phase is not None and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
                self.written = f"no phase {s.phase} gate check was selected (check -k and paths)"
                session.exitstatus = EXIT_USAGE
            return
        summary = report.Summary(
            run_id=report.new_run_id(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            phase=s.phase,
            context={
                "seed": s.seed,
                "sample_rate_percent": s.sample_rate,
                "full": s.full,
                **({"share": f"{s.buckets} of the buckets"} if s.buckets else {}),
                "kv": redact_url(s.kv_url) if s.kv_url else f"sandbox ({s.scale} fixture)",
                "pg": redact_url(s.pg_url) if s.pg_url else "sandbox",
                **self._plan_context(s),
                "versions": report.versions(),
            },
            results=tuple(self.results.results),
            phase_skips=tuple(self.results.phase_skips),
            errors=tuple(self.results.errors),
        )
        folder = report.write(summary, s.reports_dir, keep=s.reports_keep)
        if s.buckets:
            shares.write_share(folder, s.buckets, summary, self.share_pass)
        self.written = f"{folder}/report.md (verdict {summary.verdict})"
        session.exitstatus = _exit_status(int(session.exitstatus), summary.verdict, s.phase)

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


def _exit_status(pytest_status: int, verdict: str, phase: str | None) -> int:
    """The run's exit code from the gate verdict, the same codes as the CLI's.

    Without --phase the library's own tests ran too: their failures keep 1.
    """
    gate = EXIT_BY_VERDICT[verdict]
    if pytest_status == pytest.ExitCode.INTERRUPTED:
        return EXIT_USAGE
    if phase is None and pytest_status == pytest.ExitCode.TESTS_FAILED and gate != EXIT_USAGE:
        return EXIT_GATE_FAILED
    if pytest_status == pytest.ExitCode.INTERNAL_ERROR:
        return EXIT_USAGE
    return gate


def _short(report: pytest.TestReport) -> str:
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1] if text else report.outcome
