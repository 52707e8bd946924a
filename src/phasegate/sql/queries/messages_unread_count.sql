-- name: unread_count
-- type: messages
-- params: $1 handle text
-- index: messages_unread_idx (to_user)
-- sample: SELECT to_user FROM messages WHERE NOT read GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- Unread messages of a handle, from the partial index of unread rows.
SELECT count(*) AS unread
FROM messages
WHERE to_user = $1 AND NOT read
