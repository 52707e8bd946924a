-- name: invite_by_code
-- type: invites
-- params: $1 code text
-- index: invites_pkey (code)
-- sample: SELECT code FROM invites ORDER BY code LIMIT 1
-- One invite code, to redeem it.
SELECT code, created_by, used_by, used_at, expires_at, created_at, status, bonus_for_inviting
FROM invites
WHERE code = $1
