import { sql, type SQL } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { ServiceTier } from '../lib/schemas.js'
import {
  filterConditions,
  grainStart,
  METADATA_KEYS_TABLE,
  METADATA_ROLLUPS,
  METADATA_ROW_KIND,
  METADATA_VALUES_TABLE,
  metadataRollupKey,
  metadataRollupKeyFrom,
  ROLLUP_TABLES,
  type EventFilter,
  type EventRow,
  type MetadataRollupTable,
  type RollupTable,
} from '../db/event-store.js'
import { positionsOf, rollupLock } from './rollups.js'

/** An event ready to store: validated, normalized and priced. */
export interface NewUsageEvent {
  id: string
  botId: string
  createdAt: Date
  provider: string
  model: string
  requestType: string
  success: boolean
  errorMessage: string | null
  inputTokens: number
  outputTokens: number
  totalTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  cacheWrite1hTokens: number
  reasoningTokens: number
  inputAudioTokens: number
  outputAudioTokens: number
  webSearchRequests: number
  serviceTier: ServiceTier
  inferenceGeo: string | null
  latencyMs: number | null
  /** Exact decimal strings (USD). */
  cost: string | null
  reportedCost: string | null
  priced: boolean
  priceSource: string | null
  metadata: Record<string, unknown> | null
}

export interface InsertOutcome {
  /** Rows this call stored, keyed by `${botId}\u0000${id}`. */
  created: Map<string, EventRow>
  /** Rows that already existed (idempotent re-sends), same keys. */
  existing: Map<string, EventRow>
}

export const eventKey = (botId: string, id: string) => `${botId}\u0000${id}`

const EVENT_RECORD = sql.raw(`
  ord int, id text, bot_id text, created_at timestamptz, provider text, model text, request_type text,
  success boolean, error_message text, input_tokens int, output_tokens int, total_tokens bigint,
  cache_read_tokens int, cache_write_tokens int, cache_write_1h_tokens int, reasoning_tokens int,
  input_audio_tokens int, output_audio_tokens int, web_search_requests int, service_tier text, inference_geo text,
  latency_ms int, cost numeric, reported_cost numeric, priced boolean, price_source text, metadata jsonb`)

const EVENT_COLUMNS = sql.raw(`id, bot_id, created_at, provider, model, request_type, success, error_message,
  input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
  reasoning_tokens, input_audio_tokens, output_audio_tokens, web_search_requests, service_tier, inference_geo, latency_ms, cost, reported_cost, priced, price_source, metadata`)

function toRecordJson(events: NewUsageEvent[]): string {
  return JSON.stringify(
    events.map((e, ord) => ({
      ord,
      id: e.id,
      bot_id: e.botId,
      created_at: e.createdAt.toISOString(),
      provider: e.provider,
      model: e.model,
      request_type: e.requestType,
      success: e.success,
      error_message: e.errorMessage,
      input_tokens: e.inputTokens,
      output_tokens: e.outputTokens,
      total_tokens: e.totalTokens,
      cache_read_tokens: e.cacheReadTokens,
      cache_write_tokens: e.cacheWriteTokens,
      cache_write_1h_tokens: e.cacheWrite1hTokens,
      reasoning_tokens: e.reasoningTokens,
      input_audio_tokens: e.inputAudioTokens,
      output_audio_tokens: e.outputAudioTokens,
      web_search_requests: e.webSearchRequests,
      service_tier: e.serviceTier,
      inference_geo: e.inferenceGeo,
      latency_ms: e.latencyMs,
      cost: e.cost,
      reported_cost: e.reportedCost,
      priced: e.priced,
      price_source: e.priceSource,
      metadata: e.metadata,
    })),
  )
}

/**
 * The whole write: insert the events (in key order: concurrent writers with overlapping keys
 * then wait on each other's unique-index entries in the same order and cannot deadlock) and
 * return the inserted rows (or their keys). The rollups are folded later (foldRollups) from the
 * rows' txid; until then every read adds them from raw events.
 */
function insertEventsQuery(payload: unknown, returnRecords: boolean): SQL {
  return sql`
    WITH input AS (
      SELECT * FROM json_to_recordset(${payload}::json) AS t(${EVENT_RECORD})
    ),
    inserted AS (
      INSERT INTO usage_events (${EVENT_COLUMNS})
      SELECT ${EVENT_COLUMNS} FROM input ORDER BY bot_id, id
      ON CONFLICT (bot_id, id) DO NOTHING
      RETURNING *
    )
    SELECT ${returnRecords ? sql.raw('*') : sql.raw('bot_id, id')} FROM inserted`
}

/**
 * The insert statement's text is constant (only the JSON payload varies), so it is built and
 * prepared once per database. Batch callers need only the keys back: sending
 * whole rows back costs a quarter of a batch.
 */
const insertStatements = new WeakMap<Database, Map<boolean, (values: { payload: string }) => Promise<EventRow[]>>>()

function insertStatement(database: Database, returnRecords: boolean): (values: { payload: string }) => Promise<EventRow[]> {
  let statements = insertStatements.get(database)
  if (!statements) insertStatements.set(database, (statements = new Map()))
  let statement = statements.get(returnRecords)
  if (!statement) {
    statement = database.prepare<EventRow>(
      returnRecords ? 'usage.insert-events' : 'usage.insert-event-keys',
      insertEventsQuery(sql.placeholder('payload'), returnRecords),
    )
    statements.set(returnRecords, statement)
  }
  return statement
}

/**
 * The write path: stores a batch of events (a single event is a batch of one) in ONE statement.
 * Re-sent (botId, id) pairs insert nothing and count nothing. The rollups follow asynchronously
 * (usage/rollup-worker.ts); readers add the not yet folded events, so answers include them at once.
 */
export async function insertEvents(
  database: Database,
  events: NewUsageEvent[],
  returnRecords = true,
  /** Run inside this transaction (or savepoint) instead of as a prepared statement of its own. */
  tx?: SqlExecutor,
): Promise<InsertOutcome> {
  const created = new Map<string, EventRow>()
  const existing = new Map<string, EventRow>()
  if (events.length === 0) return { created, existing }
  const payload = toRecordJson(events)
  const rows = async <T>(query: SQL) => (tx ? rowsOf<T>(await tx.execute(query)) : database.rows<T>(query))

  const inserted = tx
    ? await rows<EventRow>(insertEventsQuery(payload, returnRecords))
    : await insertStatement(database, returnRecords)({ payload })
  for (const r of inserted) created.set(eventKey(r.bot_id, r.id), r)

  const missing = events.filter((e) => !created.has(eventKey(e.botId, e.id)))
  if (missing.length > 0 && returnRecords) {
    const keys = JSON.stringify(missing.map((e) => ({ bot_id: e.botId, id: e.id })))
    const found = await rows<EventRow>(sql`
      SELECT e.* FROM usage_events e
      JOIN json_to_recordset(${keys}::json) AS k(bot_id text, id text) USING (bot_id, id)`)
    for (const r of found) existing.set(eventKey(r.bot_id, r.id), r)
  }
  return { created, existing }
}

/**
 * Takes usage_events' write lock for the rest of the transaction `tx`. A transaction that inserts
 * events after anything else that gives it a transaction id (a savepoint rolled back after a
 * failed insert releases the lock that insert took, but not the id) must call this first: the
 * rollup fold skips running transactions that hold no lock on usage_events (FOLD_HORIZON in
 * rollups.ts), and would otherwise move its watermark past events still to come.
 */
export async function lockEventsForWrite(tx: SqlExecutor): Promise<void> {
  await tx.execute(sql`LOCK TABLE usage_events IN ROW EXCLUSIVE MODE`)
}

/** A transaction or savepoint handle: what insertEvents needs to run inside one. */
export interface SqlExecutor {
  execute(query: SQL): PromiseLike<unknown>
}

/** What repricing decides for one stored event. */
export type Reprice = (e: EventRow) => { cost: string | null; priced: boolean; priceSource: string | null }

export interface RepriceOutcome {
  scanned: number
  changed: number
  /** Exact decimal USD: new total minus old total over the events that changed. */
  costDelta: string
}

/**
 * Recomputes the cost of every event matching `f`, in keyset-paginated batches, each batch one
 * transaction: events are locked, changed costs written, and the same deltas applied to the
 * rollups for the events already folded into them (txid below the watermark); the others are in
 * no rollup yet, and the fold reads their new cost. Each batch holds the fold's lock (rollupLock)
 * so no fold reads an event's old cost while its delta is skipped. Running it twice changes
 * nothing the second time.
 */
export async function repriceEvents(database: Database, f: EventFilter, reprice: Reprice, batchSize = 2000): Promise<RepriceOutcome> {
  let cursor: { createdAt: string; botId: string; id: string } | null = null
  const outcome = { scanned: 0, changed: 0 }
  let costDelta = 0n
  for (;;) {
    const after: SQL = cursor
      ? sql`AND (created_at, bot_id, id) > (${cursor.createdAt}::timestamptz, ${cursor.botId}, ${cursor.id})`
      : sql``
    const batch = await database.db.transaction(async (tx) => {
      // Waits for a running fold; the watermark read after it stays put until this commits.
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${rollupLock(database)})`)
      const [{ rolled_below: rolledBelow }] = rowsOf<{ rolled_below: string }>(
        await tx.execute(sql`SELECT rolled_below::text AS rolled_below FROM rollup_watermark`),
      )
      const rows = rowsOf<EventRow>(
        await tx.execute(sql`
          SELECT * FROM usage_events WHERE ${filterConditions(f)} ${after}
          ORDER BY created_at, bot_id, id LIMIT ${batchSize} FOR UPDATE`),
      )
      const changes = rows.flatMap((r) => {
        const next = reprice(r)
        const same =
          next.priced === r.priced && next.priceSource === r.price_source && sameDecimal(next.cost, r.cost)
        return same ? [] : [{ bot_id: r.bot_id, id: r.id, cost: next.cost, priced: next.priced, price_source: next.priceSource }]
      })
      let delta = '0'
      if (changes.length > 0) {
        const payload = JSON.stringify(changes)
        const changed = sql`(SELECT e.*, c.cost AS new_cost, c.priced AS new_priced, c.price_source AS new_price_source
          FROM usage_events e JOIN json_to_recordset(${payload}::json) AS c(bot_id text, id text, cost numeric, priced boolean, price_source text)
          USING (bot_id, id))`
        const folded = sql`(SELECT * FROM ${changed} c WHERE txid < ${rolledBelow}::xid8)`
        const deltaRows = (rollup: RollupTable) => {
          const keys = sql.raw(rollup.keys.join(', '))
          return sql`(SELECT ${sql.raw(grainStart(rollup.grain, 'created_at'))} AS ${sql.raw(rollup.grain)}, ${keys},
            ${sql.raw(REPRICE_DELTA_SUMS)}
          FROM ${folded} x GROUP BY ${sql.raw([rollup.grain, ...rollup.keys].join(', '))})`
        }
        // Everything below reads the events before they are updated, then updates them.
        const [{ total }] = rowsOf<{ total: string }>(
          await tx.execute(sql`SELECT coalesce(sum(coalesce(new_cost, 0) - coalesce(cost, 0)), 0)::text AS total FROM ${changed} x`),
        )
        delta = total
        // The same deltas per declared metadata key, for the events folded into its rollups.
        const metadataDeltaRows = (rollup: MetadataRollupTable) => {
          const other = 'sv.listed IS FALSE'
          return sql`(SELECT ${sql.raw(metadataRollupKeyFrom(rollup, 'x'))},
            CASE WHEN m.value IS NULL THEN ${METADATA_ROW_KIND.absent} WHEN ${sql.raw(other)} THEN ${METADATA_ROW_KIND.other} ELSE ${METADATA_ROW_KIND.value} END AS kind,
            CASE WHEN m.value IS NULL OR ${sql.raw(other)} THEN '' ELSE m.value END AS value,
            ${sql.raw(REPRICE_DELTA_SUMS)}
          FROM ${folded} x JOIN ${sql.raw(METADATA_KEYS_TABLE)} k ON k.active AND x.created_at >= k.since
          CROSS JOIN LATERAL (SELECT x.metadata ->> k.key AS value) m
          LEFT JOIN ${sql.raw(METADATA_VALUES_TABLE)} sv ON sv.key = k.key AND sv.value = m.value
          GROUP BY ${sql.raw(positionsOf(metadataRollupKey(rollup).length))})`
        }
        const targets = [
          ...ROLLUP_TABLES.map((r) => ({ name: r.name, key: [r.grain, ...r.keys], deltas: deltaRows(r) })),
          ...METADATA_ROLLUPS.map((r) => ({ name: r.name, key: metadataRollupKey(r), deltas: metadataDeltaRows(r) })),
        ]
        // Rollup rows are locked table by table, each in key order: the order insertEvents uses.
        for (const target of targets) {
          await tx.execute(sql`
            SELECT 1 FROM ${sql.raw(target.name)} h JOIN ${target.deltas} d USING (${sql.raw(target.key.join(', '))})
            ORDER BY ${sql.raw(target.key.map((c) => `h.${c}`).join(', '))} FOR UPDATE OF h`)
        }
        for (const target of targets) {
          await tx.execute(sql`
            UPDATE ${sql.raw(target.name)} h SET cost = h.cost + d.d_cost, unpriced_calls = h.unpriced_calls + d.d_unpriced,
              unpriced_input_tokens = h.unpriced_input_tokens + d.d_unpriced_in,
              unpriced_output_tokens = h.unpriced_output_tokens + d.d_unpriced_out
            FROM ${target.deltas} d
            WHERE (${sql.raw(target.key.map((c) => `h.${c}`).join(', '))}) = (${sql.raw(target.key.map((c) => `d.${c}`).join(', '))})`)
        }
        await tx.execute(sql`
          UPDATE usage_events e SET cost = c.cost, priced = c.priced, price_source = c.price_source
          FROM json_to_recordset(${payload}::json) AS c(bot_id text, id text, cost numeric, priced boolean, price_source text)
          WHERE e.bot_id = c.bot_id AND e.id = c.id`)
      }
      return { rows, changed: changes.length, delta }
    })
    outcome.scanned += batch.rows.length
    outcome.changed += batch.changed
    costDelta += parseUsd(batch.delta)
    if (batch.rows.length < batchSize) break
    const last = batch.rows[batch.rows.length - 1]
    cursor = { createdAt: new Date(last.created_at).toISOString(), botId: last.bot_id, id: last.id }
  }
  return { ...outcome, costDelta: formatUsd(costDelta) }
}

/** What repricing changes in a rollup row, summed over its repriced events (new_* is the new price). */
const REPRICE_DELTA_SUMS = `sum(coalesce(new_cost, 0) - coalesce(cost, 0)) AS d_cost,
  sum((NOT new_priced)::int - (NOT priced)::int) AS d_unpriced,
  sum(((NOT new_priced)::int - (NOT priced)::int) * input_tokens) AS d_unpriced_in,
  sum(((NOT new_priced)::int - (NOT priced)::int) * output_tokens) AS d_unpriced_out`

function sameDecimal(a: string | null, b: string | null): boolean {
  return a === null || b === null ? a === b : parseUsd(a) === parseUsd(b)
}
