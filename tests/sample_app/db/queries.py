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


async def inbox(conn, handle):
    # asyncpg: $n placeholders as written
    return await conn.fetch(
        "SELECT id, text FROM messages WHERE to_user = $1 ORDER BY created_at DESC LIMIT 50",
        handle,
    )


def invite(session, code):
    from sqlalchemy import text

    return session.execute(
        text("SELECT code, status FROM invites WHERE code = :code"), {"code": code}
    )


def befriend(session, a, b):
    from sqlalchemy import text

    # Defective: ON CONFLICT DO NOTHING keeps the older row.
    stmt = text("INSERT INTO friends (handle, friend) VALUES (:a, :b) ON CONFLICT DO NOTHING")
    return session.execute(stmt, {"a": a, "b": b})


def user(cur, handle):
    cur.execute(f"SELECT handle, username FROM users WHERE handle = {handle!r}")
    return cur.fetchone()


def anything(cur, table):
    query = "SELECT * FROM " + table
    cur.execute(query.upper())
