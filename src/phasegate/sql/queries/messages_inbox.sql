-- name: inbox
-- type: messages
-- params: $1 handle text, $2 limit int
-- index: messages_inbox_idx
-- The newest messages to a handle.
SELECT id, from_user, to_user, text, read, read_at, system_msg, payload, created_at
FROM messages
WHERE to_user = $1
ORDER BY created_at DESC
LIMIT $2
