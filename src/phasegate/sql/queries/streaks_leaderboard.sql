-- name: streak_leaderboard
-- type: streaks
-- params: $1 limit int
-- index: streaks_leaderboard_idx
-- sample: SELECT 50
-- limit: 50
-- The longest current streaks; ties by handle, as the index orders them.
SELECT handle, current_streak, longest_streak, last_active
FROM streaks
ORDER BY current_streak DESC, handle
LIMIT $1
