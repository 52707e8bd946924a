// Routes on node-postgres (pg): SQL passed to pool.query / client.query.
import pg from 'pg';

const pool = new pg.Pool();
const THREAD_COLUMNS = 'SELECT id, from_user, to_user, text, created_at FROM messages ';

export async function oldestFirst(me, other) {
  // Defective: the thread read path in ascending order, a hundred rows.
  const { rows } = await pool.query(
    `SELECT id, text FROM messages
     WHERE LEAST(from_user, to_user) = LEAST($1, $2)
       AND GREATEST(from_user, to_user) = GREATEST($1, $2)
     ORDER BY created_at ASC LIMIT 100`,
    [me, other],
  );
  return rows;
}

export async function newestFifty(me, other) {
  const { rows } = await pool.query(
    THREAD_COLUMNS +
      'WHERE LEAST(from_user, to_user) = LEAST($1, $2) ' +
      'AND GREATEST(from_user, to_user) = GREATEST($1, $2) ' +
      'ORDER BY created_at DESC LIMIT 50',
    [me, other],
  );
  return rows;
}

export async function send(client, m) {
  // Defective: a plain INSERT; a retried dual write fails on the duplicate id.
  await client.query(
    "INSERT INTO messages (id, from_user, to_user, text, created_at) VALUES ($1, $2, $3, $4, now())",
    [m.id, m.from, m.to, m.text],
  );
}

export async function unread(db, me) {
  // The partial unread index serves this: read = false implies its NOT read.
  return db.query('SELECT count(*) FROM messages WHERE to_user = $1 AND read = false', [me]);
}

export async function topSenders(me) {
  // Sorted by an aggregate: no index could serve the order, so nothing to report.
  return pool.query(
    `SELECT from_user, count(*) AS n FROM messages WHERE to_user = $1
     GROUP BY from_user ORDER BY n DESC LIMIT 10`,
    [me],
  );
}

export async function profile(sql, handle) {
  // Defective: a column that exists nowhere.
  return sql.unsafe('SELECT handle, bio FROM users WHERE handle = $1', [handle]);
}

export async function tables(db) {
  return db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
}

export async function search(db, where) {
  // Built at run time: listed as not read, never dropped.
  return db.query(buildSearch(where));
}
