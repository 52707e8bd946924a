-- name: games_by_player
-- type: games
-- params: $1 handle text
-- index: games_players_idx (players)
-- sample: SELECT p FROM games, unnest(players) AS p GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1
-- A player's games. Array containment (@>) uses the GIN index; = ANY cannot.
SELECT id, game_type, players, winner, state, created_at, updated_at
FROM games
WHERE players @> ARRAY[$1]::text[]
ORDER BY created_at DESC
