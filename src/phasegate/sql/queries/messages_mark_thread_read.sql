-- name: mark_thread_read
-- type: messages
-- params: $1 handle text, $2 other text
-- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
-- sample: SELECT to_user, from_user FROM messages WHERE NOT read GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1
-- The reader marks what the other side sent them; read_at is the moment of reading.
UPDATE messages
SET read = true, read_at = now()
WHERE LEAST(from_user, to_user) = LEAST($1, $2)
  AND GREATEST(from_user, to_user) = GREATEST($1, $2)
  AND to_user = $1
  AND NOT read
