"""Every phasegate setting, declared once and resolved once.

Precedence: CLI flag, then ``PHASEGATE_*`` environment variable, then
``[tool.phasegate]`` in pyproject.toml, then the default. The README's settings
table is generated from :data:`SETTINGS` (``phasegate settings``) so the two
cannot drift.

>>> s = resolve(flags={"seed": "3"}, env={"PHASEGATE_SEED": "5"}, pyproject={})
>>> s.seed
3
>>> redact_url("postgresql://app:hunter2@db:5432/vibe")
'postgresql://app:***@db:5432/vibe'
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasegate.errors import UsageError
from phasegate.redact import SecretUrl, redact
from phasegate.urls import check_http_url, check_kv_url, check_pg_url

PHASES = ("A", "B", "C", "D")
SCALES = ("now", "6mo", "12mo")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _phase(raw: str) -> str:
    return _choice(*PHASES)(raw.strip().upper())


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _percent(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 100:
        raise ValueError("expected a percentage above 0, at most 100")
    return value


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def _duration(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"(\d+[hms])+|\d+", value):
        raise ValueError("expected a Locust run time such as 30s, 5m or 1h30m")
    return value


def _kv_url(raw: str) -> SecretUrl:
    return SecretUrl(check_kv_url(raw))


def _pg_url(raw: str) -> SecretUrl:
    return SecretUrl(check_pg_url(raw))


def _http_url(raw: str) -> SecretUrl:
    return SecretUrl(check_http_url(raw))


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a number of seconds above 0")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting: its name, where it can come from, and what it means."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    metavar: str = ""
    has_flag: bool = True  # False: read when phasegate is imported, so env or pyproject only

    @property
    def is_flag(self) -> bool:
        """A boolean given as a bare ``--flag`` on the command line."""
        return self.parse is _flag

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "PHASEGATE_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("kv_url", None, _kv_url, "Target Redis/Upstash KV to verify (read only).", "URL"),
    Setting("pg_url", None, _pg_url, "Target Postgres to verify (read only).", "URL"),
    Setting(
        "sandbox_kv_url",
        None,
        _kv_url,
        "Redis server for scratch stores (one DB per worker); default: embedded Valkey.",
        "URL",
    ),
    Setting(
        "sandbox_pg_url",
        None,
        _pg_url,
        "Postgres server for scratch databases; default: embedded Postgres.",
        "URL",
    ),
    Setting(
        "docker",
        "auto",
        _choice("auto", "never"),
        "Use testcontainers when a Docker daemon answers a 2 s ping (auto) or never.",
        "auto|never",
    ),
    Setting("phase", None, _phase, "Phase whose exit gate runs: A, B, C or D.", "A|B|C|D"),
    Setting("seed", 7, int, "Seed for fixture generation and the parity sample.", "N"),
    Setting("scale", "now", _choice(*SCALES), "Fixture scale: now, 6mo or 12mo.", "SCALE"),
    Setting(
        "sample_rate",
        10.0,
        _percent,
        "Percent of records compared field by field (hash(seed, key) mod 100 < rate).",
        "PCT",
    ),
    Setting("full", False, _flag, "Also compare every record (the full diff)."),
    Setting(
        "pg_only_allowlist",
        None,
        str,
        "File of Postgres-only rows that are expected ('<type> <key> [<key>...]' per line).",
        "FILE",
    ),
    Setting(
        "schema",
        None,
        str,
        "DDL file the shape checks read indexes from; default: --pg-url's catalog, "
        "else phasegate's schema.",
        "FILE",
    ),
    Setting(
        "seqscan_rows",
        10_000,
        _positive,
        "Plan check: a Seq Scan on a table with more rows than this fails.",
        "N",
    ),
    Setting("load_users", 100, _positive, "Load: concurrent Locust users.", "N"),
    Setting("load_run_time", "30s", _duration, "Load: run length (Locust -t: 30s, 5m).", "TIME"),
    Setting("p95_budget_ms", 200.0, float, "Load: p95 budget per endpoint, in ms.", "MS"),
    Setting(
        "load_min_requests",
        10,
        _positive,
        "Load: requests an endpoint needs before its p95 and errors are judged "
        "(fewer: inconclusive).",
        "N",
    ),
    Setting(
        "error_budget_percent", 0.1, _percent, "Load: failed requests allowed per endpoint.", "PCT"
    ),
    Setting(
        "throughput_floor_rpm", 1000.0, float, "Load: total requests per minute required.", "RPM"
    ),
    Setting(
        "baseline_file",
        "reports/load-baseline.json",
        str,
        "Load: p95 per endpoint recorded by `phasegate load baseline` (reads from KV).",
        "FILE",
    ),
    Setting(
        "baseline_tolerance_percent",
        20.0,
        float,
        "Load: how much a p95 may grow over the baseline.",
        "PCT",
    ),
    Setting(
        "load_host",
        None,
        _http_url,
        "Load: an HTTP base URL to load instead of the reference service (the real app).",
        "URL",
    ),
    Setting(
        "divergence_budget_percent",
        5.0,
        float,
        "Phase B: shadow-read divergence allowed per endpoint (the RFC said 0.1).",
        "PCT",
    ),
    Setting(
        "write_failure_budget_percent",
        1.0,
        float,
        "Phase B: dual writes allowed to miss a store before the alert.",
        "PCT",
    ),
    Setting(
        "burst_writes",
        120,
        _positive,
        "Phase B: app writes per data type in the gate's fault burst.",
        "N",
    ),
    Setting(
        "store_timeout",
        30.0,
        _seconds,
        "Seconds one store operation may take (a read, a batch of a stream) before the "
        "store counts as not answering.",
        "S",
    ),
    Setting(
        "gate_timeout",
        3600.0,
        _seconds,
        "Seconds a whole gate run (pytest --phase=X) may take before it stops as an error.",
        "S",
    ),
    Setting("reports_dir", "reports", str, "Where gate runs write reports/<run-id>/.", "DIR"),
    Setting("reports_keep", 20, _positive, "Run folders kept in reports_dir (older pruned).", "N"),
    Setting(
        "mappings",
        None,
        str,
        "Your own mapping modules, comma-separated (each defines MAPPING), added to the "
        "/vibe set; environment or pyproject only (also the phasegate.mappings entry points).",
        "MODULES",
        has_flag=False,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run; immutable once made."""

    kv_url: str | None
    pg_url: str | None
    sandbox_kv_url: str | None
    sandbox_pg_url: str | None
    docker: str
    phase: str | None
    seed: int
    scale: str
    sample_rate: float
    full: bool
    pg_only_allowlist: str | None
    schema: str | None
    seqscan_rows: int
    load_users: int
    load_run_time: str
    p95_budget_ms: float
    load_min_requests: int
    error_budget_percent: float
    throughput_floor_rpm: float
    baseline_file: str
    baseline_tolerance_percent: float
    load_host: str | None
    divergence_budget_percent: float
    write_failure_budget_percent: float
    burst_writes: int
    store_timeout: float
    gate_timeout: float
    reports_dir: str
    reports_keep: int
    mappings: str | None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{s.name}={redact_url(v) if isinstance(v := getattr(self, s.name), str) else v!r}"
            for s in SETTINGS
        )
        return f"Settings({shown})"

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows of (setting, value with secrets hidden, where it came from)."""
        rows = []
        for s in SETTINGS:
            value = getattr(self, s.name)
            text = redact_url(value) if isinstance(value, str) else str(value)
            rows.append((s.name, text, self.sources.get(s.name, "default")))
        return rows


def load_pyproject(start: Path | None = None) -> dict[str, Any]:
    """Return ``[tool.phasegate]`` from the nearest pyproject.toml above ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            with candidate.open("rb") as fh:
                data = tomllib.load(fh)
            section = data.get("tool", {}).get("phasegate", {})
            return dict(section) if isinstance(section, dict) else {}
    return {}


def resolve(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    pyproject: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every setting: flag, then environment, then pyproject, then default.

    ``flags`` maps setting names to values given on the command line (``None``
    means not given). Unknown pyproject keys are an error, so typos do not pass.
    """
    flags = flags or {}
    env = os.environ if env is None else env
    pyproject = load_pyproject() if pyproject is None else pyproject
    unknown = sorted(set(pyproject) - set(_BY_NAME))
    if unknown:
        raise UsageError(
            f"unknown setting(s) in [tool.phasegate]: {', '.join(unknown)}",
            hint=f"known settings: {', '.join(_BY_NAME)}",
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        for origin, raw in (
            (s.flag, flags.get(s.name)),
            (s.env, env.get(s.env) or None),
            ("pyproject.toml", pyproject.get(s.name)),
        ):
            if raw is None:
                continue
            try:
                values[s.name] = s.parse(str(raw))
            except ValueError as exc:
                shown = redact_url(str(raw))
                raise UsageError(f"{origin}={shown}: {exc}", hint=s.help) from None
            sources[s.name] = origin
            break
        else:
            values[s.name] = s.default
    from phasegate.mappings import LOAD_ERRORS

    if LOAD_ERRORS:
        name, why = next(iter(LOAD_ERRORS.items()))
        raise UsageError(
            f"mapping module {name} could not be loaded: {why}",
            hint="PHASEGATE_MAPPINGS (or mappings in pyproject.toml) names importable modules, "
            "each defining MAPPING (see docs/adding-a-data-type.md)",
        )
    return Settings(**values, sources=sources)


def redact_url(text: str) -> str:
    """Hide every secret of every URL in ``text`` (see :func:`phasegate.redact.redact`).

    >>> redact_url("redis://default:s3cret@kv.upstash.io:6379")
    'redis://default:***@kv.upstash.io:6379'
    >>> redact_url("redis://:s3cret@host/0")
    'redis://:***@host/0'
    """
    return redact(text)


def settings_table() -> str:
    """The README table of settings, in Markdown."""
    lines = ["| setting | flag | environment | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = "(none)" if s.default is None else f"`{s.default}`"
        flag = f"`{s.flag}`" if s.has_flag else "(none)"
        lines.append(f"| {s.name} | {flag} | `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines)
