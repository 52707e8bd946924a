import { neon } from '@neondatabase/serverless';

const sql = neon(process.env.DATABASE_URL!);

export async function gamesOf(handle: string) {
  return sql`SELECT id, game_type, players FROM games WHERE ${handle} = ANY(players)`;
}

export async function board(category: string) {
  return sql`SELECT id, author, content FROM board_entries
    WHERE category = ${category} ORDER BY created_at DESC LIMIT 20`;
}
