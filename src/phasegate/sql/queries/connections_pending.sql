-- name: pending_connections
-- type: connections
-- params: $1 handle text
-- index: connections_to_status_idx (to_user, status)
-- sample: SELECT to_user FROM connections WHERE status = 'pending' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- Requests waiting for a handle's answer, newest first (ties, and requests with
-- no time, by sender: a total order, so both stores answer alike).
SELECT from_user, to_user, status, requested_at, message
FROM connections
WHERE to_user = $1 AND status = 'pending'
ORDER BY requested_at DESC, from_user
