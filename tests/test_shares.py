"""A Phase A gate split into shares of buckets (--buckets i/N) and merged again.

Four shares run one after another give the same verdict, counts, examples,
diagnosis and findings as one whole run, on a migration with defects of every
kind the data checks guard against.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fixtures.migration import Migration, make
from phasegate.cli.main import main
from phasegate.errors import EXIT_GATE_FAILED, EXIT_USAGE
from phasegate.findings import WHOLE_KEYSPACE_KINDS
from phasegate.inventory import take_inventory
from phasegate.mappings import TYPE_IDS
from phasegate.parity.buckets import Share
from phasegate.parity.compare import compare
from phasegate.parity.tally import comparison_to_json, merged
from phasegate.servers import Sandbox
from tests.test_compare import SCOPE
from tests.test_gate_run import ROOT, run_gate


def seed_defects(m: Migration) -> None:
    """Changed and dropped rows, an extra row, unmapped keys, an undecodable value,
    a key of the wrong TYPE: more of each than a tally keeps as examples. Keys
    seeded with a TTL are made persistent: a 60 s rate-limit key expiring between
    the whole run and a share's run would change the counts the test compares."""
    for key in m.kv.scan_iter(count=1000):
        if m.kv.pttl(key) > 0:
            m.kv.persist(key)
    ids = [str(r[0]) for r in m.pg.execute("SELECT id FROM messages ORDER BY id LIMIT 40")]
    m.pg.execute("UPDATE messages SET text = 'tampered' WHERE id = ANY(%s)", (ids[:20],))
    m.pg.execute("DELETE FROM messages WHERE id = ANY(%s)", (ids[20:],))
    m.pg.execute("ALTER TABLE friends DROP CONSTRAINT friends_handle_fkey")
    m.pg.execute("INSERT INTO friends VALUES ('ghost', 'vibe')")
    m.pg.commit()
    for i in range(15):
        m.kv.set(f"cart:{i}", b'{"items":[]}')
    m.kv.set("msg:broken", b'{"id":"broken","from":"al","to":')
    m.kv.sadd("msg:a-set", "x")


@pytest.fixture
def flawed(sandbox: Sandbox) -> Any:
    for m in make(sandbox):
        seed_defects(m)
        yield m


def test_shares_of_a_pass_add_up_to_the_whole_pass(flawed: Migration) -> None:
    """Every count, example, diagnosis group and finding of four shares, added up,
    is the whole pass's; each share holds a real part of it."""
    whole = compare(flawed.kv, flawed.pg, TYPE_IDS, SCOPE, buckets=3)
    parts = [
        compare(flawed.kv, flawed.pg, TYPE_IDS, SCOPE, buckets=3, share=Share(i, 4))
        for i in range(1, 5)
    ]
    assert comparison_to_json(merged(parts)) == comparison_to_json(merged([whole]))
    messages = whole.types["messages"]
    assert messages.differences["full"].count == 40
    assert messages.missing.count == 21  # the 20 dropped and msg:broken, undecodable
    assert whole.keyspace.unmapped.count == 15
    for part in parts:
        assert 0 < part.types["messages"].kv_records < messages.kv_records
        assert 0 < part.keyspace.total_keys < whole.keyspace.total_keys


def test_the_pass_counts_only_findings_a_bucket_makes_exactly(flawed: Migration) -> None:
    """Findings about several records in different buckets (a handle's spellings)
    need the whole keyspace: counted per bucket they would depend on the number of
    work buckets. The pass counts the others, the same for any split, and as the
    whole decode (the inventory) finds them. One-sided friendships among them: both
    directions of a pair share its bucket (keyed by a friend's set, 189 one-sided
    pairs were counted among 5)."""
    inventory = take_inventory(flawed.kv, TYPE_IDS)
    exact = Counter(
        (f.type_id, f.kind) for f in inventory.findings if f.kind not in WHOLE_KEYSPACE_KINDS
    )
    assert inventory.findings
    assert exact[("friends", "one_sided")] > 0
    for work in (1, 3, 16):
        result = compare(flawed.kv, flawed.pg, TYPE_IDS, SCOPE, buckets=work)
        counted = Counter(
            {(t, kind): n for t, c in result.types.items() for kind, n in c.findings.items()}
        )
        counted.update((f.type_id, f.kind) for f in result.keyspace.findings)
        assert counted == exact, work


def _merge(*folders: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "phasegate.cli", "report", "merge"),
            *map(str, folders),
            *("--reports-dir", str(reports)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """stderr with the terminal's line wrapping undone."""
    return " ".join(done.stderr.split())


_CUTOFF = re.compile(r"since \d{4}-\d\d-\d\d \d\d:\d\dZ")


def _checks(summary: dict[str, Any]) -> dict[tuple[str, str], Any]:
    out = {}
    for type_id, t in summary["phases"]["A"]["types"].items():
        for name, c in t["checks"].items():
            shown = {k: c[k] for k in ("status", "details", "metrics")}
            shown["message"] = _CUTOFF.sub("since (cutoff)", c["message"])
            out[type_id, name] = shown
    return out


def test_four_shares_merged_are_the_whole_gate(flawed: Migration, tmp_path: Path) -> None:
    """`pytest --phase=A --buckets i/4` for i = 1..4, then `phasegate report merge`:
    the same exit code, verdict and checks (status, message, examples, metrics) as
    `pytest --phase=A` over the whole keyspace; refint and rerun are share 1's."""
    whole = run_gate(flawed, tmp_path / "whole", "--full")
    assert whole.returncode == EXIT_GATE_FAILED, whole.stdout[-3000:]
    shares = []
    for i in range(1, 5):
        done = run_gate(flawed, tmp_path / f"share{i}", "--full", "--buckets", f"{i}/4")
        assert done.returncode in (0, 1, 3), done.stdout[-3000:]
        shares.append(tmp_path / f"share{i}" / "latest")
        assert (shares[-1] / "share.json").is_file()
    refint = json.loads((shares[1] / "summary.json").read_text())
    assert "checked by share 1 of 4" in str(refint["phases"]["A"]["types"]["friends"])
    merged_run = _merge(*reversed(shares), reports=tmp_path / "merged")
    assert merged_run.returncode == EXIT_GATE_FAILED, merged_run.stdout + merged_run.stderr
    assert "4 shares merged" in merged_run.stdout
    assert "messages/full:" in merged_run.stdout
    one = json.loads((tmp_path / "whole" / "latest" / "summary.json").read_text())
    both = json.loads((tmp_path / "merged" / "latest" / "summary.json").read_text())
    assert both["verdict"] == one["verdict"] == "fail"
    theirs, ours = _checks(both), _checks(one)
    assert theirs.keys() == ours.keys()
    for key, check in ours.items():
        for part in ("status", "message", "details", "metrics"):
            assert theirs[key][part] == check[part], (key, part, theirs[key][part], check[part])
    assert "4 shares merged" in both["context"]["shares"]
    assert (tmp_path / "merged" / "latest" / "index.html").is_file()

    missing = _merge(*shares[:3], reports=tmp_path / "merged")
    assert missing.returncode == EXIT_USAGE
    assert "shares missing: 4/4" in _said(missing)
    twice = _merge(shares[0], shares[0], *shares[1:], reports=tmp_path / "merged")
    assert twice.returncode == EXIT_USAGE
    assert "share 1/4 given twice" in _said(twice)
    whole_folder = _merge(tmp_path / "whole" / "latest", reports=tmp_path / "merged")
    assert whole_folder.returncode == EXIT_USAGE
    assert "no share.json" in _said(whole_folder)


def test_buckets_is_for_the_phase_a_gate_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--buckets with another phase, a malformed share, or a phasegate command: exit 2."""
    other = subprocess.run(
        [sys.executable, "-m", "pytest", "parity", "--phase=B", "--buckets", "1/2", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode == EXIT_USAGE
    assert "run it with --phase=A" in other.stdout + other.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "pytest", "parity", "--phase=A", "--buckets", "5/4", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == EXIT_USAGE
    assert "share 5 of 4" in bad.stdout + bad.stderr
    monkeypatch.setenv("PHASEGATE_BUCKETS", "1/2")
    assert main(["settings"]) == EXIT_USAGE
    assert "pytest --phase=A --buckets" in " ".join(capsys.readouterr().err.split())
