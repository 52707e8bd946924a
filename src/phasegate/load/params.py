"""Request parameters drawn from the loaded data, so load hits real rows.

Written to a JSON file the locustfiles read (``PHASEGATE_LOAD_PARAMS``); taken
from Postgres (read only), which after a backfill holds what KV holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from phasegate.errors import UsageError

LIMIT = 200  # values per list
_SAMPLES = {
    "inbox_handles": "SELECT to_user FROM messages GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
    "thread_pairs": "SELECT from_user, to_user FROM messages GROUP BY 1, 2 "
    "ORDER BY count(*) DESC, 1, 2 LIMIT %s",
    "categories": "SELECT category FROM board_entries WHERE category IS NOT NULL "
    "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
    "streak_handles": "SELECT handle FROM streaks ORDER BY handle LIMIT %s",
    "invite_creators": "SELECT created_by FROM invites WHERE created_by IS NOT NULL "
    "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
    "pending_handles": "SELECT to_user FROM connections WHERE status = 'pending' "
    "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
    "friend_handles": "SELECT handle FROM friends GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s",
    "players": "SELECT p FROM games, unnest(players) AS p GROUP BY 1 ORDER BY count(*) DESC, 1 "
    "LIMIT %s",
    "users": "SELECT handle FROM users ORDER BY handle LIMIT %s",
}


def sample(conn: psycopg.Connection[Any], limit: int = LIMIT) -> dict[str, list[Any]]:
    """Lists of real values per parameter kind."""
    out: dict[str, list[Any]] = {}
    for name, query in _SAMPLES.items():
        rows = conn.execute(query, (limit,)).fetchall()
        out[name] = [list(r) if len(r) > 1 else r[0] for r in rows]
    empty = [n for n in ("inbox_handles", "thread_pairs", "users") if not out[n]]
    if empty:
        raise UsageError(
            f"no {', '.join(empty)} in the database: load needs seeded, backfilled data",
            hint="phasegate seed, schema apply and backfill first (or run the sandbox default)",
        )
    return out


def write(params: dict[str, list[Any]], path: Path) -> Path:
    path.write_text(json.dumps(params))
    return path
