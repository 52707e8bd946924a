"""The run as JUnit XML (``junit.xml`` in the run's folder), for CI test views.

One ``testsuite`` per phase, one ``testcase`` per check with the id
``<type>-<check>`` (what ``pytest -k`` selects), classname ``phasegate.<phase>``.
A failed check is a ``failure`` (its message, the examples as text); an
inconclusive one is ``skipped`` with a message saying so, never a pass; a test
that broke without a result is an ``error`` with its cause. Values are escaped
by the XML writer, so any text a finding carries is safe.

>>> from phasegate.report import Summary
>>> s = Summary("r1", "2026-11-25T16:00:00+00:00", "A", {},
...             (CheckResult("A", "friends", "counts", "fail", "1 missing", ("x",)),))
>>> print(render_junit(s).splitlines()[1])
<testsuites name="phasegate r1" tests="1" failures="1" errors="0" skipped="0">
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import TYPE_CHECKING

from phasegate.gates.result import CheckResult

if TYPE_CHECKING:  # report.py writes junit.xml with this module
    from phasegate.report import Summary


def render_junit(summary: Summary) -> str:
    """The summary's checks as JUnit XML."""
    by_phase: dict[str, list[CheckResult]] = {}
    for r in summary.results:
        by_phase.setdefault(r.phase, []).append(r)
    root = ET.Element("testsuites", name=f"phasegate {summary.run_id}")
    totals: Counter[str] = Counter()
    for phase, results in sorted(by_phase.items()):
        suite = ET.SubElement(root, "testsuite", name=f"phase {phase}")
        counts: Counter[str] = Counter()
        for r in results:
            case = ET.SubElement(
                suite, "testcase", classname=f"phasegate.{phase}", name=f"{r.type_id}-{r.check}"
            )
            counts["tests"] += 1
            text = "\n".join(r.details) or None
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.message).text = text
                counts["failures"] += 1
            elif r.status in ("skip", "inconclusive"):
                prefix = "inconclusive: " if r.status == "inconclusive" else ""
                ET.SubElement(case, "skipped", message=prefix + r.message)
                counts["skipped"] += 1
        _attributes(suite, counts)
        totals.update(counts)
    if summary.errors:
        suite = ET.SubElement(root, "testsuite", name="errors")
        for test, message in summary.errors:
            case = ET.SubElement(suite, "testcase", classname="phasegate.error", name=test)
            ET.SubElement(case, "error", message=message.splitlines()[0] if message else "")
        errors = Counter(tests=len(summary.errors), errors=len(summary.errors))
        _attributes(suite, errors)
        totals.update(errors)
    _attributes(root, totals)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _attributes(element: ET.Element, counts: Counter[str]) -> None:
    for name in ("tests", "failures", "errors", "skipped"):
        element.set(name, str(counts[name]))
