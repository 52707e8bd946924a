-- Cases for rules/read_path_shape.py: app queries on a catalogued read path
-- (same table, same equality keys) order and limit as the catalog does.

-- title: the thread read path, oldest hundred first
-- form: app
-- expect: read-path-shape
SELECT id, text FROM messages
WHERE LEAST(from_user, to_user) = LEAST($1, $2) AND GREATEST(from_user, to_user) = GREATEST($1, $2)
ORDER BY created_at ASC LIMIT 100;

-- title: the thread read path as the catalog has it
-- form: app
-- expect: nothing
SELECT id, text FROM messages
WHERE LEAST(from_user, to_user) = LEAST($1, $2) AND GREATEST(from_user, to_user) = GREATEST($1, $2)
ORDER BY created_at DESC LIMIT 50;

-- title: the inbox with its limit as a parameter: the order is what can be judged
-- form: app
-- expect: nothing
SELECT id FROM messages WHERE to_user = $1 ORDER BY created_at DESC LIMIT $2;

-- title: the inbox without an ORDER BY returns any fifty
-- form: app
-- expect: read-path-shape
SELECT id FROM messages WHERE to_user = $1 LIMIT 50;

-- title: a count on a read path's filter is not a read of that path
-- form: app
-- expect: nothing
SELECT count(*) FROM messages WHERE to_user = $1;

-- title: a filter no read path has is not judged
-- form: app
-- expect: nothing
SELECT id FROM board_entries WHERE author = $1 ORDER BY created_at ASC LIMIT 10;
