"""Every phasegate setting declared: name, default, parser, help, flag.

:mod:`phasegate.settings` resolves them (flag, environment, pyproject,
default) into one frozen :class:`~phasegate.settings.Settings`; the README's
settings table is generated from :data:`SETTINGS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phasegate.redact import SecretUrl
from phasegate.urls import check_http_url, check_kv_url, check_pg_url

PHASES = ("A", "B", "C", "D")
SCALES = ("now", "6mo", "12mo", "10x")


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


def _share(raw: str) -> str:
    from phasegate.parity.buckets import Share  # the parser lives beside the buckets

    return str(Share.parse(raw))


def _milliseconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a number of milliseconds above 0")
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

    def option_help(self, default: bool = False) -> str:
        """The help of its flag, for argparse (and pytest's parser, which is argparse):
        ``%`` escaped, since argparse expands ``%(default)s`` forms in help text."""
        shown = "none" if self.default is None else self.default
        where = f"env {self.env}; default {shown}" if default else f"env {self.env}"
        return f"{self.help} [{where}]".replace("%", "%%")


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
    Setting(
        "scale",
        "now",
        _choice(*SCALES),
        "Fixture scale: now, 6mo, 12mo or 10x (ten times 12mo, for benchmarks).",
        "SCALE",
    ),
    Setting(
        "sample_rate",
        10.0,
        _percent,
        "Percent of records compared field by field (hash(seed, key) mod 100 < rate).",
        "PCT",
    ),
    Setting("full", False, _flag, "Also compare every record (the full diff)."),
    Setting(
        "buckets",
        None,
        _share,
        "Phase A gate (pytest only): take share i of N of the record buckets, so N CI "
        "jobs split one keyspace; `phasegate report merge` joins their reports.",
        "i/N",
    ),
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
    Setting(
        "guard_service",
        None,
        _http_url,
        "Rollback guard: the running service the Phase C gate's rollback-guard check "
        "watches for --guard-window seconds (it only reports; `phasegate guard --act` acts).",
        "URL",
    ),
    Setting(
        "guard_p95_ms",
        500.0,
        _milliseconds,
        "Rollback guard: an endpoint's p95 above this, sustained over the window, rolls "
        "its type's reads back to KV.",
        "MS",
    ),
    Setting(
        "guard_window",
        600.0,
        _seconds,
        "Rollback guard: seconds a breach must be sustained (the spec's 10 minutes; the "
        "earlier RFC's was 300).",
        "S",
    ),
    Setting(
        "guard_sub_windows",
        5,
        _positive,
        "Rollback guard: consecutive sub-windows the window is judged in; every one must "
        "breach (one bad sub-window is a spike).",
        "N",
    ),
    Setting(
        "guard_min_requests",
        20,
        _positive,
        "Rollback guard: requests an endpoint needs in each sub-window to be judged "
        "(fewer: inconclusive, never healthy).",
        "N",
    ),
    Setting(
        "guard_error_percent",
        5.0,
        _percent,
        "Rollback guard: an endpoint's error rate above this over the window rolls its "
        "type back (the spec's 5%; the earlier RFC's was 1%).",
        "PCT",
    ),
    Setting(
        "archive",
        None,
        str,
        "Phase D: the KV archive to gate (a folder `phasegate archive` wrote); default: "
        "the gate takes one of --kv-url (read only) into a temporary folder.",
        "DIR",
    ),
    Setting(
        "archive_retention_days",
        30,
        _positive,
        "Phase D: days an archive is kept before it may be deleted (the spec's 30).",
        "DAYS",
    ),
    Setting(
        "restore_ttl_tolerance",
        5.0,
        _seconds,
        "Phase D: seconds a restored key's expiry may differ from the archive's.",
        "S",
    ),
    Setting(
        "memo_dir",
        "~/.cache/phasegate/memo",
        str,
        "Phase A and backfill: decode memos, so a bucket unchanged in KV since a run "
        "that decoded it, and equal in Postgres, is not decoded again (never in the "
        "stores); `off`: decode everything.",
        "DIR",
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
