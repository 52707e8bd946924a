"""The result of one gate check: verdict, message, metrics, thresholds.

Results travel from a test to the session report as plain dicts (pytest's
``user_properties``), so they survive pytest-xdist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# inconclusive: the check had nothing to judge (no records, too few requests), never a pass
Status = Literal["pass", "fail", "skip", "inconclusive"]
MAX_DETAILS = 10


@dataclass(frozen=True)
class CheckResult:
    """One check of one data type in one phase."""

    phase: str
    type_id: str
    check: str
    status: Status
    message: str
    details: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def explain(self) -> str:
        """The message and its example lines, for an assertion or a terminal."""
        lines = [f"{self.type_id}/{self.check}: {self.message}"]
        lines.extend(f"  - {d}" for d in self.details)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "type": self.type_id,
            "check": self.check,
            "status": self.status,
            "message": self.message,
            "details": list(self.details),
            "metrics": dict(self.metrics),
            "thresholds": dict(self.thresholds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(
            data["phase"],
            data["type"],
            data["check"],
            data["status"],
            data["message"],
            tuple(data["details"]),
            data["metrics"],
            data["thresholds"],
        )


def verdict(
    phase: str,
    type_id: str,
    check: str,
    problems: Sequence[object],
    *,
    ok: str,
    bad: str,
    metrics: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Pass when ``problems`` is empty; otherwise fail showing the first few."""
    shown = tuple(str(p) for p in problems[:MAX_DETAILS])
    if len(problems) > MAX_DETAILS:
        shown += (f"... and {len(problems) - MAX_DETAILS} more",)
    return CheckResult(
        phase,
        type_id,
        check,
        "fail" if problems else "pass",
        bad.format(n=len(problems), s="" if len(problems) == 1 else "s") if problems else ok,
        shown,
        metrics or {},
        thresholds or {},
    )
