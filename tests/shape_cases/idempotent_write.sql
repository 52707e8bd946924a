-- Cases for rules/idempotent_write.py: INSERTs into migrated tables are upserts.

-- title: a plain INSERT fails on a retried write
-- expect: idempotent-write
INSERT INTO messages (id, from_user, to_user, text) VALUES ($1, $2, $3, $4);

-- title: ON CONFLICT DO NOTHING drops the retry's newer values
-- expect: idempotent-write
INSERT INTO streaks (handle, current_streak) VALUES ($1, $2) ON CONFLICT (handle) DO NOTHING;

-- title: ON CONFLICT ... DO UPDATE is the spec's upsert
-- expect: nothing
INSERT INTO streaks (handle, current_streak) VALUES ($1, $2)
ON CONFLICT (handle) DO UPDATE SET current_streak = EXCLUDED.current_streak;

-- title: a table that is not migrated is not judged
-- expect: unknown-name
INSERT INTO audit_log (at, what) VALUES (now(), $1);
