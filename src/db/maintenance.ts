import { sql } from 'drizzle-orm'
import { startPeriodic } from '../lib/periodic.js'
import type { Database } from './connect.js'

/**
 * The embedded engine's autovacuum. PGlite is PostgreSQL in one process without background
 * workers: its `autovacuum` setting says on, but no launcher ever runs, so tables are never
 * analyzed or vacuumed. Without statistics the planner estimates a few dozen rows for any range
 * of usage_events and picks a bitmap scan plus a full sort for every keyset page: an export's
 * pages each re-read every remaining row (a 50k-event export measured 8.5 s instead of 1.8 s),
 * and a "first 20 events" page sorted the whole table. Postgres itself does this in its
 * autovacuum workers, so the job runs only on the embedded engine.
 *
 * The thresholds are autovacuum's defaults. ANALYZE samples at a low statistics target (the
 * plans here need row counts and ranges, not fine histograms): 50 ms at 200k events instead of
 * 390 ms at the default target, and the single connection is busy for that long.
 */
export interface MaintenanceOptions {
  /** How often the statistics are checked (a cheap catalog query). */
  intervalMs: number
  onError: (err: unknown) => void
  /** Told about each table analyzed or vacuumed (logs, tests). */
  onMaintained?: (table: string, action: 'analyze' | 'vacuum', durationMs: number) => void
}

/** Statistics target of the maintenance ANALYZE (PostgreSQL's default is 100). */
export const MAINTENANCE_STATISTICS_TARGET = 20

/** Transaction age past which a vacuum also freezes (autovacuum_freeze_max_age is 200 million). */
const FREEZE_AGE = 150_000_000

interface TableStats {
  relname: string
  live: string | number
  dead: string | number
  modified: string | number
  inserted: string | number
  xid_age: string | number
}

/** Analyzes and vacuums the tables of the database's schema that autovacuum would have. Returns what it did. */
export async function maintainTables(database: Database, onMaintained?: MaintenanceOptions['onMaintained']): Promise<string[]> {
  const tables = await database.rows<TableStats>(sql`
    SELECT s.relname, s.n_live_tup AS live, s.n_dead_tup AS dead, s.n_mod_since_analyze AS modified,
      s.n_ins_since_vacuum AS inserted, age(c.relfrozenxid) AS xid_age
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = ${database.schema}`)
  const done: string[] = []
  const timed = async (table: string, action: 'analyze' | 'vacuum', statements: string[]) => {
    const started = performance.now()
    for (const statement of statements) await database.rows(sql.raw(statement))
    onMaintained?.(table, action, performance.now() - started)
    done.push(`${action} ${table}`)
    // Let queued requests use the connection between tables (the embedded engine has one).
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (const t of tables) {
    const live = Number(t.live)
    const name = `"${database.schema}"."${t.relname}"`
    // autovacuum_vacuum_threshold 50 + scale factor 0.2; insert threshold 1000 + 0.2.
    const vacuum = Number(t.dead) > 50 + 0.2 * live || Number(t.inserted) > 1000 + 0.2 * live
    const freeze = Number(t.xid_age) > FREEZE_AGE
    if (vacuum || freeze) await timed(t.relname, 'vacuum', [`VACUUM ${freeze ? '(FREEZE) ' : ''}${name}`])
    // autovacuum_analyze_threshold 50 + scale factor 0.1.
    if (Number(t.modified) > 50 + 0.1 * live) {
      // The setting only affects ANALYZE, so a query that runs in between is unaffected.
      await timed(t.relname, 'analyze', [`SET default_statistics_target = ${MAINTENANCE_STATISTICS_TARGET}`, `ANALYZE ${name}`, 'RESET default_statistics_target'])
    }
  }
  return done
}

export interface Maintenance {
  /** Tells the job that `n` rows were written, so a large load is analyzed soon rather than at the next interval. */
  noteWrites(n: number): void
  stop(): Promise<void>
}

/** Writes since the last check past which a check runs within a second (a bulk load, a first start). */
const EARLY_CHECK_WRITES = 5000

/** Runs maintainTables a second after start, every intervalMs, and soon after many writes. Embedded engine only (see above). */
export function startMaintenance(database: Database, opts: MaintenanceOptions): Maintenance {
  let writes = 0
  const job = startPeriodic({
    intervalMs: opts.intervalMs,
    onError: opts.onError,
    run: () => {
      writes = 0
      return maintainTables(database, opts.onMaintained)
    },
  })
  return {
    noteWrites: (n) => {
      writes += n
      if (writes >= EARLY_CHECK_WRITES) job.kick(1000)
    },
    stop: () => job.stop(),
  }
}
