-- Cases for rules/index_use.py, checked against phasegate's schema.
-- Each case: a title, the rules it must raise (or "nothing"), optionally the
-- index (and keys) it relies on, then one statement.

-- title: the thread query in the index's order is served
-- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
-- expect: nothing
SELECT id FROM messages
WHERE LEAST(from_user, to_user) = LEAST($1,$2) AND GREATEST(from_user, to_user) = GREATEST($1,$2)
ORDER BY created_at DESC LIMIT $3;

-- title: LEAST arguments swapped cannot use the thread index
-- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
-- expect: index
SELECT id FROM messages
WHERE LEAST(to_user, from_user) = LEAST($1, $2) AND GREATEST(from_user, to_user) = GREATEST($1, $2)
ORDER BY created_at DESC LIMIT $3;

-- title: GREATEST arguments swapped leaves half of the key unused
-- index: messages_thread_idx (LEAST(from_user, to_user), GREATEST(from_user, to_user))
-- expect: index
SELECT id FROM messages
WHERE LEAST(from_user, to_user) = LEAST($1, $2) AND GREATEST(to_user, from_user) = GREATEST($1, $2);

-- title: swapped arguments, no index named: no index serves it
-- expect: no-index
SELECT id FROM messages WHERE LEAST(to_user, from_user) = $1 AND GREATEST(to_user, from_user) = $2;

-- title: qualifiers, aliases and case do not matter
-- expect: nothing
SELECT m.id FROM Messages AS m
WHERE LEAST(m.From_User, m.to_user) = $1 AND GREATEST(m.from_user, M.TO_USER) = $2;

-- title: ORDER BY on a column no index covers, with LIMIT
-- expect: order-by
SELECT id FROM messages WHERE to_user = $1 ORDER BY read_at DESC LIMIT 20;

-- title: ORDER BY in the index's reverse direction is served
-- expect: nothing
SELECT id FROM messages WHERE to_user = $1 ORDER BY created_at ASC LIMIT 20;

-- title: mixed directions against a one-direction index need a sort
-- expect: order-by
SELECT handle FROM streaks ORDER BY current_streak DESC, handle DESC LIMIT 10;

-- title: a filter on a column no index leads with
-- expect: no-index
SELECT id FROM board_entries WHERE content = $1;

-- title: a partial index needs its predicate in the query
-- index: messages_unread_idx (to_user)
-- expect: index
SELECT count(*) FROM messages WHERE to_user = $1;

-- title: CTEs are checked like any scope
-- expect: no-index
WITH recent AS (SELECT id, created_at FROM messages WHERE text = $1)
SELECT id FROM recent ORDER BY created_at LIMIT 5;

-- title: joins: each side uses its own index
-- expect: nothing
SELECT m.id, u.username FROM messages m JOIN users u ON u.handle = m.from_user
WHERE m.to_user = $1 ORDER BY m.created_at DESC LIMIT 10;

-- title: an UPDATE's WHERE is checked too
-- expect: no-index
UPDATE messages SET read = true WHERE text = $1;

-- title: an index the header names but the schema lacks
-- index: messages_thread_pair_idx
-- expect: index
SELECT id FROM messages WHERE to_user = $1;

-- title: a whole-table count needs no index
-- expect: nothing
SELECT count(*) FROM users;

-- title: a partial index's predicate implied by the query (read = false implies NOT read)
-- index: messages_unread_idx (to_user)
-- expect: nothing
SELECT count(*) FROM messages WHERE to_user = $1 AND read = false;

-- title: ORDER BY an aggregate: no index order could serve it
-- expect: nothing
SELECT from_user, count(*) AS n FROM messages WHERE to_user = $1 GROUP BY from_user ORDER BY n DESC LIMIT 10;

-- title: ORDER BY count(*) itself
-- expect: nothing
SELECT category FROM board_entries GROUP BY category ORDER BY count(*) DESC LIMIT 5;
