"""The ``phasegate_findings`` table: each type's latest findings, kept by the backfill.

Every finding is stored once (identified by a digest of its text), under the
run that first found it; a re-run finding the same writes nothing.
"""

from __future__ import annotations

import hashlib
import json

from phasegate.findings import Finding
from phasegate.parity.postgres import PgConn


def store_findings(pg: PgConn, run_id: str, type_id: str, findings: list[Finding]) -> None:
    """Make ``phasegate_findings`` hold exactly these findings of the type: the ones
    no longer found are deleted, new ones inserted under ``run_id``, the rest are
    left as they are (a re-run finding the same writes nothing)."""
    rows = {}
    for f in findings:
        values = (f.kind, str(f.severity), f.key, f.field, f.detail, f.raw)
        text = tuple(None if v is None else _pg_text(v) for v in values)
        ident = hashlib.blake2b(json.dumps(text).encode(), digest_size=16).hexdigest()
        rows[ident] = text
    with pg.transaction(), pg.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE phasegate_findings_now (LIKE phasegate_findings) ON COMMIT DROP"
        )
        with cur.copy(
            "COPY phasegate_findings_now "
            "(run_id, type_id, kind, severity, key, field, detail, raw, ident) FROM STDIN"
        ) as copy:
            for ident, text in rows.items():
                copy.write_row((run_id, type_id, *text, ident))
        cur.execute(
            "DELETE FROM phasegate_findings f WHERE f.type_id = %s AND NOT EXISTS "
            "(SELECT 1 FROM phasegate_findings_now n WHERE n.ident = f.ident)",
            (type_id,),
        )
        cur.execute(
            "INSERT INTO phasegate_findings SELECT * FROM phasegate_findings_now n "
            "WHERE NOT EXISTS (SELECT 1 FROM phasegate_findings f "
            "WHERE f.type_id = %s AND f.ident = n.ident)",
            (type_id,),
        )


def _pg_text(value: str) -> str:
    """Postgres text cannot hold NUL; keep it visible instead."""
    return value.replace("\x00", "\\x00")
