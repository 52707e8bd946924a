"""A Python service of the app, using psycopg."""

STREAK = "SELECT handle, current_streak FROM streaks WHERE handle = %(handle)s"


def streak(cur, handle):
    cur.execute(STREAK, {"handle": handle})
    return cur.fetchone()


def recent_reads(cur, handle):
    cur.execute(
        "SELECT id, read_at FROM messages WHERE to_user = %s ORDER BY read_at DESC LIMIT 10",
        (handle,),
    )
    return cur.fetchall()


def label(handle):
    return "SELECT is not SQL here, nobody executes it: " + handle
