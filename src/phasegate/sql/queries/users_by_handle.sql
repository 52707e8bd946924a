-- name: user_by_handle
-- type: users
-- params: $1 handle text
-- index: users_pkey (handle)
-- sample: SELECT handle FROM users ORDER BY handle LIMIT 1
-- A profile.
SELECT handle, username, building, status, registered_at, created_at, is_agent, metadata
FROM users
WHERE handle = $1
