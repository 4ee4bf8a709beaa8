import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import {
  ERROR_ROLLUPS,
  errorMessageKey,
  GRAIN_MS,
  grainStart,
  ROLLUP_TABLES,
  ROLLUPS_NARROWEST_FIRST,
  type ErrorRollupTable,
  type RollupTable,
} from '../db/event-store.js'
import { STORED_MEASURES, type Measure } from '../db/measures.js'

/**
 * The one definition of what a rollup row holds and how it is computed from raw events, used by
 * the write path (insertEvents), the benchmark's bulk rebuild and the consistency tests, so the
 * three can never disagree about a column. Which rollups exist and their keys is the event store's
 * layout (db/event-store.ts), shared with the readers.
 */

/** Every measure column of the rollup tables, in the order rollupAggregatesOfEvents produces them. */
export const ROLLUP_MEASURE_COLUMNS: readonly string[] = STORED_MEASURES.map((m) => m.column)

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
export function rollupAggregatesOfEvents(measures: readonly Measure[] = STORED_MEASURES): SQL {
  return sql.raw(measures.map(aggregateOfEvents).join(',\n        '))
}

/** The ON CONFLICT DO UPDATE assignments that fold `excluded` into the stored row aliased `target`. */
export function rollupMergeAssignments(target: string, measures: readonly Measure[] = STORED_MEASURES): SQL {
  return sql.raw(measures.map((m) => mergeAssignment(m, target)).join(',\n        '))
}

/**
 * INSERT ... SELECT that folds the events of `eventsRelation` (a CTE name or table) into
 * `rollup`, upserting in key order so that concurrent writers lock rows in the same order and
 * cannot deadlock. `guard` is appended to the WHERE clause (used to sequence the upserts of one
 * statement). `measures` is every stored measure, except for a table of an older layout (the
 * upgrade test builds the rollups a database had before a migration).
 */
export function upsertRollupFrom(
  rollup: RollupTable,
  eventsRelation: string,
  guard: SQL = sql`TRUE`,
  measures: readonly Measure[] = STORED_MEASURES,
): SQL {
  const time = sql.raw(rollup.grain)
  const keys = sql.raw(rollup.keys.join(', '))
  const positions = sql.raw(Array.from({ length: rollup.keys.length + 1 }, (_, i) => String(i + 1)).join(', '))
  return sql`
    INSERT INTO ${sql.raw(rollup.name)} AS r (${time}, ${keys}, ${sql.raw(measures.map((m) => m.column).join(', '))})
    SELECT ${sql.raw(grainStart(rollup.grain, 'created_at'))}, ${keys},
        ${rollupAggregatesOfEvents(measures)}
    FROM ${sql.raw(eventsRelation)}
    WHERE ${guard}
    GROUP BY ${positions}
    ORDER BY ${positions}
    ON CONFLICT (${time}, ${keys}) DO UPDATE SET
        ${rollupMergeAssignments('r', measures)}`
}

/**
 * INSERT ... SELECT that folds the failures of `eventsRelation` into an error rollup (count and
 * last occurrence per day or hour and message key), in key order like upsertRollupFrom.
 */
export function upsertErrorRollupFrom(rollup: ErrorRollupTable, eventsRelation: string, guard: SQL = sql`TRUE`): SQL {
  const source: Record<string, string> = { [rollup.grain]: grainStart(rollup.grain, 'created_at'), message: errorMessageKey() }
  const select = rollup.columns.map((c) => source[c] ?? c).join(', ')
  const positions = rollup.columns.map((_, i) => String(i + 1)).join(', ')
  return sql`
    INSERT INTO ${sql.raw(rollup.name)} AS r (${sql.raw(rollup.columns.join(', '))}, failures, last_seen)
    SELECT ${sql.raw(select)}, count(*), max(created_at)
    FROM ${sql.raw(eventsRelation)}
    WHERE NOT success AND ${guard}
    GROUP BY ${sql.raw(positions)}
    ORDER BY ${sql.raw(positions)}
    ON CONFLICT ON CONSTRAINT ${sql.raw(rollup.constraint)} DO UPDATE SET
        failures = r.failures + excluded.failures, last_seen = greatest(r.last_seen, excluded.last_seen)`
}

/** Every rollup upsert of `eventsRelation`, in lock order: ROLLUP_TABLES, then ERROR_ROLLUPS. */
function everyUpsert(eventsRelation: string, guard: (i: number) => SQL): SQL[] {
  return [
    ...ROLLUP_TABLES.map((rollup, i) => upsertRollupFrom(rollup, eventsRelation, guard(i))),
    ...ERROR_ROLLUPS.map((rollup, i) => upsertErrorRollupFrom(rollup, eventsRelation, guard(ROLLUP_TABLES.length + i))),
  ]
}

/**
 * The CTEs of the ingest statement that fold the CTE `inserted` into every rollup. Each upsert
 * reads the previous one's RETURNING, which makes them run one after the other, in
 * ROLLUP_TABLES order (then ERROR_ROLLUPS): every writer (and repriceEvents) then takes rollup
 * row locks in the same global order, and none deadlock.
 */
export function rollupUpsertCtes(eventsRelation: string): SQL {
  const guard = (i: number) => (i === 0 ? sql`TRUE` : sql.raw(`(SELECT count(*) FROM rolled_${i - 1}) >= 0`))
  return sql.join(
    everyUpsert(eventsRelation, guard).map((upsert, i) => sql`${sql.raw(`rolled_${i}`)} AS (${upsert} RETURNING 1)`),
    sql`,
    `,
  )
}

/**
 * INSERT ... SELECT that fills `target` from the rows of `source`, a rollup with every key of
 * target at a grain that divides target's (a day of hours, all bots of a model): sums add,
 * maxima take the greatest, and a histogram bucket stays NULL when empty in every source row.
 */
export function rollupFromRollup(target: RollupTable, source: RollupTable): SQL {
  const keys = target.keys.join(', ')
  const measures = ROLLUP_MEASURE_COLUMNS.map((c) => (c === 'latency_max_ms' ? `max(${c})` : `sum(${c})`)).join(', ')
  const positions = Array.from({ length: target.keys.length + 1 }, (_, i) => String(i + 1)).join(', ')
  return sql.raw(`
    INSERT INTO ${target.name} (${target.grain}, ${keys}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT ${grainStart(target.grain, source.grain)}, ${keys}, ${measures}
    FROM ${source.name} GROUP BY ${positions}`)
}

/**
 * Rebuilds every rollup from the raw events in one transaction (after a bulk load that bypassed
 * insertEvents, or after the histogram layout changed): the full-key hourly rollup from raw, the
 * coarser and narrower ones from it (ten times fewer rows to read), the quarter-hours from raw
 * and the quarter-hour totals from the quarter-hours per model.
 * Rollup rows for hours whose raw events were removed by retention are lost, so never run it on
 * a database with retention enabled.
 */
export async function rebuildRollups(database: Database): Promise<void> {
  await database.db.transaction(async (tx) => {
    for (const [i, rollup] of ROLLUP_TABLES.entries()) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      // An already rebuilt rollup with every key of this one at a grain dividing its grain: of the
      // same grain and narrowest if there is one (fewest rows to read), else the finer full key.
      const built = ROLLUP_TABLES.slice(0, i).filter((s) => rollup.keys.every((k) => s.keys.includes(k)))
      const source =
        ROLLUPS_NARROWEST_FIRST[rollup.grain].find((s) => built.includes(s)) ??
        built.find((s) => GRAIN_MS[rollup.grain] % GRAIN_MS[s.grain] === 0)
      await tx.execute(source ? rollupFromRollup(rollup, source) : upsertRollupFrom(rollup, 'usage_events'))
    }
    for (const rollup of ERROR_ROLLUPS) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      await tx.execute(upsertErrorRollupFrom(rollup, 'usage_events'))
    }
  })
}
