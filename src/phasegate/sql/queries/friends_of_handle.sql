-- name: friends_of_handle
-- type: friends
-- params: $1 handle text
-- index: friends_pkey (handle)
-- sample: SELECT handle FROM friends GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- A handle's friends.
SELECT friend
FROM friends
WHERE handle = $1
ORDER BY friend
