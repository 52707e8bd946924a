-- name: streak_of_handle
-- type: streaks
-- params: $1 handle text
-- index: streaks_pkey
-- One builder's streak.
SELECT handle, current_streak, longest_streak, total_days, last_active, active_days
FROM streaks
WHERE handle = $1
