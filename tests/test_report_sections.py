"""Every section of the report model, rendered in every format, against golden
files: a diagnosis of a failing count, a dual-write burst and its reconcile, plans,
load percentiles with the latency timeline, a metric delta against the previous
run, and a reconcile run's own report."""

from __future__ import annotations

import dataclasses
import json

from phasegate import report
from phasegate.gates.result import CheckResult
from phasegate.reconcile import Reconciled
from phasegate.report_build import build
from phasegate.report_html import render_html
from phasegate.report_junit import render_junit
from phasegate.report_md import render_json, render_markdown
from tests.test_report import check_golden

DIAGNOSIS = [
    {
        "variant": "scheme2 msg:*",
        "field": "",
        "cause": "missing in Postgres",
        "count": 300,
        "of_variant": 300,
        "share_percent": 100.0,
    },
    {
        "variant": "scheme3 messages:*",
        "field": "read",
        "cause": "KV true, Postgres false",
        "count": 100,
        "of_variant": 300,
        "share_percent": 33.3,
    },
]
TIMELINE = [
    {"second": 0.0, "p50_ms": 4.0, "p95_ms": 20.0, "rps": 40.0, "users": 100},
    {"second": 5.0, "p50_ms": 5.0, "p95_ms": 60.0, "rps": 48.5, "users": 100},
    {"second": 10.0, "p50_ms": 4.0, "p95_ms": 30.0, "rps": 50.0, "users": 100},
]


def rich_summary() -> report.Summary:
    results = (
        CheckResult(
            "A",
            "messages",
            "counts",
            "fail",
            "KV 900 records, Postgres 600 rows: 300 missing",
            (
                "missing in Postgres: 300 of 900 records; by variant: scheme2 msg:* 300 "
                "(100% of that variant), scheme3 messages:* 0",
                "missing in Postgres: msg_1 (msg:msg_1)",
            ),
            {"kv_records": 900, "pg_rows": 600, "diagnosis": DIAGNOSIS},
            {"difference": 0},
        ),
        CheckResult(
            "B",
            "messages",
            "acked-durable",
            "pass",
            "every one of 58 acknowledged writes is in Postgres",
            metrics={
                "writes": 160,
                "acknowledged": 58,
                "journaled": 40,
                "journaled_pg_missed": 25,
                "journaled_kv_missed": 15,
                "write_alert": "writes: 63.0% failed",
                "write_failure_percent": 63.0,
            },
        ),
        CheckResult(
            "B",
            "messages",
            "reconciled",
            "pass",
            "after reconcile the stores agree",
            metrics={
                "reconcile_seconds": 1.2,
                "journal_replayed": 40,
                "repaired": 3,
                "differences_after": 0,
                "divergence_before_percent": 46.67,
                "divergence_after_percent": 0.0,
            },
        ),
        CheckResult(
            "C",
            "messages:thread",
            "plan-custom",
            "pass",
            "messages_thread_idx with Index Cond on least, greatest; 0.210 ms",
            metrics={
                "execution_ms": 0.21,
                "forced_index_scan": False,
                "shared_hit_blocks": 7,
                "shared_read_blocks": 1,
                "scans": ["Index Scan on messages_thread_idx (least(a, b) = $1)"],
            },
        ),
        CheckResult(
            "C",
            "messages:inbox",
            "load-p95",
            "pass",
            "inbox: p95 12 ms < 200 ms",
            metrics={"requests": 1200, "failures": 0, "p50_ms": 4, "p95_ms": 12, "p99_ms": 30},
            thresholds={"p95_ms": 200.0},
        ),
        CheckResult(
            "C",
            "messages:thread",
            "load-p95",
            "fail",
            "thread: p95 240 ms >= 200 ms",
            metrics={"requests": 800, "failures": 2, "p50_ms": 90, "p95_ms": 240, "p99_ms": 410},
            thresholds={"p95_ms": 200.0},
        ),
        CheckResult(
            "C",
            "load:total",
            "throughput",
            "pass",
            "2,400 requests/min",
            metrics={
                "requests": 2000,
                "requests_per_minute": 2400.0,
                "users": 100,
                "duration_s": 15.0,
                "cpu_percent": 41.0,
                "artifacts": ["/tmp/x/demo-locust.html"],
                "timeline": TIMELINE,
            },
        ),
    )
    return report.Summary(
        run_id="20261203T120000Z-abcdef",
        created_at="2026-12-03T12:00:00+00:00",
        phase=None,
        context={"seed": 7, "kv": "redis://app:***@kv:6379/0", "pg": "sandbox"},
        results=results,
    )


PREVIOUS = {
    "run_id": "20261203T110000Z-000000",
    "phase": None,
    "verdict": "pass",
    "phases": {
        "A": {
            "types": {
                "messages": {"checks": {"counts": {"status": "pass", "metrics": {"pg_rows": 900}}}}
            }
        }
    },
}


def test_every_section_in_every_format_matches_its_golden_file() -> None:
    built = build(rich_summary(), [PREVIOUS])
    check_golden("report_rich.md", render_markdown(built))
    check_golden("report_rich.html", render_html(built))
    check_golden("report_rich.json", render_json(built))
    check_golden("junit_rich.xml", render_junit(built))


def test_the_model_carries_each_section_typed() -> None:
    """What the renderers read: typed fields, not metric names."""
    built = build(rich_summary(), [PREVIOUS])
    assert built.verdict == "fail"
    assert built.exit_code == 1
    first = built.first_failure
    assert first is not None
    assert first.test_id == "messages-counts"
    assert first.diagnosis[0].variant == "scheme2 msg:*"
    assert first.diagnosis[1].field == "read"
    (burst,) = built.bursts
    assert burst.write_alert
    assert burst.divergence_before_percent == 46.67
    assert "faults working as injected" in burst.why
    assert built.load is not None
    assert [e.name for e in built.load.endpoints] == ["messages:inbox", "messages:thread"]
    assert built.load.timeline[1].p95_ms == 60.0
    assert built.plans[0].buffers == 8
    assert built.changes is not None
    assert built.changes.new_failures == ("messages-counts",)
    assert built.changes.deltas[0].metric == "pg_rows"
    assert [t.run_id for t in built.trend] == [PREVIOUS["run_id"], "now"]


def test_the_page_says_why_the_alarming_burst_figures_are_expected() -> None:
    page = render_html(build(rich_summary()))
    assert "63.0%" in page
    assert "46.67%" in page
    assert "Why these figures are expected" in page
    assert "Latency over the run" in page
    assert "<polyline" in page


def reconciled() -> Reconciled:
    return Reconciled(
        types=("messages", "friends"),
        dry_run=False,
        journal_applied=["e1", "e2"],
        repaired={"messages": [f"messages:m{i}" for i in range(7)]},
        written_to_kv={"friends": ["friends:al|bo"]},
        pg_only={"friends": ["friends:al|cy"]},
        differences_before={"messages": 7, "friends": 2},
        differences_after={"messages": 0, "friends": 0},
        seconds=0.42,
    )


def test_a_reconcile_run_is_reported_through_the_same_model() -> None:
    """``phasegate reconcile``'s Markdown and JSON come from the report model."""
    built = dataclasses.replace(
        report.reconcile_report(reconciled()),
        run_id="20261203T120000Z-abcdef",
        created_at="2026-12-03T12:00:00+00:00",
    )
    check_golden("reconcile.md", render_markdown(built))
    data = json.loads(render_json(built))
    assert data["verdict"] == "pass"
    assert data["reconcile"]["types"]["messages"]["repaired"][6] == "messages:m6"
    assert "and 2 more" in render_markdown(built)
