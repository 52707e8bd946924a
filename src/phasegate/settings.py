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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasegate.errors import UsageError
from phasegate.redact import redact
from phasegate.settings_decl import PHASES, SCALES, SETTINGS, Setting

__all__ = ["PHASES", "SCALES", "SETTINGS", "Setting", "Settings", "redact_url", "resolve"]

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
    buckets: str | None
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
    guard_service: str | None
    guard_p95_ms: float
    guard_window: float
    guard_sub_windows: int
    guard_min_requests: int
    guard_error_percent: float
    archive: str | None
    archive_retention_days: int
    restore_ttl_tolerance: float
    memo_dir: str
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

    def memo_path(self) -> Path | None:
        """The decode memos' folder, or None when they are off."""
        text = self.memo_dir.strip()
        return None if text.lower() in {"", "off", "none"} else Path(text).expanduser()

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
