-- Rollback of 002.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_from_user_fkey;
DROP INDEX CONCURRENTLY IF EXISTS board_entries_content_idx;
ALTER TABLE messages DROP CONSTRANT messages_to_user_fkey;
