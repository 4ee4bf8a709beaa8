import { sql } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { METADATA_KEYS_TABLE, METADATA_ROLLUPS, METADATA_VALUES_TABLE } from '../db/event-store.js'
import { reloadDeclaredMetadataKeys } from '../db/metadata-registry.js'
import { rollupLock } from './rollups.js'

const HOUR_MS = 3_600_000

/**
 * The `since` of a key declared at `now`: the first whole hour after now + the ingest's future
 * skew allowance. No event stored before the declaration can have created_at >= since (ingest
 * refuses createdAt beyond now + skew), so every event from since on is folded; reads take the
 * part before since from raw events.
 */
export const sinceFor = (now: Date, maxFutureSkewMs: number): Date => new Date((Math.floor((now.getTime() + maxFutureSkewMs) / HOUR_MS) + 1) * HOUR_MS)

/**
 * Makes the registry match the deployment's METADATA_ROLLUP_KEYS: a key newly declared (or
 * declared again after it was dropped) starts over, its old rows and values removed, with a new
 * since; a key no longer declared stops being folded (reads go raw); a declared key keeps its
 * since and takes the new bound for values seen from now on. One transaction.
 */
export async function syncMetadataRollupKeys(
  database: Database,
  declared: { keys: readonly string[]; maxValues: number },
  opts: { now: Date; maxFutureSkewMs: number },
): Promise<void> {
  const since = sinceFor(opts.now, opts.maxFutureSkewMs).toISOString()
  await database.db.transaction(async (tx) => {
    // No fold may run meanwhile: it would fold a key by the registry it read before this commits.
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${rollupLock(database)})`)
    const current = rowsOf<{ key: string; active: boolean }>(await tx.execute(sql.raw(`SELECT key, active FROM ${METADATA_KEYS_TABLE} FOR UPDATE`)))
    const active = new Set(current.filter((r) => r.active).map((r) => r.key))
    for (const key of declared.keys) {
      if (active.has(key)) {
        await tx.execute(sql`UPDATE ${sql.raw(METADATA_KEYS_TABLE)} SET max_values = ${declared.maxValues} WHERE key = ${key}`)
        continue
      }
      for (const rollup of METADATA_ROLLUPS) await tx.execute(sql`DELETE FROM ${sql.raw(rollup.name)} WHERE key = ${key}`)
      await tx.execute(sql`DELETE FROM ${sql.raw(METADATA_VALUES_TABLE)} WHERE key = ${key}`)
      await tx.execute(sql`
        INSERT INTO ${sql.raw(METADATA_KEYS_TABLE)} (key, since, max_values, active) VALUES (${key}, ${since}, ${declared.maxValues}, true)
        ON CONFLICT (key) DO UPDATE SET since = excluded.since, max_values = excluded.max_values, active = true`)
    }
    const dropped = [...active].filter((k) => !declared.keys.includes(k))
    for (const key of dropped) await tx.execute(sql`UPDATE ${sql.raw(METADATA_KEYS_TABLE)} SET active = false WHERE key = ${key}`)
  })
  // This instance's readers see the new registry at once (and are primed before the first request).
  await reloadDeclaredMetadataKeys(database)
}
