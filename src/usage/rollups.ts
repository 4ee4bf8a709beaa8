import { sql, type SQL } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
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
  metadataRollupKeyFrom,
  ROLLUP_TABLES,
  ROLLUPS_NARROWEST_FIRST,
  type ErrorRollupTable,
  type MetadataRollupTable,
  ROLLUP_GRAINS,
  ROLLUP_KEY_COLUMNS,
  type RollupGrain,
  type RollupTable,
  UNFOLDED_EVENTS,
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

/**
 * A measure's aggregate over a group of rows that already hold it (rollup rows, or the fold's
 * per-quarter-hour rows): sums add (an all-NULL histogram bucket stays NULL), maxima take the greatest.
 */
function aggregateOfRows(m: Measure): string {
  return m.kind === 'max' ? `max(${m.column})` : `sum(${m.column})`
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

/** The same measure columns, aggregated from rows that already hold them (aggregateOfRows). */
function rollupAggregatesOfRows(measures: readonly Measure[] = STORED_MEASURES): string {
  return measures.map(aggregateOfRows).join(',\n        ')
}

/** `1, 2, ..., n`: the GROUP BY / ORDER BY positions of a SELECT's first n columns. */
export const positionsOf = (n: number): string => Array.from({ length: n }, (_, i) => String(i + 1)).join(', ')

/** The ON CONFLICT DO UPDATE assignments that fold `excluded` into the stored row aliased `target`. */
export function rollupMergeAssignments(target: string, measures: readonly Measure[] = STORED_MEASURES): SQL {
  return sql.raw(measures.map((m) => mergeAssignment(m, target)).join(',\n        '))
}

/**
 * What an upsert reads: raw usage_events rows (`events`), or rows that already hold every stored
 * measure aggregated per full key at a finer grain (`grain` names their time column).
 */
export type RollupSource = { kind: 'events' } | { kind: 'aggregated'; grain: RollupGrain }

const EVENTS: RollupSource = { kind: 'events' }

/**
 * INSERT ... SELECT that folds the rows of `relation` (a CTE name or table, of `source`'s kind)
 * into `rollup`, upserting in key order so that concurrent writers lock rows in the same order
 * and cannot deadlock. `guard` is appended to the WHERE clause (used to sequence the upserts of
 * one statement). `measures` is every stored measure, except for a table of an older layout (the
 * upgrade test builds the rollups a database had before a migration).
 */
export function upsertRollupFrom(
  rollup: RollupTable,
  relation: string,
  guard: SQL = sql`TRUE`,
  measures: readonly Measure[] = STORED_MEASURES,
  source: RollupSource = EVENTS,
): SQL {
  const time = sql.raw(rollup.grain)
  const keys = sql.raw(rollup.keys.join(', '))
  const positions = sql.raw(positionsOf(rollup.keys.length + 1))
  const start = source.kind === 'events' ? grainStart(rollup.grain, 'created_at') : grainStart(rollup.grain, source.grain)
  const aggregates = source.kind === 'events' ? rollupAggregatesOfEvents(measures) : sql.raw(rollupAggregatesOfRows(measures))
  return sql`
    INSERT INTO ${sql.raw(rollup.name)} AS r (${time}, ${keys}, ${sql.raw(measures.map((m) => m.column).join(', '))})
    SELECT ${sql.raw(start)}, ${keys},
        ${aggregates}
    FROM ${sql.raw(relation)}
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
  const positions = positionsOf(rollup.columns.length)
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
 * active key (created_at >= since) and (bucket, its keys, value | other | absent), in key
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
  const positions = positionsOf(key.length)
  return sql.raw(`
    INSERT INTO ${rollup.name} AS r (${key.join(', ')}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT ${metadataRollupKeyFrom(rollup, 'e')},
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

/** One upsert of the fold: `name` is its CTE in the fold statement, `returning` what it returns. */
interface Fold {
  name: string
  upsert: SQL
  returning?: string
}

/** The finest grain of the rollups; every other grain is a whole number of it. */
const FINE_GRAIN: RollupGrain = [...ROLLUP_GRAINS].sort((a, b) => GRAIN_MS[a] - GRAIN_MS[b])[0]

/** The fold's batch aggregated once per FINE_GRAIN and full key: what every ROLLUP_TABLES upsert reads. */
const FINE = 'fine'

/**
 * Every rollup upsert of the fold, in lock order: ROLLUP_TABLES (from FINE), ERROR_ROLLUPS and
 * the metadata values and METADATA_ROLLUPS (from the events of `eventsRelation`). `guard(i)`
 * sequences the i-th after the previous one.
 */
function everyUpsert(eventsRelation: string, guard: (i: number) => SQL): Fold[] {
  const n = ROLLUP_TABLES.length + ERROR_ROLLUPS.length
  const values = `rolled_${n}`
  const fine: RollupSource = { kind: 'aggregated', grain: FINE_GRAIN }
  return [
    ...ROLLUP_TABLES.map((rollup, i) => ({ name: `rolled_${i}`, upsert: upsertRollupFrom(rollup, FINE, guard(i), STORED_MEASURES, fine) })),
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
 * CTEs that fold the events of `eventsRelation` into every rollup: FINE, then the upserts
 * (`last` names the last one). Each upsert reads the previous one's RETURNING, which makes them
 * run one after the other, in everyUpsert's order: every writer of rollups (the fold,
 * repriceEvents) then takes rollup row locks in the same global order, and none deadlock.
 */
function foldCtes(eventsRelation: string): { ctes: SQL; last: string } {
  const guard = (i: number) => (i === 0 ? sql`TRUE` : sql.raw(`(SELECT count(*) FROM rolled_${i - 1}) >= 0`))
  const upserts = everyUpsert(eventsRelation, guard)
  const keys = ROLLUP_KEY_COLUMNS.join(', ')
  const positions = positionsOf(ROLLUP_KEY_COLUMNS.length + 1)
  const fine = sql`${sql.raw(`${FINE} (${FINE_GRAIN}, ${keys}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})`)} AS MATERIALIZED (
          SELECT ${sql.raw(grainStart(FINE_GRAIN, 'created_at'))}, ${sql.raw(keys)}, ${rollupAggregatesOfEvents()}
          FROM ${sql.raw(eventsRelation)} GROUP BY ${sql.raw(positions)})`
  const ctes = sql.join([fine, ...upserts.map((f) => sql`${sql.raw(f.name)} AS (${f.upsert} RETURNING ${sql.raw(f.returning ?? '1')})`)], sql`,
    `)
  return { ctes, last: upserts[upserts.length - 1].name }
}

/**
 * The advisory lock (transaction scoped) that serializes every writer of rollup rows and of the
 * watermark: the fold (tries it, skips when held), repricing, rebuildRollups and the metadata
 * key registry (wait for it). Advisory locks are per database, so the key names the schema too:
 * deployments (and test files) sharing a database in their own schemas never wait on each other.
 */
export const rollupLock = (database: Pick<Database, 'schema'>): SQL => sql`${721_500_330}::int, hashtext(${database.schema})`

export interface FoldOutcome {
  /** False when another connection (instance) held the fold lock: nothing was done. */
  ran: boolean
  /** Events folded into the rollups by this call. */
  folded: number
  /** Committed events still above the watermark after this call (visible to it). */
  behindRows: number
  /** Age (receive time) of the oldest event still above the watermark, seconds; 0 when none. */
  behindSeconds: number
}

/**
 * The fold's horizon, `xmin`: the lowest transaction id whose events may still become visible.
 * It is the statement snapshot's xmin, except that transactions provably not writing
 * usage_events are skipped: the xid horizon is cluster-wide, so a long transaction of another
 * database or schema (a bulk load, another service) would otherwise stall the rollups for its
 * whole length. Provably: still running (it holds the lock on its own xid) and holding no lock
 * on usage_events. A transaction inserting events takes that lock before its xid is assigned
 * (the INSERT locks the table, then writes the first row), or took it first with
 * lockEventsForWrite (the flush that retries a group under savepoints: a rolled-back savepoint
 * releases its locks but not the transaction id); one that has finished by the time pg_locks is
 * read is not skipped.
 */
const FOLD_HORIZON = sql.raw(`
  SELECT least(pg_snapshot_xmax(snap.s), coalesce((
    SELECT x FROM pg_snapshot_xip(snap.s) AS x
    WHERE NOT EXISTS (
      SELECT 1 FROM pg_locks own
      WHERE own.locktype = 'transactionid' AND own.granted
        AND own.transactionid::text = (x::text::bigint % 4294967296)::text
        AND NOT EXISTS (
          SELECT 1 FROM pg_locks rel
          WHERE rel.locktype = 'relation' AND rel.relation = 'usage_events'::regclass
            AND rel.virtualtransaction = own.virtualtransaction))
    ORDER BY x LIMIT 1), pg_snapshot_xmax(snap.s))) AS xmin
  FROM (SELECT pg_current_snapshot() AS s) snap`)

/**
 * Folds the tail (events with rolled_below <= txid) into every rollup, at most about `maxRows`
 * events (always whole transactions), and moves the watermark past them, in ONE statement
 * (after an index probe for anything to fold and the fold lock), in one transaction.
 *
 * The statement's own snapshot bounds the batch (FOLD_HORIZON): every transaction id below the
 * horizon that may write events has finished, so every committed event with a txid below it is
 * visible to the statement and no later commit can add one. Events of transactions still open stay in the tail (and the readers
 * keep adding them from raw) until a later fold. Concurrent folds (several instances) are
 * serialized by rollupLock: the loser skips, it never counts anything twice.
 */
export async function foldRollups(database: Database, maxRows = 50_000): Promise<FoldOutcome> {
  return database.preparedTransaction(async (run) => {
    // Most runs find nothing to fold (the worker runs every ROLLUP_INTERVAL_MS): one index probe.
    const [{ pending }] = await run<{ pending: boolean }>('rollup_fold_pending', FOLD_PENDING)
    if (!pending) return { ran: true, folded: 0, behindRows: 0, behindSeconds: 0 }
    const [lock] = await run<{ locked: boolean }>('rollup_fold_lock', sql`SELECT pg_try_advisory_xact_lock(${rollupLock(database)}) AS locked`)
    if (!lock.locked) return { ran: false, folded: 0, behindRows: 0, behindSeconds: 0 }
    const [row] = await run<{ folded: string | number; behind_rows: string | number; behind_seconds: string | number | null }>(
      'rollup_fold',
      foldStatement(maxRows),
    )
    return { ran: true, folded: Number(row.folded), behindRows: Number(row.behind_rows), behindSeconds: Number(row.behind_seconds ?? 0) }
  })
}

/**
 * Whether any committed event is above the watermark. When none is, a fold would fold nothing
 * and only move the watermark up to its horizon, which changes no answer (the tail between is
 * empty) and which the next fold with events to fold does anyway.
 */
const FOLD_PENDING = sql`SELECT EXISTS (SELECT 1 FROM usage_events WHERE ${UNFOLDED_EVENTS}) AS pending`

const foldStatements = new Map<number, SQL>()

/** The fold's one statement for batches of about `maxRows` events (built once per size). */
function foldStatement(maxRows: number): SQL {
  const built = foldStatements.get(maxRows)
  if (built) return built
  const { ctes, last } = foldCtes('batch')
  const statement = sql`
    WITH lo AS (SELECT rolled_below AS lo FROM rollup_watermark),
    horizon AS (${FOLD_HORIZON}),
    -- At most maxRows events: cut at the txid of the next row (a transaction is never split;
    -- one larger than maxRows is folded whole).
    cut AS (
      SELECT (SELECT txid FROM usage_events WHERE txid >= (SELECT lo FROM lo) ORDER BY txid OFFSET ${maxRows} LIMIT 1) AS at
    ),
    mark AS (
      SELECT lo, greatest(lo, least(xmin, CASE
        WHEN at IS NULL THEN xmin
        WHEN at > lo THEN at
        ELSE coalesce((SELECT txid FROM usage_events WHERE txid > lo ORDER BY txid LIMIT 1), xmin) END)) AS hi
      FROM lo, horizon, cut
    ),
    batch AS MATERIALIZED (
      SELECT * FROM usage_events WHERE txid >= (SELECT lo FROM mark) AND txid < (SELECT hi FROM mark)
    ),
    ${ctes},
    moved AS (
      UPDATE rollup_watermark SET rolled_below = (SELECT hi FROM mark)
      WHERE rolled_below < (SELECT hi FROM mark) AND (SELECT count(*) FROM ${sql.raw(last)}) >= 0
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch) AS folded,
      (SELECT count(*) FROM moved) AS moved,
      behind.n AS behind_rows,
      coalesce(extract(epoch FROM now() - behind.oldest), 0) AS behind_seconds
    FROM (SELECT count(*) AS n, min(received_at) AS oldest FROM usage_events WHERE txid >= (SELECT hi FROM mark)) behind`
  foldStatements.set(maxRows, statement)
  return statement
}

/**
 * Folds until no committed event is above the watermark (tests, the benchmark, after a bulk
 * load), waiting for transactions that hold the horizon back; gives up after `timeoutMs`.
 */
export async function foldAll(database: Database, maxRows?: number, timeoutMs = 120_000): Promise<number> {
  let total = 0
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const outcome = await foldRollups(database, maxRows)
    total += outcome.folded
    if (outcome.ran && outcome.behindRows === 0) return total
    if (Date.now() > deadline) throw new Error(`the rollups are still ${outcome.behindRows} events behind after ${timeoutMs} ms`)
    if (outcome.folded === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * INSERT ... SELECT that fills `target` from the rows of `source`, a rollup with every key of
 * target at a grain that divides target's (a day of hours, all bots of a model): sums add,
 * maxima take the greatest, and a histogram bucket stays NULL when empty in every source row.
 */
export function rollupFromRollup(target: RollupTable, source: RollupTable): SQL {
  const keys = target.keys.join(', ')
  const measures = rollupAggregatesOfRows()
  const positions = positionsOf(target.keys.length + 1)
  return sql.raw(`
    INSERT INTO ${target.name} (${target.grain}, ${keys}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT ${grainStart(target.grain, source.grain)}, ${keys}, ${measures}
    FROM ${source.name} GROUP BY ${positions}`)
}

/** INSERT ... SELECT that fills the metadata rollup `target` from `source`, of a finer grain and every key of target. */
function metadataRollupFromRollup(target: MetadataRollupTable, source: MetadataRollupTable): SQL {
  const key = metadataRollupKey(target)
  const select = key.map((c) => (c === target.grain ? grainStart(target.grain, source.grain) : c)).join(', ')
  const measures = rollupAggregatesOfRows()
  return sql.raw(`
    INSERT INTO ${target.name} (${key.join(', ')}, ${ROLLUP_MEASURE_COLUMNS.join(', ')})
    SELECT ${select}, ${measures}
    FROM ${source.name} GROUP BY ${positionsOf(key.length)}`)
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
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${rollupLock(database)})`)
    // The watermark moves to the fold's horizon (FOLD_HORIZON) in this statement: every event below it is finished
    // (and visible to every later statement here), so exactly those are rebuilt; the rest is the tail.
    const [{ h }] = rowsOf<{ h: string }>(
      await tx.execute(sql`UPDATE rollup_watermark SET rolled_below = (SELECT xmin FROM (${FOLD_HORIZON}) horizon) RETURNING rolled_below::text AS h`),
    )
    const folded = sql`txid < ${h}::xid8`
    for (const [i, rollup] of ROLLUP_TABLES.entries()) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      // An already rebuilt rollup with every key of this one at a grain dividing its grain: of the
      // same grain and narrowest if there is one (fewest rows to read), else the finer full key.
      const built = ROLLUP_TABLES.slice(0, i).filter((s) => rollup.keys.every((k) => s.keys.includes(k)))
      const source =
        ROLLUPS_NARROWEST_FIRST[rollup.grain].find((s) => built.includes(s)) ??
        built.find((s) => GRAIN_MS[rollup.grain] % GRAIN_MS[s.grain] === 0)
      await tx.execute(source ? rollupFromRollup(rollup, source) : upsertRollupFrom(rollup, 'usage_events', folded))
    }
    for (const rollup of ERROR_ROLLUPS) {
      await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
      await tx.execute(upsertErrorRollupFrom(rollup, 'usage_events', folded))
    }
    // The values are chosen again (in value order), so which are listed may change; then the
    // finest metadata rollup from raw events (the values are visible to the later statements of
    // the transaction) and the coarser or narrower ones from it.
    for (const rollup of METADATA_ROLLUPS) await tx.execute(sql.raw(`DELETE FROM ${rollup.name}`))
    await tx.execute(sql.raw(`DELETE FROM ${METADATA_VALUES_TABLE}`))
    await tx.execute(upsertMetadataValuesFrom('usage_events', folded))
    // Without statistics the planner takes the values for a few rows and joins every event to all of them.
    await tx.execute(sql.raw(`ANALYZE ${METADATA_VALUES_TABLE}`))
    const [finest, ...coarser] = [...METADATA_ROLLUPS].sort((x, y) => GRAIN_MS[x.grain] - GRAIN_MS[y.grain])
    await tx.execute(upsertMetadataRollupFrom(finest, 'usage_events', null, folded))
    // A narrower one from the built one of its grain with its keys (fewer rows), else the finest.
    const built = [finest]
    for (const rollup of coarser) {
      const source = built.find((s) => s.grain === rollup.grain && rollup.keys.every((k) => s.keys.includes(k))) ?? finest
      await tx.execute(metadataRollupFromRollup(rollup, source))
      built.push(rollup)
    }
  })
}
