-- Cases for statements sqlglot must read as Postgres.

-- title: $1,$2 with no space parses (sqlglot reads $1,$ as a dollar quote otherwise)
-- expect: nothing
SELECT id FROM messages WHERE LEAST(from_user,to_user) = LEAST($1,$2) AND GREATEST(from_user,to_user) = GREATEST($1,$2);

-- title: a truncated statement
-- expect: parse
SELECT id FROM messages WHERE to_user = $1 AND;

-- title: not a statement at all
-- expect: parse
SELEC id FROM messages;
