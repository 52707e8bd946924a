"""A Phase A gate split into shares of buckets, and the shares merged into one verdict.

``pytest --phase=A --buckets i/N`` takes share ``i`` of ``N`` (see
:class:`~phasegate.parity.buckets.Share`): its records, its Postgres rows and
the facts of its keys. Besides the usual report, its run folder keeps
``share.json``: the share's comparison pass (every count, example and diagnosis
group), its results and its context. ``phasegate report merge`` reads the N
folders, checks that they are shares 1 to N of one gate (same stores, seed,
sample rate, full diff, checks), adds their passes up and judges the data
checks (coverage, counts, sample, recency, full) once more on the sum, as one
whole run would have; the checks over whole tables (refint, rerun) are share
1's. The merged report is a run of its own in the reports folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import redis

from phasegate import report
from phasegate.errors import UsageError
from phasegate.gates.phase_a import PhaseA
from phasegate.gates.result import CheckResult
from phasegate.parity.buckets import Share
from phasegate.parity.tally import comparison_from_json, merged

SHARE_FILE = "share.json"
SCHEMA = 1
# Judged again on the merged pass; the other Phase A checks are share 1's.
DATA_CHECKS = frozenset({"coverage", "counts", "sample", "recency", "full"})
# What every share must agree on to be parts of one gate.
_SAME_CONTEXT = ("kv", "pg", "seed", "sample_rate_percent", "full")


def write_share(
    folder: Path, share: str, summary: report.Summary, share_pass: dict[str, Any] | None
) -> Path:
    """Keep a share's pass and results beside its report (``share.json``).

    ``share_pass`` is None when the pass did not finish (a store failed): the
    share's errors say why, and a merge including it is an error."""
    data = {
        "schema": SCHEMA,
        "share": share,
        "run_id": summary.run_id,
        "created_at": summary.created_at,
        "context": dict(summary.context),
        "results": [r.as_dict() for r in summary.results],
        "phase_skips": [list(s) for s in summary.phase_skips],
        "errors": [list(e) for e in summary.errors],
        "pass": share_pass,
    }
    path = folder / SHARE_FILE
    path.write_text(json.dumps(data, default=str) + "\n")
    return path


def _load(where: str | Path) -> dict[str, Any]:
    path = Path(where)
    if path.is_dir():
        path = path / SHARE_FILE
    if not path.is_file():
        raise UsageError(
            f"{where}: no {SHARE_FILE}: not the report folder of a share "
            "(`pytest --phase=A --buckets i/N`)",
            hint="pass the run folders of every share, e.g. reports/<run-id>",
        )
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        share = Share.parse(str(data["share"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a share file phasegate wrote ({exc})") from None
    if data.get("schema") != SCHEMA:
        raise UsageError(f"{path}: share file schema {data.get('schema')!r}, expected {SCHEMA}")
    data["_share"] = share
    data["_path"] = str(path)
    return data


def _check_complete(parts: list[dict[str, Any]]) -> None:
    counts = {p["_share"].count for p in parts}
    if len(counts) != 1:
        shown = ", ".join(f"{p['_path']} is {p['share']}" for p in parts)
        raise UsageError(f"the shares split the buckets differently: {shown}")
    count = counts.pop()
    seen: dict[int, str] = {}
    for p in parts:
        index = p["_share"].index
        if index in seen:
            raise UsageError(f"share {index}/{count} given twice: {seen[index]} and {p['_path']}")
        seen[index] = p["_path"]
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise UsageError(
            f"shares missing: {', '.join(missing)} (a merge needs every share of {count})"
        )
    first = parts[0]
    for p in parts[1:]:
        for name in _SAME_CONTEXT:
            a, b = first["context"].get(name), p["context"].get(name)
            if a != b:
                raise UsageError(
                    f"{p['_path']} is not a share of the same gate as {first['_path']}: "
                    f"{name} {b!r} vs {a!r}"
                )
        ours = [(r["type"], r["check"]) for r in p["results"]]
        theirs = [(r["type"], r["check"]) for r in first["results"]]
        if sorted(ours) != sorted(theirs) and not p["errors"] and not first["errors"]:
            raise UsageError(
                f"{p['_path']} ran other checks than {first['_path']} (the same -k for every share)"
            )


def merge(folders: Sequence[str | Path]) -> report.Summary:
    """The shares' runs as one run's summary (not yet written)."""
    if not folders:
        raise UsageError("give the report folders of the shares to merge")
    parts = sorted((_load(f) for f in folders), key=lambda p: p["_share"].index)
    _check_complete(parts)
    first = parts[0]
    errors = [
        (f"share {p['share']}: {test}", message) for p in parts for test, message in p["errors"]
    ]
    unfinished = [p for p in parts if p["pass"] is None]
    errors += [
        (f"share {p['share']}", "its comparison pass did not finish: its data checks are missing")
        for p in unfinished
    ]
    results = [CheckResult.from_dict(r) for r in first["results"]]
    if not unfinished:
        results = _judged(parts, results)
    else:
        results = [r for r in results if r.check not in DATA_CHECKS]
    context = {k: v for k, v in first["context"].items() if k != "share"}
    runs = ", ".join(p["run_id"] for p in parts)
    context["shares"] = f"{len(parts)} shares merged (runs {runs})"
    return report.Summary(
        run_id=report.new_run_id(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        phase="A",
        context=context,
        results=tuple(results),
        phase_skips=tuple((t, r) for t, r in first["phase_skips"]),
        errors=tuple(errors),
    )


def _judged(parts: list[dict[str, Any]], results: list[CheckResult]) -> list[CheckResult]:
    """The data checks judged again on the sum of the shares' passes."""
    passes = [p["pass"] for p in parts]
    one = passes[0]
    for p, part in zip(parts[1:], passes[1:], strict=True):
        for name in ("seed", "sample_rate", "full"):
            if part[name] != one[name]:
                raise UsageError(f"{p['_path']}: {name} {part[name]!r}, share 1 had {one[name]!r}")
    whole = merged([comparison_from_json(part["comparison"]) for part in passes])
    # The data checks read only the pass: no store is opened.
    gate = PhaseA(
        cast(redis.Redis, None),
        cast(psycopg.Connection, None),
        int(one["seed"]),
        float(one["sample_rate"]),
        bool(one["full"]),
        now=datetime.fromisoformat(one["now"]),
        _pass=whole,
    )
    return [gate.run(r.check, r.type_id) if r.check in DATA_CHECKS else r for r in results]


def merge_and_write(
    folders: Sequence[str | Path], reports_dir: str | Path, keep: int
) -> tuple[report.Summary, Path]:
    summary = merge(folders)
    return summary, report.write(summary, reports_dir, keep=keep)
