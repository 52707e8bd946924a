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

-- title: information_schema is Postgres's own
-- expect: nothing
SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1;

-- title: pg_catalog relations, qualified or not, are Postgres's own
-- expect: nothing
SELECT c.relname, i.indexdef FROM pg_catalog.pg_class c JOIN pg_indexes i ON i.indexname = c.relname WHERE c.relkind = 'i';
