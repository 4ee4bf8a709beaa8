import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import {
  ERROR_ROLLUPS,
  errorMessageKey,
  GRAIN_MS,
  grainStart,
  METADATA_KEYS_TABLE,
  METADATA_ROLLUPS,
  METADATA_ROW_KIND,
  METADATA_VALUES_TABLE,
  metadataRollupKey,
  ROLLUP_TABLES,
  type ErrorRollupTable,
  type MetadataRollupTable,
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
 * last occurrence per day and message key), in key order like upsertRollupFrom.
 */
export function upsertErrorRollupFrom(rollup: ErrorRollupTable, eventsRelation: string, guard: SQL = sql`TRUE`): SQL {
  const source: Record<string, string> = { day: grainStart('day', 'created_at'), message: errorMessageKey() }
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

/**
 * The values of declared metadata keys that `eventsRelation` brings for the first time, inserted
 * into METADATA_VALUES_TABLE: listed while the key has fewer than max_values listed values, else
 * not (their events fold into "other"). Values already stored (in this statement's snapshot) are
 * left alone; a value a concurrent writer stored first conflicts, and the row RETURNED is theirs,
 * so every writer folds a value the same way. RETURNING key, value, listed.
 */
export function upsertMetadataValuesFrom(eventsRelation: string, guard: SQL = sql`TRUE`): SQL {
  return sql.raw(`
    INSERT INTO ${METADATA_VALUES_TABLE} AS v (key, value, listed)
    SELECT n.key, n.value,
        coalesce((SELECT count(*) FROM ${METADATA_VALUES_TABLE} c WHERE c.key = n.key AND c.listed), 0)
          + row_number() OVER (PARTITION BY n.key ORDER BY n.value) <= n.max_values
    FROM (
      SELECT DISTINCT k.key, e.metadata ->> k.key AS value, k.max_values
      FROM ${eventsRelation} e JOIN ${METADATA_KEYS_TABLE} k ON k.active AND e.created_at >= k.since
      WHERE e.metadata ->> k.key IS NOT NULL AND `).append(guard).append(sql.raw(`
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM ${METADATA_VALUES_TABLE} s WHERE s.key = n.key AND s.value = n.value)
    ORDER BY n.key, n.value
    ON CONFLICT (key, value) DO UPDATE SET listed = v.listed`))
}

/**
 * INSERT ... SELECT that folds the events of `eventsRelation` into a metadata rollup, one row per
 * active key (created_at >= since) and (bucket, bot, success, value | other | absent), in key
 * order. `newValues` is the relation RETURNED by upsertMetadataValuesFrom in the same statement
 * (the values it stored are not in the statement's snapshot), or NULL when there is none.
 */
export function upsertMetadataRollupFrom(rollup: MetadataRollupTable, eventsRelation: string, newValues: string | null, guard: SQL = sql`TRUE`): SQL {
  const key = metadataRollupKey(rollup)
  // A lookup per (key, value) by primary key: as a join, a values table without statistics yet was
  // scanned whole for every event (seconds per batch).
  const stored = `(SELECT sv.listed FROM ${METADATA_VALUES_TABLE} sv WHERE sv.key = k.key AND sv.value = m.value)`
  const listed = newValues === null ? stored : `coalesce(nv.listed, ${stored})`
  const joinNew = newValues === null ? '' : `LEFT JOIN ${newValues} nv ON nv.key = k.key AND nv.value = m.value`
  const positions = key.map((_, i) => String(i + 1)).join(', ')
  return sql.raw(`
    INSERT INTO ${rollup.name} AS r (${key.join(', ')}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT k.key, ${grainStart(rollup.grain, 'e.created_at')}, e.bot_id, e.success,
        CASE WHEN m.value IS NULL THEN '${METADATA_ROW_KIND.absent}' WHEN ${listed} IS FALSE THEN '${METADATA_ROW_KIND.other}' ELSE '${METADATA_ROW_KIND.value}' END,
        CASE WHEN m.value IS NULL OR ${listed} IS FALSE THEN '' ELSE m.value END,
        `).append(rollupAggregatesOfEvents()).append(sql.raw(`
    FROM ${eventsRelation} e JOIN ${METADATA_KEYS_TABLE} k ON k.active AND e.created_at >= k.since
    CROSS JOIN LATERAL (SELECT e.metadata ->> k.key AS value) m
    ${joinNew}
    WHERE `)).append(guard).append(sql.raw(`
    GROUP BY ${positions}
    ORDER BY ${positions}
    ON CONFLICT (${key.join(', ')}) DO UPDATE SET
        `)).append(rollupMergeAssignments('r'))
}

/** One upsert of the fold: `name` is its CTE in the ingest statement, `returning` what it returns. */
export interface Fold {
  name: string
  upsert: SQL
  returning?: string
}

/**
 * Every rollup upsert of `eventsRelation`, in lock order: ROLLUP_TABLES, ERROR_ROLLUPS, then the
 * metadata values and METADATA_ROLLUPS. `guard(i)` sequences the i-th after the previous one. A
 * pure function of the events relation: wherever the fold runs, it folds the same.
 */
export function everyUpsert(eventsRelation: string, guard: (i: number) => SQL): Fold[] {
  const n = ROLLUP_TABLES.length + ERROR_ROLLUPS.length
  const values = `rolled_${n}`
  return [
    ...ROLLUP_TABLES.map((rollup, i) => ({ name: `rolled_${i}`, upsert: upsertRollupFrom(rollup, eventsRelation, guard(i)) })),
    ...ERROR_ROLLUPS.map((rollup, i) => ({
      name: `rolled_${ROLLUP_TABLES.length + i}`,
      upsert: upsertErrorRollupFrom(rollup, eventsRelation, guard(ROLLUP_TABLES.length + i)),
    })),
    { name: values, upsert: upsertMetadataValuesFrom(eventsRelation, guard(n)), returning: 'key, value, listed' },
    ...METADATA_ROLLUPS.map((rollup, i) => ({
      name: `rolled_${n + 1 + i}`,
      upsert: upsertMetadataRollupFrom(rollup, eventsRelation, values, guard(n + 1 + i)),
    })),
  ]
}

/**
 * The CTEs of the ingest statement that fold the CTE `inserted` into every rollup. Each upsert
 * reads the previous one's RETURNING, which makes them run one after the other, in
 * everyUpsert's order: every writer (and repriceEvents) then takes rollup row locks in the same
 * global order, and none deadlock.
 */
export function rollupUpsertCtes(eventsRelation: string): SQL {
  const guard = (i: number) => (i === 0 ? sql`TRUE` : sql.raw(`(SELECT count(*) FROM rolled_${i - 1}) >= 0`))
  return sql.join(
    everyUpsert(eventsRelation, guard).map((f) => sql`${sql.raw(f.name)} AS (${f.upsert} RETURNING ${sql.raw(f.returning ?? '1')})`),
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

/** INSERT ... SELECT that fills the metadata rollup `target` from `source`, of a finer grain. */
function metadataRollupFromRollup(target: MetadataRollupTable, source: MetadataRollupTable): SQL {
  const key = metadataRollupKey(target)
  const select = key.map((c) => (c === target.grain ? grainStart(target.grain, source.grain) : c)).join(', ')
  const measures = ROLLUP_MEASURE_COLUMNS.map((c) => (c === 'latency_max_ms' ? `max(${c})` : `sum(${c})`)).join(', ')
  return sql.raw(`
    INSERT INTO ${target.name} (${key.join(', ')}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT ${select}, ${measures}
    FROM ${source.name} GROUP BY ${key.map((_, i) => String(i + 1)).join(', ')}`)
}

/**
 * Rebuilds every rollup from the raw events in one transaction (after a bulk load that bypassed
 * insertEvents, or after the histogram layout changed): the full-key hourly rollup from raw, the
 * coarser and narrower ones from it (ten times fewer rows to read), the quarter-hours from raw.
 * Rollup rows for hours whose raw events were removed by retention are lost, so never run it on
 * a database with retention enabled.
 */
export async function rebuildRollups(database: Database): Promise<void> {
  const [full] = ROLLUP_TABLES
  await database.db.transaction(async (tx) => {
    for (const rollup of ROLLUP_TABLES) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      const derivable = rollup !== full && GRAIN_MS[rollup.grain] % GRAIN_MS[full.grain] === 0
      await tx.execute(derivable ? rollupFromRollup(rollup, full) : upsertRollupFrom(rollup, 'usage_events'))
    }
    for (const rollup of ERROR_ROLLUPS) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      await tx.execute(upsertErrorRollupFrom(rollup, 'usage_events'))
    }
    // The values are chosen again (in value order), so which are listed may change; then the
    // finest metadata rollup from raw events (the values are visible to the later statements of
    // the transaction) and the coarser ones from it.
    for (const rollup of METADATA_ROLLUPS) await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
    await tx.execute(sql.raw(`DELETE FROM ${METADATA_VALUES_TABLE}`))
    await tx.execute(upsertMetadataValuesFrom('usage_events'))
    // Without statistics the planner takes the values for a few rows and joins every event to all of them.
    await tx.execute(sql.raw(`ANALYZE ${METADATA_VALUES_TABLE}`))
    const [finest, ...coarser] = [...METADATA_ROLLUPS].sort((x, y) => GRAIN_MS[x.grain] - GRAIN_MS[y.grain])
    await tx.execute(upsertMetadataRollupFrom(finest, 'usage_events', null))
    for (const rollup of coarser) await tx.execute(metadataRollupFromRollup(rollup, finest))
  })
}
