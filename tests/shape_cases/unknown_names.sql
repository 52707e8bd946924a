-- Cases for rules/unknown_names.py.

-- title: a table the schema does not have
-- expect: unknown-name
SELECT id FROM message WHERE to_user = $1;

-- title: a column the table does not have
-- expect: unknown-name
SELECT handle, streak_days FROM streaks WHERE handle = $1;

-- title: a qualified column of the wrong table
-- expect: unknown-name
SELECT m.id FROM messages m JOIN users u ON u.handle = m.from_user WHERE u.to_user = $1;

-- title: select aliases and CTE columns are not schema columns
-- expect: nothing
WITH t AS (SELECT to_user AS who, count(*) AS n FROM messages WHERE to_user = $1 GROUP BY to_user)
SELECT who, n AS total FROM t ORDER BY total;
