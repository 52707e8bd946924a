-- name: pending_connections
-- type: connections
-- params: $1 handle text
-- index: connections_to_status_idx
-- Requests waiting for a handle's answer, newest first.
SELECT from_user, to_user, status, requested_at, message
FROM connections
WHERE to_user = $1 AND status = 'pending'
ORDER BY requested_at DESC
