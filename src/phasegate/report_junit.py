"""The run as JUnit XML (``junit.xml`` in the run's folder), for CI test views.

One ``testsuite`` per phase, one ``testcase`` per check with the id
``<type>-<check>`` (what ``pytest -k`` selects), classname ``phasegate.<phase>``.
A failed check is a ``failure`` (its message, the examples as text); an
inconclusive one is ``skipped`` with a message saying so, never a pass; a test
that broke without a result is an ``error`` with its cause. Values are escaped
by the XML writer, so any text a finding carries is safe.

>>> from phasegate.gates.result import CheckResult
>>> from phasegate.report import Summary
>>> from phasegate.report_build import build
>>> s = Summary("r1", "2026-11-25T16:00:00+00:00", "A", {},
...             (CheckResult("A", "friends", "counts", "fail", "1 missing", ("x",)),))
>>> print(render_junit(build(s)).splitlines()[1])
<testsuites name="phasegate r1" tests="1" failures="1" errors="0" skipped="0">
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from phasegate.report_model import Report


def render_junit(report: Report) -> str:
    """The report's checks as JUnit XML."""
    root = ET.Element("testsuites", name=f"phasegate {report.run_id}")
    totals: Counter[str] = Counter()
    for phase in report.phases:
        suite = ET.SubElement(root, "testsuite", name=f"phase {phase.phase}")
        counts: Counter[str] = Counter()
        for r in (c for t in phase.types for c in t.checks):
            case = ET.SubElement(
                suite, "testcase", classname=f"phasegate.{phase.phase}", name=r.test_id
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
    if report.errors:
        suite = ET.SubElement(root, "testsuite", name="errors")
        tests = [(t, e.message) for e in report.errors for t in e.tests]
        for test, message in tests:
            case = ET.SubElement(suite, "testcase", classname="phasegate.error", name=test)
            ET.SubElement(case, "error", message=message.splitlines()[0] if message else "")
        errors = Counter(tests=len(tests), errors=len(tests))
        _attributes(suite, errors)
        totals.update(errors)
    _attributes(root, totals)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _attributes(element: ET.Element, counts: Counter[str]) -> None:
    for name in ("tests", "failures", "errors", "skipped"):
        element.set(name, str(counts[name]))
