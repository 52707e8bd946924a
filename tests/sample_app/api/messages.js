// A /vibe-style API route on the Neon driver: sql`...` tagged templates.
import { neon } from '@neondatabase/serverless';

const sql = neon(process.env.DATABASE_URL);

export async function inbox(handle, limit = 50) {
  return sql`
    SELECT id, from_user, to_user, text, created_at
    FROM messages
    WHERE to_user = ${handle}
    ORDER BY created_at DESC
    LIMIT ${Math.min(limit, 100)}`;
}

export async function thread(me, other) {
  // The shape the real app shipped: an OR of the two directions.
  return sql`SELECT id, from_user, to_user, text, created_at FROM messages
    WHERE (from_user = ${me} AND to_user = ${other})
       OR (from_user = ${other} AND to_user = ${me})
    ORDER BY created_at DESC LIMIT 50`;
}

export async function threadFixed(me, other) {
  const rows = await sql`SELECT id FROM messages
    WHERE LEAST(from_user, to_user) = LEAST(${me}, ${other})
      AND GREATEST(from_user, to_user) = GREATEST(${me}, ${other})
    ORDER BY created_at DESC LIMIT ${`${50}`.length * 10}`;
  return rows.map((r) => ({ ...r, label: `${r.id}` }));
}
