import { sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { startPeriodic } from '../lib/periodic.js'
import { DAY_MS } from '../lib/time.js'

export interface RetentionOptions {
  /** Raw events older than this many days are deleted; rollups are kept. */
  retentionDays: number
  /** Events deleted per statement: bounds lock time and WAL per transaction. */
  batchSize: number
  /** How often the job runs. */
  intervalMs: number
  onError: (err: unknown) => void
  onDeleted?: (count: number, cutoff: Date) => void
}

/** Start of the UTC day `retentionDays` before `now`: raw events before it are expired. */
export function retentionCutoff(now: Date, retentionDays: number): Date {
  return new Date(Math.floor((now.getTime() - retentionDays * DAY_MS) / DAY_MS) * DAY_MS)
}

/**
 * Deletes raw events created before `cutoff`, `batchSize` at a time (each batch its own
 * statement, oldest first via the created_at index), until none is left. Rollups are untouched,
 * so stats over whole hours and days survive; the cutoff is a UTC midnight so no rollup hour is
 * left half-backed by raw rows. Events not yet folded into the rollups (above the watermark) are
 * kept until a later run.
 */
export async function deleteExpiredEvents(database: Database, cutoff: Date, batchSize: number): Promise<number> {
  let deleted = 0
  for (;;) {
    const rows = await database.rows<{ n: string | number }>(sql`
      WITH doomed AS (
        SELECT bot_id, id FROM usage_events WHERE created_at < ${cutoff.toISOString()}
          -- Only events already folded into the rollups (an unfolded one would vanish from them).
          AND txid < (SELECT rolled_below FROM rollup_watermark)
        ORDER BY created_at LIMIT ${batchSize}
      ),
      gone AS (DELETE FROM usage_events e USING doomed d WHERE e.bot_id = d.bot_id AND e.id = d.id RETURNING 1)
      SELECT count(*) AS n FROM gone`)
    const n = Number(rows[0]?.n ?? 0)
    deleted += n
    if (n < batchSize) return deleted
    // Let queued requests use the connection between batches (the embedded engine has one).
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** Runs the retention job a second after start and then every intervalMs; returns a function that stops it. */
export function startRetention(database: Database, opts: RetentionOptions): () => Promise<void> {
  const job = startPeriodic({
    intervalMs: opts.intervalMs,
    onError: opts.onError,
    run: async () => {
      const cutoff = retentionCutoff(new Date(), opts.retentionDays)
      const count = await deleteExpiredEvents(database, cutoff, opts.batchSize)
      opts.onDeleted?.(count, cutoff)
    },
  })
  return () => job.stop()
}
