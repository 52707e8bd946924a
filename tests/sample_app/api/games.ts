import { neon } from '@neondatabase/serverless';

const sql = neon(process.env.DATABASE_URL!);

export async function gamesOf(handle: string) {
  return sql`SELECT id, game_type, players FROM games WHERE ${handle} = ANY(players)`;
}

export async function board(category: string) {
  return sql`SELECT id, author, content FROM board_entries
    WHERE category = ${category} ORDER BY created_at DESC LIMIT 50`;
}

// A pg helper that takes '?' placeholders, as some of the app's routes do.
export async function gameById(db: { execute: (q: string, p: unknown[]) => unknown }, id: string) {
  return db.execute('SELECT id, game_type, players, winner FROM games WHERE id = ?', [id]);
}

export async function rematch(a: string, b: string) {
  // Defective: a tuple list of both directions.
  return sql(`SELECT id FROM messages
    WHERE (from_user, to_user) IN ((${a}, ${b}), (${b}, ${a}))`);
}

export async function playersOf(id: string) {
  return sql(`SELECT players FROM games WHERE id = ${id}`);
}
