import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { ROLLUP_TABLES, type RollupTable } from '../db/event-store.js'
import { STORED_MEASURES, type Measure } from '../db/measures.js'

/**
 * The one definition of what a rollup row holds and how it is computed from raw events, used by
 * the write path (insertEvents), the benchmark's bulk rebuild and the consistency tests, so the
 * three can never disagree about a column. Which rollups exist and their keys is the event store's
 * layout (db/event-store.ts), shared with the readers.
 */

/** Every measure column of the rollup tables, in the order rollupAggregatesOfEvents produces them. */
export const ROLLUP_MEASURE_COLUMNS: readonly string[] = STORED_MEASURES.map((m) => m.column)

export const rollupMeasureColumnList = (): SQL => sql.raw(ROLLUP_MEASURE_COLUMNS.join(', '))

/** A measure's aggregate over a group of usage_events rows (never NULL unless stored as NULL when zero). */
function aggregateOfEvents(m: Measure): string {
  if (m.ofEvents !== undefined) return m.ofEvents
  if (m.kind === 'max') return `max(${m.perEvent})`
  if (m.nullWhenZero) return `nullif(count(${m.perEvent}), 0)`
  return `coalesce(sum(${m.perEvent}), 0)`
}

/** How `excluded` folds into the stored row aliased `target`. */
function mergeAssignment(m: Measure, target: string): string {
  const [stored, incoming] = [`${target}.${m.column}`, `excluded.${m.column}`]
  if (m.kind === 'max') return `${m.column} = greatest(${stored}, ${incoming})`
  // NULL means zero: the sum when both exist, else whichever exists.
  if (m.nullWhenZero) return `${m.column} = coalesce(${stored} + ${incoming}, ${stored}, ${incoming})`
  return `${m.column} = ${stored} + ${incoming}`
}

/**
 * Aggregates over a set of usage_events rows (in a GROUP BY by rollup key) producing the
 * measure columns in ROLLUP_MEASURE_COLUMNS order. Empty histogram buckets are NULL.
 */
export function rollupAggregatesOfEvents(): SQL {
  return sql.raw(STORED_MEASURES.map(aggregateOfEvents).join(',\n        '))
}

/** The ON CONFLICT DO UPDATE assignments that fold `excluded` into the stored row aliased `target`. */
export function rollupMergeAssignments(target: string): SQL {
  return sql.raw(STORED_MEASURES.map((m) => mergeAssignment(m, target)).join(',\n        '))
}

/**
 * INSERT ... SELECT that folds the events of `eventsRelation` (a CTE name or table) into
 * `rollup`, upserting in key order so that concurrent writers lock rows in the same order and
 * cannot deadlock. `guard` is appended to the WHERE clause (used to sequence the upserts of one
 * statement).
 */
export function upsertRollupFrom(rollup: RollupTable, eventsRelation: string, guard: SQL = sql`TRUE`): SQL {
  const time = sql.raw(rollup.grain)
  const keys = sql.raw(rollup.keys.join(', '))
  const positions = sql.raw(Array.from({ length: rollup.keys.length + 1 }, (_, i) => String(i + 1)).join(', '))
  return sql`
    INSERT INTO ${sql.raw(rollup.name)} AS r (${time}, ${keys}, ${rollupMeasureColumnList()})
    SELECT date_trunc(${sql.raw(`'${rollup.grain}'`)}, created_at, 'UTC'), ${keys},
        ${rollupAggregatesOfEvents()}
    FROM ${sql.raw(eventsRelation)}
    WHERE ${guard}
    GROUP BY ${positions}
    ORDER BY ${positions}
    ON CONFLICT (${time}, ${keys}) DO UPDATE SET
        ${rollupMergeAssignments('r')}`
}

/**
 * The CTEs of the ingest statement that fold the CTE `inserted` into every rollup. Each upsert
 * reads the previous one's RETURNING, which makes them run one after the other, in
 * ROLLUP_TABLES order: every writer (and repriceEvents) then takes rollup row locks in the same
 * global order, and none deadlock.
 */
export function rollupUpsertCtes(eventsRelation: string): SQL {
  return sql.join(
    ROLLUP_TABLES.map((rollup, i) => {
      const guard = i === 0 ? sql`TRUE` : sql.raw(`(SELECT count(*) FROM rolled_${i - 1}) >= 0`)
      return sql`${sql.raw(`rolled_${i}`)} AS (${upsertRollupFrom(rollup, eventsRelation, guard)} RETURNING 1)`
    }),
    sql`,
    `,
  )
}

/**
 * Rebuilds every rollup from the raw events in one transaction (after a bulk load that bypassed
 * insertEvents, or after the histogram layout changed). Rollup rows for hours whose raw events
 * were removed by retention are lost, so never run it on a database with retention enabled.
 */
export async function rebuildRollups(database: Database): Promise<void> {
  await database.db.transaction(async (tx) => {
    for (const rollup of ROLLUP_TABLES) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      await tx.execute(upsertRollupFrom(rollup, 'usage_events'))
    }
  })
}
