import { sql } from 'drizzle-orm'
import type { Database } from './connect.js'
import { METADATA_KEYS_TABLE } from './event-store.js'

/**
 * The metadata key registry as readers see it (which declared keys are rolled up, from when).
 * usage/metadata-keys.ts writes it; analytics reads it through here.
 */

/** How long the declared keys are reused before they are read again (in the background). */
const KEYS_TTL_MS = 30_000
/** Keyed by the database's `reads`: the primary and the read pool of one database share it. */
const declaredKeys = new WeakMap<Database, { readAt: number; keys: Promise<Map<string, number>> }>()

const readDeclaredKeys = async (database: Database): Promise<Map<string, number>> => {
  const rows = await database.rows<{ key: string; since: Date | string }>(sql`SELECT key, since FROM ${sql.raw(METADATA_KEYS_TABLE)} WHERE active`)
  return new Map(rows.map((r) => [r.key, new Date(r.since).getTime()]))
}

/**
 * The declared metadata keys folded into rollups, with the time (epoch ms) from which they are.
 * The registry changes only when an instance starts (syncMetadataRollupKeys), so it is read once
 * (the app primes it at start) and refreshed in the background every KEYS_TTL_MS, answering from
 * the last read meanwhile: a breakdown never waits for a database connection before it has its
 * turn among the heavy reads. Another instance's new declaration shows here within KEYS_TTL_MS.
 */
export async function declaredMetadataKeys(database: Database): Promise<Map<string, number>> {
  const cached = declaredKeys.get(database.reads)
  if (!cached) {
    const entry = { readAt: Date.now(), keys: readDeclaredKeys(database) }
    declaredKeys.set(database.reads, entry)
    entry.keys.catch(() => declaredKeys.delete(database.reads))
    return entry.keys
  }
  if (Date.now() - cached.readAt > KEYS_TTL_MS) {
    cached.readAt = Date.now()
    const next = readDeclaredKeys(database)
    next.then(
      (keys) => {
        cached.keys = Promise.resolve(keys)
      },
      () => undefined,
    )
  }
  return cached.keys
}

/** Reads the declared keys again now (after this instance changed the registry). */
export async function reloadDeclaredMetadataKeys(database: Database): Promise<void> {
  declaredKeys.delete(database.reads)
  await declaredMetadataKeys(database)
}
