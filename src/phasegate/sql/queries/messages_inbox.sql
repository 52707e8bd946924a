-- name: inbox
-- type: messages
-- params: $1 handle text, $2 limit int
-- index: messages_inbox_idx (to_user)
-- sample: SELECT to_user, 50 FROM messages GROUP BY to_user ORDER BY count(*) DESC, to_user LIMIT 1
-- limit: 50
-- The newest messages to a handle.
SELECT id, from_user, to_user, text, read, read_at, system_msg, payload, created_at
FROM messages
WHERE to_user = $1
ORDER BY created_at DESC
LIMIT $2
