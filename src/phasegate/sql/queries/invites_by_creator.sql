-- name: invites_by_creator
-- type: invites
-- params: $1 handle text
-- index: invites_created_by_idx (created_by)
-- sample: SELECT created_by FROM invites WHERE created_by IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- The invite codes a handle created, newest first.
SELECT code, created_by, used_by, used_at, expires_at, created_at, status
FROM invites
WHERE created_by = $1
ORDER BY created_at DESC
