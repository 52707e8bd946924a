-- Cases for rules/rerunnable_ddl.py: migration DDL runs twice, and does not lock
-- a migrated table while it builds an index.

-- title: CREATE TABLE without IF NOT EXISTS
-- expect: rerunnable-ddl
CREATE TABLE audit_log (at timestamptz, what text);

-- title: CREATE TABLE IF NOT EXISTS runs twice
-- expect: nothing
CREATE TABLE IF NOT EXISTS audit_log (at timestamptz, what text);

-- title: CREATE INDEX on a migrated table, neither guarded nor concurrent
-- expect: rerunnable-ddl
CREATE INDEX messages_text_idx ON messages (text);

-- title: CREATE INDEX CONCURRENTLY IF NOT EXISTS
-- expect: nothing
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_text_idx ON messages (text);

-- title: ADD CONSTRAINT fails once the constraint exists
-- expect: rerunnable-ddl
ALTER TABLE games ADD CONSTRAINT games_winner_fkey FOREIGN KEY (winner) REFERENCES users (handle);

-- title: ADD CONSTRAINT after DROP CONSTRAINT IF EXISTS of the same name
-- expect: nothing
ALTER TABLE games DROP CONSTRAINT IF EXISTS games_winner_fkey,
    ADD CONSTRAINT games_winner_fkey FOREIGN KEY (winner) REFERENCES users (handle);

-- title: ADD COLUMN without IF NOT EXISTS
-- expect: rerunnable-ddl
ALTER TABLE users ADD COLUMN bio text;

-- title: DROP INDEX without IF EXISTS
-- expect: rerunnable-ddl
DROP INDEX messages_text_idx;
