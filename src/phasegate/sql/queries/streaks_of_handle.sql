-- name: streak_of_handle
-- type: streaks
-- params: $1 handle text
-- index: streaks_pkey (handle)
-- sample: SELECT handle FROM streaks ORDER BY current_streak DESC, handle LIMIT 1
-- One builder's streak.
SELECT handle, current_streak, longest_streak, total_days, last_active, active_days
FROM streaks
WHERE handle = $1
