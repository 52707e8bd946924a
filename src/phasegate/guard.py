"""The rollback guard: watch a service during and after read cutover, decide per
data type whether to hold or roll its reads back to KV.

The spec's triggers, each a setting (the earlier RFC's stricter numbers in
brackets):

- **latency**: an endpoint's p95 over ``guard_p95_ms`` (500) *sustained* for
  ``guard_window`` (600 s; RFC 300 s). Sustained means: the window is cut into
  ``guard_sub_windows`` (5) consecutive sub-windows, and in *every* one the
  endpoint had at least ``guard_min_requests`` (20) requests and a p95 over the
  threshold. One bad sub-window is a spike, not a rollback.
- **errors**: an endpoint's error rate (HTTP 5xx) over ``guard_error_percent``
  (5%; RFC 1%) over the window, with at least ``guard_min_requests`` requests.
- **data loss**, at once: a shadow read of a type reading Postgres that still
  differed from KV after its recheck (the service's status, with ``--shadow``);
  a dual-write journal entry Postgres refused for good (the journal marks it
  set aside); a reconcile that left a key open (its report's ``still_different``
  or ``repair_failed``).

A type none of whose endpoints had ``guard_min_requests`` requests in each
sub-window (or whose window has not been watched whole) is **inconclusive**:
an idle endpoint is not a healthy one. Otherwise it **holds**.

The error budget after cutover (7 days at ``error_budget_percent``) is reported
as spent and left over the span the guard watched. With ``act`` the guard
flips a breaching type's reads back to ``kv`` through the service's admin
endpoint and records the event (time, type, trigger, evidence) in its journal.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phasegate.endpoints import ENDPOINT_TYPES
from phasegate.errors import ServerError, UsageError
from phasegate.gates.result import CheckResult, Status

Sample = tuple[float, str, str, float, int]  # epoch s, endpoint, type, ms, status
HOLD, ROLL_BACK, INCONCLUSIVE = "hold", "roll back", "inconclusive"
BUDGET_DAYS = 7


@dataclass(frozen=True)
class Triggers:
    p95_ms: float = 500.0
    window_s: float = 600.0
    sub_windows: int = 5
    min_requests: int = 20
    error_percent: float = 5.0
    budget_percent: float = 0.1  # errors the 7-day budget allows, percent of requests

    @classmethod
    def of(cls, settings: Any) -> Triggers:
        return cls(
            settings.guard_p95_ms,
            settings.guard_window,
            settings.guard_sub_windows,
            settings.guard_min_requests,
            settings.guard_error_percent,
            settings.error_budget_percent,
        )


@dataclass(frozen=True)
class SubWindow:
    start: float
    requests: int
    p95_ms: float | None
    error_percent: float


@dataclass(frozen=True)
class Decision:
    """One type's verdict with its evidence."""

    type_id: str
    decision: str
    trigger: str  # "" when holding
    reason: str
    windows: dict[str, list[SubWindow]] = field(default_factory=dict)  # per endpoint
    mismatches: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank p95.

    >>> p95([10.0] * 95 + [900.0] * 5), p95([10.0] * 94 + [900.0] * 6)
    (10.0, 900.0)
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(0.95 * len(ordered))) - 1]


def sub_windows(samples: Iterable[Sample], end: float, t: Triggers) -> dict[str, list[SubWindow]]:
    """Per endpoint, the trigger window ending at ``end`` cut into sub-windows."""
    width = t.window_s / t.sub_windows
    start = end - t.window_s
    times: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(t.sub_windows)])
    errors: dict[str, list[int]] = defaultdict(lambda: [0] * t.sub_windows)
    for at, endpoint, _type, ms, status in samples:
        if start <= at < end:
            i = min(int((at - start) / width), t.sub_windows - 1)
            times[endpoint][i].append(ms)
            errors[endpoint][i] += status >= 500
    return {
        name: [
            SubWindow(
                round(start + i * width, 3),
                len(ms),
                p95(ms),
                round(100.0 * errors[name][i] / len(ms), 2) if ms else 0.0,
            )
            for i, ms in enumerate(cuts)
        ]
        for name, cuts in times.items()
    }


def decide(
    type_id: str,
    samples: Sequence[Sample],
    *,
    end: float,
    watched_from: float,
    triggers: Triggers,
    mismatches: Sequence[str] = (),
) -> Decision:
    """Hold, roll back or inconclusive for one type at time ``end``."""
    t = triggers
    if mismatches:
        return Decision(
            type_id,
            ROLL_BACK,
            "data loss",
            f"{len(mismatches)} signs of data loss, first: {mismatches[0]}",
            mismatches=tuple(mismatches[:20]),
        )
    mine = [s for s in samples if s[2] == type_id]
    windows = sub_windows(mine, end, t)
    if end - watched_from < t.window_s:
        return Decision(
            type_id,
            INCONCLUSIVE,
            "",
            f"watched {end - watched_from:.0f} s of the {t.window_s:g} s window",
            windows,
        )
    judged = {n: w for n, w in windows.items() if all(s.requests >= t.min_requests for s in w)}
    for name, w in sorted(judged.items()):
        if all(s.p95_ms is not None and s.p95_ms > t.p95_ms for s in w):
            return Decision(
                type_id,
                ROLL_BACK,
                "p95",
                f"{name}: p95 over {t.p95_ms:g} ms in all {t.sub_windows} sub-windows of "
                f"{t.window_s:g} s (" + ", ".join(f"{s.p95_ms:g}" for s in w) + " ms)",
                windows,
            )
    for name, w in sorted(windows.items()):
        requests = sum(s.requests for s in w)
        failed = sum(round(s.requests * s.error_percent / 100) for s in w)
        if requests >= t.min_requests and 100.0 * failed / requests > t.error_percent:
            return Decision(
                type_id,
                ROLL_BACK,
                "errors",
                f"{name}: {100.0 * failed / requests:.1f}% of {requests} requests failed "
                f"over {t.window_s:g} s (limit {t.error_percent:g}%)",
                windows,
            )
    if not judged:
        return Decision(
            type_id,
            INCONCLUSIVE,
            "",
            f"no endpoint had {t.min_requests} requests in every sub-window: too idle to judge",
            windows,
        )
    return Decision(
        type_id,
        HOLD,
        "",
        f"{len(judged)} endpoints judged over {t.window_s:g} s: p95 and errors within limits",
        windows,
    )


@dataclass
class Budget:
    """The 7-day error budget after cutover: requests and failures seen, and the span."""

    budget_percent: float
    requests: int = 0
    failed: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, samples: Iterable[Sample]) -> None:
        for at, _name, _type, _ms, status in samples:
            self.requests += 1
            self.failed += status >= 500
            self.first = at if self.first is None else min(self.first, at)
            self.last = at if self.last is None else max(self.last, at)

    def as_json(self) -> dict[str, Any]:
        """Spent: failures as a share of what the budget allows for the requests seen."""
        allowed = self.requests * self.budget_percent / 100
        spent = 100.0 * self.failed / allowed if allowed else (100.0 if self.failed else 0.0)
        span = (self.last or 0.0) - (self.first or 0.0)
        return {
            "budget_days": BUDGET_DAYS,
            "budget_percent": self.budget_percent,
            "watched_s": round(span, 1),
            "requests": self.requests,
            "failed": self.failed,
            "spent_percent": round(spent, 1),
            "left_percent": round(max(0.0, 100.0 - spent), 1),
        }


@dataclass
class Service:
    """A running service's metric stream, status and admin endpoint."""

    url: str
    token: str | None = None
    since: float = 0.0

    def _json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(self.url.rstrip("/") + path)
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("content-type", "application/json")
            if self.token:
                request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise UsageError(
                f"{self.url}{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:200]}"
            ) from None
        except OSError as exc:
            raise ServerError(f"cannot reach the service at {self.url}: {exc}") from None

    def poll(self) -> tuple[float, list[Sample]]:
        got = self._json(f"/_phasegate/metrics?since={self.since}")
        samples: list[Sample] = [tuple(s) for s in got["samples"]]
        if samples:
            self.since = max(s[0] for s in samples)
        return float(got["now"]), samples

    def mismatches(self) -> dict[str, list[str]]:
        """Shadow mismatches that survived their recheck, per type reading Postgres."""
        status = self._json("/_phasegate/status")
        reading_pg = {t for t, s in self.read_modes().items() if s == "pg"}
        mismatches: dict[str, list[str]] = defaultdict(list)
        for endpoint, seen in ((status.get("shadow") or {}).get("pg") or {}).items():
            type_id = ENDPOINT_TYPES.get(endpoint, "")
            if type_id in reading_pg:
                mismatches[type_id].extend(str(m) for m in seen.get("mismatches", []))
        return mismatches

    def admin(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST the admin endpoint (modes, drill delays); returns the modes after."""
        result: dict[str, Any] = self._json("/_phasegate/admin/modes", body)
        return result

    def read_modes(self) -> dict[str, str]:
        modes: dict[str, str] = self._json("/health")["modes"]["read"]
        return modes

    def roll_back(self, type_id: str) -> dict[str, Any]:
        return self.admin({"read": {type_id: "kv"}})


def losses(journal: Path | None, reconcile_report: Path | None) -> dict[str, list[str]]:
    """Data loss on record, per type: journal entries Postgres refused for good, and
    keys the last reconcile left open."""
    out: dict[str, list[str]] = defaultdict(list)
    if journal is not None and journal.is_file():
        from phasegate.journal import Journal

        book = Journal(journal)
        refused = dict(book.refused())
        for entry in book.entries():
            if entry.id in refused and entry.failed == "pg":
                for type_id in entry.type_ids:
                    out[type_id].append(
                        f"journal entry {entry.id} ({entry.op}): Postgres refused it for good: "
                        f"{refused[entry.id]}"
                    )
    if reconcile_report is not None and reconcile_report.is_file():
        section = json.loads(reconcile_report.read_text()).get("reconcile") or {}
        for type_id, row in (section.get("types") or {}).items():
            for kind in ("still_different", "repair_failed"):
                for key in row.get(kind, []):
                    what = kind.replace("_", " ")
                    out[type_id].append(
                        f"reconcile {reconcile_report.name} left {key} open ({what})"
                    )
    return out


def newest_reconcile_report(folder: Path) -> Path | None:
    """The last ``phasegate reconcile`` report in ``folder`` (names sort by time)."""
    reports = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return reports[-1] if reports else None


@dataclass
class Watch:
    """What one guard run saw and decided."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)


def watch(
    service: Service,
    triggers: Triggers,
    *,
    duration_s: float,
    poll_s: float = 1.0,
    types: Sequence[str] | None = None,
    act: bool = False,
    journal: Path | None = None,
    on_poll: Callable[[Watch], None] | None = None,
    recorded: Callable[[], dict[str, list[str]]] | None = None,
) -> Watch:
    """Poll the service for ``duration_s``; decide per type after each poll; with
    ``act`` roll a breaching type's reads back (once) and record the event."""
    started = time.time()
    service.since = started
    samples: list[Sample] = []  # the trigger window
    budget = Budget(triggers.budget_percent)
    out = Watch()
    judged = list(types or sorted(set(ENDPOINT_TYPES.values())))
    while True:
        now, new = service.poll()
        samples.extend(new)
        samples = [s for s in samples if s[0] >= now - triggers.window_s]
        mismatches = service.mismatches()
        for type_id, lost in (recorded() if recorded else {}).items():
            mismatches.setdefault(type_id, []).extend(lost)
        budget.add(new)
        for type_id in judged:
            previous = out.decisions.get(type_id)
            if previous is not None and previous.decision == ROLL_BACK:
                continue  # decided; it reads KV again (with --act)
            d = decide(
                type_id,
                samples,
                end=now,
                watched_from=started,
                triggers=triggers,
                mismatches=mismatches.get(type_id, ()),
            )
            out.decisions[type_id] = d
            if d.decision == ROLL_BACK:
                event = {"at": now, "type": type_id, "trigger": d.trigger, "evidence": d.reason}
                if act:
                    event["modes"] = service.roll_back(type_id)["read"]
                event["acted"] = act
                out.events.append(event)
                if journal is not None:
                    with journal.open("a") as f:
                        f.write(json.dumps({"guard": event}) + "\n")
        out.budget = budget.as_json()
        if on_poll is not None:
            on_poll(out)
        if now - started >= duration_s:
            return out
        time.sleep(poll_s)


def as_check(d: Decision, triggers: Triggers, event: dict[str, Any] | None = None) -> CheckResult:
    """A decision as the Phase C gate's ``rollback-guard`` check of its type."""
    statuses: dict[str, Status] = {HOLD: "pass", ROLL_BACK: "fail", INCONCLUSIVE: "inconclusive"}
    status = statuses[d.decision]
    details = [
        f"{name}: "
        + ", ".join(f"{w.requests} req p95 {w.p95_ms} ms {w.error_percent}% err" for w in ws)
        for name, ws in sorted(d.windows.items())
    ]
    return CheckResult(
        "C",
        d.type_id,
        "rollback-guard",
        status,
        f"{d.decision}" + (f" ({d.trigger})" if d.trigger else "") + f": {d.reason}",
        tuple([*d.mismatches[:5], *details][:10]),
        {"decision": d.decision, "trigger": d.trigger, **({"event": event} if event else {})},
        asdict(triggers),
    )
