-- name: board_feed
-- type: board
-- params: $1 limit int
-- index: board_entries_feed_idx
-- sample: SELECT 50
-- limit: 50
-- The newest posts of the community board.
SELECT id, author, content, category, tags, reactions, comments, created_at
FROM board_entries
ORDER BY created_at DESC
LIMIT $1
