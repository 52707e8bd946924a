-- Migration 002: foreign keys and an index for the board search.
ALTER TABLE messages ADD CONSTRAINT messages_from_user_fkey
    FOREIGN KEY (from_user) REFERENCES users (handle) ON DELETE CASCADE NOT VALID;

ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_to_user_fkey,
    ADD CONSTRAINT messages_to_user_fkey
    FOREIGN KEY (to_user) REFERENCES users (handle) ON DELETE CASCADE NOT VALID;

CREATE INDEX board_entries_content_idx ON board_entries (content);

CREATE INDEX CONCURRENTLY IF NOT EXISTS board_entries_author_idx ON board_entries (author, created_at DESC);

ALTER TABLE users ADD COLUMN IF NOT EXISTS bio text;
