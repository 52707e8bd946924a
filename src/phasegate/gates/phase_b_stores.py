"""What the stores hold after a Phase B burst: the evidence the checks judge.

- :func:`durability`: every acknowledged write is in Postgres as acknowledged,
  or in KV as acknowledged with a journal entry saying Postgres missed it;
- :func:`idempotence`: a re-sent write stored nothing twice (one row per logical
  write, one id per KV list, a streak counted once per day).

:class:`Burst` is what one type's burst produced (:mod:`phasegate.gates.phase_b`
runs it and judges these).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from phasegate.app.reads import jsonable
from phasegate.burst import Outcome, Rig
from phasegate.burst_workloads import Workload
from phasegate.dualwrite.change import key_where, label, select_sql
from phasegate.mappings import MAPPINGS
from phasegate.parity.compare import Scope, compare
from phasegate.parity.postgres import AllowList
from phasegate.reconcile import Reconciled
from phasegate.show import shown
from phasegate.stores import connect_kv


@dataclass
class Burst:
    """Everything one type's burst produced, for the checks."""

    type_id: str
    workload: Workload
    outcomes: list[Outcome]
    journal_by_fault: dict[str, int]
    clean_status: dict[str, Any]
    end_status: dict[str, Any]
    journal: list[dict[str, Any]]  # entries: op, failed, labels
    seconds: float
    first: Reconciled | None = None
    second: Reconciled | None = None
    read_diffs: list[str] = field(default_factory=list)  # after reconcile
    reads_compared: int = 0
    read_diffs_before: list[str] = field(default_factory=list)  # before it


def _expected(b: Burst) -> dict[str, dict[str, Any] | None]:
    """Label -> the record as last acknowledged (None: deleted)."""
    out: dict[str, dict[str, Any] | None] = {}
    for o in sorted((o for o in b.outcomes if o.acked), key=lambda o: o.done_at):
        for answer in (o.answer, o.resent_answer if o.resent == 201 else {}):
            for name, record in zip(
                answer.get("written", []), answer.get("records", []), strict=True
            ):
                out[name] = record
            for name in answer.get("deleted", []):
                out[name] = None
            for name, record in zip(
                answer.get("unchanged", []), answer.get("unchanged_records", []), strict=True
            ):
                out[name] = record  # a retry: its first attempt left it so
        if o.write.op == "user_delete":
            # A retry whose first attempt took effect answers "gone already" with no
            # steps; acknowledged either way, the user must be gone.
            out[label("users", (o.write.body["handle"],))] = None
    return out


def pg_record(pg: Any, label: str) -> dict[str, Any] | None:
    type_id, _, key = label.partition(":")
    mapping = MAPPINGS[type_id]
    parts = key.split("|") if len(mapping.key_columns) > 1 else [key]
    row = pg.execute(select_sql(mapping, key_where(mapping)), parts).fetchone()
    return None if row is None else {k: jsonable(v) for k, v in mapping.from_row(row).items()}


def _field_diff(want: dict[str, Any], got: dict[str, Any]) -> str | None:
    for name in sorted(want.keys() | got.keys()):
        if want.get(name) != got.get(name):
            acked, stored = shown(want.get(name), 60), shown(got.get(name), 60)
            return f"field {name}: acknowledged {acked}, stored {stored}"
    return None


def durability(rig: Rig, b: Burst, *, after_reconcile: bool) -> list[str]:
    """Acknowledged writes that are neither in Postgres as acknowledged nor (before
    reconcile) in KV as acknowledged with a journal entry for Postgres."""
    expected = _expected(b)
    journaled_pg = {lab for e in b.journal if e["failed"] == "pg" for lab in e["labels"]}
    kv_side: dict[str, dict[str, Any]] = {}
    problems = []
    with rig.conn() as pg:
        stored = {label: pg_record(pg, label) for label in expected}
        wrong = {lab for lab, want in expected.items() if stored[lab] != want}
        if wrong and not after_reconcile:
            kv_side = _kv_records(rig, {lab.split(":")[0] for lab in wrong}, pg)
    for name in sorted(wrong):
        want, got = expected[name], stored[name]
        if want is None:
            where = "deleted, but still in Postgres"
        elif got is None:
            where = "missing in Postgres"
        else:
            where = f"different in Postgres ({_field_diff(want, got)})"
        if after_reconcile:
            problems.append(f"{name}: acknowledged, {where} after reconcile")
            continue
        in_kv = kv_side.get(name)
        kv_ok = (
            (in_kv is None)
            if want is None
            else (in_kv is not None and _field_diff(want, in_kv) is None)
        )
        if kv_ok and name in journaled_pg:
            continue  # KV has it and the journal will land it in Postgres
        kv_says = (
            "KV has it as acknowledged"
            if kv_ok
            else (
                "KV lacks it" if in_kv is None else f"KV differs ({_field_diff(want or {}, in_kv)})"
            )
        )
        journal_says = "journaled" if name in journaled_pg else "no journal entry for Postgres"
        problems.append(f"{name}: acknowledged (HTTP 201), {where}; {kv_says}; {journal_says}")
    return problems


def _kv_records(rig: Rig, types: Iterable[str], pg: Any) -> dict[str, dict[str, Any]]:
    """KV's records of ``types`` that differ from Postgres (by label)."""
    kv = connect_kv(rig.kv_url)
    try:
        scope = Scope(0, 100.0, datetime.now(UTC), AllowList(), collect=True)
        found = compare(kv, pg, tuple(types), scope)
    finally:
        kv.close()
    out = {}
    for type_id, c in found.types.items():
        mapping = MAPPINGS[type_id]
        for record in c.repairs:
            out[label(type_id, mapping.record_key(record))] = {
                k: jsonable(v) for k, v in record.items()
            }
    return out


# --- idempotence --------------------------------------------------------------

_SIGNATURE = {
    "messages": ("messages", "text"),
    "board": ("board_entries", "content"),
    "games": ("games", "state->>'nonce'"),
}


def idempotence(rig: Rig, b: Burst) -> list[str]:
    problems = [
        f"{o.write.op} {o.write.body}: acknowledged, then the same write sent again got "
        f"HTTP {o.resent} ({o.resent_answer.get('error', '')})"
        for o in b.outcomes
        if o.resent is not None and o.resent != 201 and o.resent < 500
    ]
    with rig.conn() as pg:
        if b.type_id in _SIGNATURE:
            table, column = _SIGNATURE[b.type_id]
            query = (
                f"SELECT {column}, count(*), string_agg(id, ', ' ORDER BY id) FROM {table} "
                f"WHERE {column} LIKE %s GROUP BY 1 HAVING count(*) > 1 ORDER BY 1"
            )
            for signature, count, ids in pg.execute(query, (f"%{b.workload.nonce}%",)):
                problems.append(
                    f"{b.type_id}: one write stored {count} times in Postgres "
                    f"({column} {signature!r}; ids {ids})"
                )
        if b.type_id == "streaks":
            problems += _streak_counts(pg, b)
    problems += _kv_list_duplicates(rig, b)
    return problems


def _streak_counts(pg: Any, b: Burst) -> list[str]:
    """Each handle's streak is the run of acknowledged consecutive days: a day
    counted twice (a non-idempotent check-in) shows as a longer streak."""
    days: dict[str, set[date]] = {}
    for o in b.outcomes:
        if o.acked:
            days.setdefault(o.write.body["handle"], set()).add(
                date.fromisoformat(o.write.body["day"])
            )
    out = []
    for handle, acked in sorted(days.items()):
        last = max(acked)
        run = 0
        while last - timedelta(days=run) in acked:
            run += 1
        row = pg.execute(
            "SELECT current_streak FROM streaks WHERE handle = %s", (handle,)
        ).fetchone()
        if row is None or row[0] != run:
            got = None if row is None else row[0]
            out.append(
                f"streaks:{handle}: current_streak {got}, expected {run} (one per acknowledged day)"
            )
    return out


def _kv_list_duplicates(rig: Rig, b: Burst) -> list[str]:
    """An id listed twice in an index list (inbox, outbox, board category or
    author) is a duplicate the app would show twice."""
    lists = set()
    for o in b.outcomes:
        for record in o.answer.get("records", []):
            if b.type_id == "messages":
                lists |= {f"inbox:{record['to_user']}", f"outbox:{record['from_user']}"}
            elif b.type_id == "board":
                lists |= {f"board:category:{record['category']}", f"board:user:{record['author']}"}
    kv = connect_kv(rig.kv_url)
    try:
        with kv.pipeline(transaction=False) as pipe:
            names = sorted(lists)
            for name in names:
                pipe.lrange(name, 0, -1)
            contents = cast(list[list[bytes]], pipe.execute())
    finally:
        kv.close()
    return [
        f"{b.type_id}: {name} lists {element.decode()} {count} times"
        for name, ids in zip(names, contents, strict=True)
        for element, count in sorted(Counter(ids).items())
        if count > 1
    ]


# --- reconcile and shadow -----------------------------------------------------
