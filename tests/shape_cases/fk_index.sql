-- Cases for rules/fk_index.py: each case is a schema (DDL script); every foreign
-- key's referencing columns must lead an index.

-- title: a referencing column with no index
-- expect: fk-index
CREATE TABLE users (handle text PRIMARY KEY);
CREATE TABLE games (id text PRIMARY KEY, winner text REFERENCES users (handle) ON DELETE CASCADE);

-- title: the referencing column leads an index
-- expect: nothing
CREATE TABLE users (handle text PRIMARY KEY);
CREATE TABLE games (id text PRIMARY KEY, winner text REFERENCES users (handle) ON DELETE CASCADE);
CREATE INDEX games_winner_idx ON games (winner, id);

-- title: a key added by ALTER TABLE, covered only by the second column of an index
-- expect: fk-index
CREATE TABLE users (handle text PRIMARY KEY);
CREATE TABLE friends (handle text, friend text, PRIMARY KEY (handle, friend));
ALTER TABLE friends ADD CONSTRAINT friends_friend_fkey FOREIGN KEY (friend) REFERENCES users (handle);

-- title: the primary key leads with the referencing column
-- expect: nothing
CREATE TABLE users (handle text PRIMARY KEY);
CREATE TABLE friends (handle text REFERENCES users (handle), friend text, PRIMARY KEY (handle, friend));
