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

-- title: ten or more parameters keep every digit ($10, $11 at a line end)
-- expect: nothing
SELECT $1, $10, $11
FROM users WHERE handle IN ($2, $3, $4, $5, $6, $7, $8, $9, $12);

-- title: a misspelt keyword in a rollback script (Postgres's own grammar rejects it)
-- expect: parse
ALTER TABLE messages DROP CONSTRANT messages_to_user_fkey;

-- title: valid Postgres the checks cannot read is listed, not failed
-- expect: not-understood
SELECT m.id, u.x FROM messages m, LATERAL ROWS FROM (unnest(ARRAY[1])) AS u(x) WHERE m.to_user = $1;
