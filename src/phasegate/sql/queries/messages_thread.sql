-- name: thread
-- type: messages
-- params: $1 handle text, $2 other text, $3 limit int
-- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
-- sample: SELECT from_user, to_user, 50 FROM messages GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1
-- limit: 50
-- Both directions of a conversation. LEAST/GREATEST in the index's order, so
-- the thread index serves it; an OR of the two (from, to) pairs cannot.
SELECT id, from_user, to_user, text, read, read_at, system_msg, payload, created_at
FROM messages
WHERE LEAST(from_user, to_user) = LEAST($1, $2)
  AND GREATEST(from_user, to_user) = GREATEST($1, $2)
ORDER BY created_at DESC
LIMIT $3
