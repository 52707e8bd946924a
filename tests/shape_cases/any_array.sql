-- Cases for rules/any_array.py.

-- title: = ANY(players) against the GIN index
-- expect: any-array
SELECT id FROM games WHERE $1 = ANY(players);

-- title: ANY on the right-hand side, qualified
-- expect: any-array
SELECT g.id FROM games g WHERE g.winner = $2 AND $1 = ANY(g.players);

-- title: containment uses the GIN index
-- index: games_players_idx (players)
-- expect: nothing
SELECT id FROM games WHERE players @> ARRAY[$1]::text[];

-- title: = ANY of a parameter array is an IN list, served by a btree
-- expect: nothing
SELECT handle FROM users WHERE handle = ANY($1);
