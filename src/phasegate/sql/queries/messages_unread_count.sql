-- name: unread_count
-- type: messages
-- params: $1 handle text
-- index: messages_unread_idx
-- Unread messages of a handle, from the partial index of unread rows.
SELECT count(*) AS unread
FROM messages
WHERE to_user = $1 AND NOT read
