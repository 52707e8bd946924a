"""The rollback guard, on the reference service over real stores, windows shortened
through the triggers so each run takes seconds: a delay held past the window rolls
back exactly that type; a shorter spike does not; errors over 5% roll back; a
mismatch that survives its recheck rolls back at once; too few requests is
inconclusive; a clean run holds; the admin endpoint needs its token."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.migration import Migration, make
from phasegate import guard
from phasegate.burst_workloads import read_url
from phasegate.demo_cutover import drive
from phasegate.load import params, runner
from phasegate.servers import Sandbox

TOKEN = "guard-test-token"
FAST = guard.Triggers(p95_ms=300, window_s=3.0, sub_windows=3, min_requests=3, error_percent=5)
READS = ("inbox", "thread", "friends_of_handle", "user_by_handle")


def test_sustained_means_every_sub_window() -> None:
    """decide() over known samples: a breach in all sub-windows rolls back, in one of
    them holds, an idle endpoint is inconclusive."""
    t = guard.Triggers(p95_ms=100, window_s=30, sub_windows=3, min_requests=5)

    def samples(slow: set[int]) -> list[guard.Sample]:
        return [
            (i * 10 + j, "inbox", "messages", 400.0 if i in slow else 5.0, 200)
            for i in range(3)
            for j in range(6)
        ]

    def run(s: list[guard.Sample]) -> guard.Decision:
        return guard.decide("messages", s, end=30, watched_from=0, triggers=t)

    assert run(samples({0, 1, 2})).decision == guard.ROLL_BACK
    assert run(samples({1})).decision == guard.HOLD
    assert run(samples(set())[:10]).decision == guard.INCONCLUSIVE
    early = guard.decide("messages", samples({0, 1, 2}), end=30, watched_from=10, triggers=t)
    assert early.decision == guard.INCONCLUSIVE  # the window was not watched whole


@pytest.fixture
def own_migration(sandbox: Sandbox) -> Iterator[Migration]:
    """Stores of this test's own: a mismatch test edits Postgres."""
    yield from make(sandbox)


def asks_of(m: Migration) -> list[str]:
    sets = params.sample(m.pg, limit=2)
    return [read_url("{url}", name, sets[name][0]) for name in READS]


def watch_service(
    m: Migration,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    extra: tuple[str, ...] = (),
    during: float = 3.6,
    act: bool = True,
    drill: list[tuple[float, dict[str, float]]] | None = None,
    idle: bool = False,
) -> tuple[guard.Watch, dict[str, str]]:
    """The service on ``m`` reading Postgres, driven with steady reads, watched."""
    monkeypatch.setenv("PHASEGATE_ADMIN_TOKEN", TOKEN)
    with runner.service(
        m.kv_url, m.pg_url, read="pg", write="pg", extra=extra, folder=tmp_path
    ) as svc:
        stop = threading.Event()
        if not idle:
            drive([a.format(url=svc.url) for a in asks_of(m)], stop)
        service = guard.Service(svc.url, TOKEN)
        for after, delays in drill or []:
            timer = threading.Timer(after, service.admin, ({"inject_delay": delays},))
            timer.start()
        seen = guard.watch(
            service,
            FAST,
            duration_s=during,
            poll_s=0.3,
            types=["messages", "friends", "users"],
            act=act,
            journal=tmp_path / "events.jsonl",
        )
        stop.set()
        modes = service.read_modes()
    return seen, modes


def decisions(seen: guard.Watch) -> dict[str, str]:
    return {t: d.decision for t, d in seen.decisions.items()}


def test_a_sustained_delay_rolls_back_exactly_that_type(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, modes = watch_service(
        migration, tmp_path, monkeypatch, extra=("--inject-delay", "inbox=450")
    )
    assert decisions(seen) == {"messages": "roll back", "friends": "hold", "users": "hold"}
    assert seen.decisions["messages"].trigger == "p95"
    assert "inbox: p95 over 300 ms in all 3 sub-windows" in seen.decisions["messages"].reason
    assert modes["messages"] == "kv"
    assert modes["friends"] == "pg"
    (event,) = seen.events
    assert event["type"] == "messages"
    assert event["acted"] is True
    recorded = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert recorded["guard"]["trigger"] == "p95"
    assert seen.budget["requests"] > 50


def test_a_shorter_spike_does_not_roll_back(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delay held for about one sub-window of three: held."""
    seen, modes = watch_service(
        migration,
        tmp_path,
        monkeypatch,
        drill=[(1.1, {"inbox": 450}), (2.0, {"inbox": 0})],
    )
    assert decisions(seen)["messages"] == "hold", seen.decisions["messages"]
    assert modes["messages"] == "pg"
    p95s = [w.p95_ms or 0 for w in seen.decisions["messages"].windows["inbox"]]
    assert max(p95s) > 300  # the spike was seen
    assert min(p95s) < 300


def test_errors_over_five_percent_roll_back(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, modes = watch_service(
        migration, tmp_path, monkeypatch, extra=("--inject-errors", "friends_of_handle=20")
    )
    assert decisions(seen) == {"messages": "hold", "friends": "roll back", "users": "hold"}
    assert seen.decisions["friends"].trigger == "errors"
    assert modes["friends"] == "kv"
    assert seen.budget["failed"] > 0
    assert seen.budget["spent_percent"] > 100  # 20% errors against a 0.1% budget


def test_a_confirmed_mismatch_rolls_back_at_once(
    own_migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A friendship lost in Postgres: the shadow read differs after its recheck."""
    m = own_migration
    asked = params.sample(m.pg, limit=2)["friends_of_handle"][0]
    (column,) = asked
    lost = m.pg.execute(
        "DELETE FROM friends WHERE ctid IN "
        "(SELECT ctid FROM friends WHERE handle = %s LIMIT 1) RETURNING friend",
        (asked[column],),
    ).fetchall()
    assert lost, asked
    seen, modes = watch_service(m, tmp_path, monkeypatch, extra=("--shadow",), during=2.0)
    friends = seen.decisions["friends"]
    assert friends.decision == "roll back"
    assert friends.trigger == "data loss"
    assert any("friends_of_handle" in x for x in friends.mismatches)
    assert modes["friends"] == "kv"


def test_too_few_requests_is_inconclusive_and_without_act_nothing_changes(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, modes = watch_service(migration, tmp_path, monkeypatch, idle=True, act=False)
    assert set(decisions(seen).values()) == {"inconclusive"}
    assert "too idle to judge" in seen.decisions["messages"].reason
    assert set(modes.values()) == {"pg"}


def test_the_admin_endpoint_needs_its_token(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def post(url: str, token: str | None) -> int:
        request = urllib.request.Request(
            url + "/_phasegate/admin/modes",
            data=json.dumps({"read": {"messages": "kv"}}).encode(),
        )
        if token:
            request.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    monkeypatch.delenv("PHASEGATE_ADMIN_TOKEN", raising=False)
    with runner.service(migration.kv_url, migration.pg_url, folder=tmp_path) as svc:
        assert post(svc.url, TOKEN) == 404  # off: started without a token
    monkeypatch.setenv("PHASEGATE_ADMIN_TOKEN", TOKEN)
    with runner.service(migration.kv_url, migration.pg_url, folder=tmp_path) as svc:
        assert post(svc.url, None) == 401
        assert post(svc.url, "wrong") == 401
        assert post(svc.url, TOKEN) == 200


def test_the_pytest_gate_check_reports_the_guard_decisions(
    migration: Migration, tmp_path: Path
) -> None:
    """``pytest load/test_guard.py --phase=C --guard-service URL``: the slowed type
    fails with its trigger, the others pass; the service's modes are left alone."""
    from tests.test_gate_only import run_pytest

    with runner.service(
        migration.kv_url,
        migration.pg_url,
        extra=("--inject-delay", "inbox=450"),
        folder=tmp_path,
        read="pg",
        write="pg",
    ) as svc:
        stop = threading.Event()
        drive([a.format(url=svc.url) for a in asks_of(migration)], stop)
        done = run_pytest(
            "load/test_guard.py",
            "--phase=C",
            f"--guard-service={svc.url}",
            "--guard-window=3",
            "--guard-sub-windows=3",
            "--guard-min-requests=3",
            "--guard-p95-ms=300",
            f"--reports-dir={tmp_path / 'reports'}",
        )
        stop.set()
        modes = guard.Service(svc.url).read_modes()
    assert done.returncode == 1, done.stdout[-3000:]
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    checks = {t: v["checks"]["rollback-guard"] for t, v in summary["phases"]["C"]["types"].items()}
    assert checks["messages"]["status"] == "fail"
    assert "roll back (p95)" in checks["messages"]["message"]
    assert checks["friends"]["status"] == "pass"
    assert modes["messages"] == "pg"  # the gate only reports


def test_the_cli_exits_3_on_an_idle_service_and_2_for_act_without_a_token(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phasegate.cli import main

    monkeypatch.delenv("PHASEGATE_ADMIN_TOKEN", raising=False)
    with runner.service(migration.kv_url, migration.pg_url, folder=tmp_path) as svc:
        common = [
            "guard",
            "--service",
            svc.url,
            "--events",
            str(tmp_path / "g.jsonl"),
            "--journal",
            str(tmp_path / "none.jsonl"),
            "--reconcile-reports",
            str(tmp_path / "none"),
            f"--reports-dir={tmp_path / 'reports'}",
        ]
        assert main([*common, "--act"]) == 2
        fast = ["--guard-window=1", "--guard-sub-windows=1", "--types", "messages"]
        assert main([*common, *fast]) == 3
    last = json.loads((tmp_path / "guard-last.json").read_text())
    assert last["decisions"]["messages"]["decision"] == "inconclusive"
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    checks = summary["phases"]["C"]["types"]["messages"]["checks"]
    assert checks["rollback-guard"]["status"] == "inconclusive"


def test_data_loss_on_record_rolls_back_at_once(
    migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal entry Postgres refused for good (friends) and a key the last
    reconcile left open (messages): both types roll back at the first poll, with
    no traffic at all; users, idle, stay inconclusive."""
    from phasegate.dualwrite.change import Change
    from phasegate.journal import Journal
    from phasegate.reconcile import Reconciled
    from phasegate.report import write_reconcile_report

    journal = Journal(tmp_path / "journal.jsonl")
    change = Change("friend_add")
    change.put("friends", {"handle": "al", "friend": "bo"})
    entry = journal.record(change.to_json(), failed="pg", error="Postgres was away")
    journal.done(entry, refused="insert violates foreign key constraint friends_friend_fkey")
    gap = Reconciled(types=("messages",), dry_run=False)
    gap.still_different["messages"] = ["messages:m1"]
    write_reconcile_report(gap, tmp_path / "reconcile")
    lost = guard.losses(journal.path, guard.newest_reconcile_report(tmp_path / "reconcile"))
    assert "Postgres refused it for good" in lost["friends"][0]
    assert "left messages:m1 open (still different)" in lost["messages"][0]
    monkeypatch.setenv("PHASEGATE_ADMIN_TOKEN", TOKEN)
    with runner.service(migration.kv_url, migration.pg_url, folder=tmp_path, read="pg") as svc:
        seen = guard.watch(
            guard.Service(svc.url, TOKEN),
            FAST,
            duration_s=0.5,
            poll_s=0.2,
            types=["messages", "friends", "users"],
            act=True,
            recorded=lambda: lost,
        )
        modes = guard.Service(svc.url).read_modes()
    assert decisions(seen) == {
        "messages": "roll back",
        "friends": "roll back",
        "users": "inconclusive",
    }
    assert {d.trigger for t, d in seen.decisions.items() if t != "users"} == {"data loss"}
    assert (modes["messages"], modes["friends"], modes["users"]) == ("kv", "kv", "pg")
