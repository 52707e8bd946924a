-- name: friends_of_handle
-- type: friends
-- params: $1 handle text
-- index: friends_pkey
-- A handle's friends.
SELECT friend
FROM friends
WHERE handle = $1
ORDER BY friend
