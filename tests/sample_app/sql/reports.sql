-- Reporting queries run by a cron job.
CREATE INDEX CONCURRENTLY IF NOT EXISTS friends_friend_idx ON friends (friend);

SELECT friend FROM friends WHERE handle = $1 ORDER BY friend;

SELECT handle, streak_days FROM streaks WHERE handle = $1;
