-- Cases for rules/pairs.py.

-- title: OR of the swapped (from, to) pairs
-- expect: or-pairs
SELECT id FROM messages
WHERE (from_user = $1 AND to_user = $2) OR (from_user = $2 AND to_user = $1)
ORDER BY created_at DESC LIMIT 50;

-- title: OR of swapped pairs written value-first
-- expect: or-pairs
SELECT id FROM messages WHERE ($1 = from_user AND $2 = to_user) OR (to_user = $1 AND from_user = $2);

-- title: OR of two unrelated pairs is not the anti-pattern
-- expect: no-index
SELECT id FROM messages WHERE (from_user = $1 AND to_user = $2) OR (from_user = $3 AND to_user = $4);

-- title: IN-pairs
-- expect: in-pairs
SELECT id FROM messages WHERE from_user IN ($1, $2) AND to_user IN ($1, $2);

-- title: IN lists of different values are fine
-- expect: nothing
SELECT id FROM messages WHERE to_user IN ($1, $2) AND from_user IN ($3, $4);

-- title: a tuple IN-list of both directions
-- expect: in-pairs
SELECT id FROM messages WHERE (from_user, to_user) IN (($1, $2), ($2, $1)) ORDER BY created_at DESC LIMIT 50;

-- title: a tuple IN-list of two unrelated pairs is not the anti-pattern
-- expect: no-index
SELECT id FROM messages WHERE (from_user, to_user) IN (($1, $2), ($3, $4));
