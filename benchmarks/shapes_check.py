"""Static query-shape checks at volume: 1,000 statements, every rule, one process.

    python benchmarks/shapes_check.py [--statements 1000] [--repeat 5]

Builds a source tree of ``--statements`` statements in every extracted form
(JS tagged templates and query() calls, Python execute() and SQLAlchemy text(),
.sql migrations) by repeating the sample application's statements with a
distinct literal in each copy (so no parse is served from a cache), then times
extraction and the checks (Postgres's grammar, sqlglot, every rule) against
phasegate's schema. Prints the best of ``--repeat`` runs and a README row.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from phasegate.shapes import SchemaModel, check_all, check_schema
from phasegate.shapes.extract import extract

SAMPLE = Path(__file__).parents[1] / "tests" / "sample_app"


def build_tree(root: Path, wanted: int) -> int:
    """Copies of the sample app until the tree holds at least ``wanted`` statements."""
    per_copy = len(extract(SAMPLE).statements)
    copies = -(-wanted // per_copy)
    for n in range(copies):
        for path in SAMPLE.rglob("*"):
            if path.is_file():
                target = root / f"copy{n}" / path.relative_to(SAMPLE)
                target.parent.mkdir(parents=True, exist_ok=True)
                # a distinct literal per copy: every statement text is new
                target.write_text(path.read_text().replace("'public'", f"'public{n}'"))
    return copies * per_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    schema = SchemaModel.project()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_tree(root, args.statements)
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            found = extract(root)
            extracted = time.perf_counter()
            statements = found.statements[: args.statements]
            findings = check_all(statements, schema) + check_schema(schema)
            done = time.perf_counter()
            timings.append((done - started, extracted - started, done - extracted))
    total, extraction, checks = min(timings)
    print(f"{len(statements)} statements, {len(findings)} findings")
    print(
        f"extraction {extraction:.2f} s, checks {checks:.2f} s, total {total:.2f} s "
        f"(best of {args.repeat})"
    )
    print(f"per statement: {checks / len(statements) * 1000:.2f} ms")
    print(
        f"| {len(statements):,} statements ({platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}) | extraction {extraction:.2f} s | checks {checks:.2f} s | "
        f"total {total:.2f} s | target < 2 s |"
    )


if __name__ == "__main__":
    main()
