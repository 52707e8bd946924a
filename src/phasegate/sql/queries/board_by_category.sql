-- name: board_by_category
-- type: board
-- params: $1 category text, $2 limit int
-- index: board_entries_category_idx (category)
-- sample: SELECT category, 50 FROM board_entries GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- limit: 50
-- The newest posts of one category.
SELECT id, author, content, category, tags, reactions, comments, created_at
FROM board_entries
WHERE category = $1
ORDER BY created_at DESC
LIMIT $2
