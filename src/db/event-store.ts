import { sql, type SQL } from 'drizzle-orm'
import type { UsageEvent } from '../lib/usage-event.js'

/**
 * The event store as both sides see it: the raw usage_events row, the filters every read shares,
 * and which rollups exist with their keys. usage/ writes the store (insertEvents, the rollup
 * upserts, repricing); analytics/ reads it. Neither imports the other: both import this.
 */

/** A usage_events row as the drivers return it from raw SQL. */
export interface EventRow {
  id: string
  bot_id: string
  created_at: Date | string
  received_at: Date | string
  provider: string
  model: string
  request_type: string
  success: boolean
  error_message: string | null
  input_tokens: number
  output_tokens: number
  /** bigint: the drivers may return it as a string. */
  total_tokens: number | string
  cache_read_tokens: number
  cache_write_tokens: number
  cache_write_1h_tokens: number
  reasoning_tokens: number
  input_audio_tokens: number
  output_audio_tokens: number
  web_search_requests: number
  service_tier: string
  inference_geo: string | null
  latency_ms: number | null
  cost: string | null
  reported_cost: string | null
  priced: boolean
  price_source: string | null
  metadata: Record<string, unknown> | null
}

const iso = (v: Date | string) => (v instanceof Date ? v : new Date(v)).toISOString()
const usdOrNull = (v: string | null) => (v === null ? null : Number(v))

export function toUsageEvent(r: EventRow): UsageEvent {
  return {
    id: r.id,
    botId: r.bot_id,
    model: r.model,
    provider: r.provider,
    requestType: r.request_type,
    success: r.success,
    errorMessage: r.error_message,
    inputTokens: r.input_tokens,
    outputTokens: r.output_tokens,
    totalTokens: Number(r.total_tokens),
    cacheReadTokens: r.cache_read_tokens,
    cacheWriteTokens: r.cache_write_tokens,
    cacheWrite1hTokens: r.cache_write_1h_tokens,
    reasoningTokens: r.reasoning_tokens,
    inputAudioTokens: r.input_audio_tokens,
    outputAudioTokens: r.output_audio_tokens,
    webSearchRequests: r.web_search_requests,
    serviceTier: r.service_tier,
    inferenceGeo: r.inference_geo,
    latencyMs: r.latency_ms,
    estimatedCost: usdOrNull(r.cost),
    reportedCost: usdOrNull(r.reported_cost),
    priced: r.priced,
    priceSource: r.price_source,
    metadata: r.metadata,
    createdAt: iso(r.created_at),
    receivedAt: iso(r.received_at),
  }
}

/** SQL conditions for the filters every read endpoint shares. */
export interface EventFilter {
  botIds?: string[] | null
  model?: string
  provider?: string
  requestType?: string
  success?: boolean
  /** Inclusive. */
  from?: Date
  /** Exclusive. */
  to?: Date
}

export function filterConditions(f: EventFilter, timeColumn: SQL = sql.raw('created_at')): SQL {
  const parts: SQL[] = []
  if (f.botIds) {
    parts.push(f.botIds.length === 0 ? sql`FALSE` : sql`bot_id IN (${sql.join(f.botIds.map((b) => sql`${b}`), sql`, `)})`)
  }
  if (f.model !== undefined) parts.push(sql`model = ${f.model}`)
  if (f.provider !== undefined) parts.push(sql`provider = ${f.provider}`)
  if (f.requestType !== undefined) parts.push(sql`request_type = ${f.requestType}`)
  if (f.success !== undefined) parts.push(sql`success = ${f.success}`)
  if (f.from) parts.push(sql`${timeColumn} >= ${f.from.toISOString()}`)
  if (f.to) parts.push(sql`${timeColumn} < ${f.to.toISOString()}`)
  return parts.length === 0 ? sql`TRUE` : sql.join(parts, sql` AND `)
}

/**
 * Events not yet folded into any rollup (the tail): txid at or above the watermark. Every read of
 * a rollup adds these events from raw in the same statement (one snapshot, in which the fold's
 * rollup rows and its watermark move together), so answers are exact and include every commit.
 */
// The upper bound changes no answer (every row a statement sees was written by a transaction
// below its snapshot's xmax) but makes the condition a range of two unknown values: the planner
// then estimates a few rows and reads the txid index, where `txid >= (subquery)` alone is guessed
// at a third of the table and a wide range was read through the created_at index instead.
export const UNFOLDED_EVENTS = sql.raw(
  'txid >= (SELECT rolled_below FROM rollup_watermark) AND txid < pg_snapshot_xmax(pg_current_snapshot())',
)

/** Key columns a rollup may have after its time column, in primary-key (and lock) order. */
export const ROLLUP_KEY_COLUMNS = ['bot_id', 'provider', 'model', 'request_type', 'success'] as const
export type RollupKey = (typeof ROLLUP_KEY_COLUMNS)[number]

/** UTC grains of the rollups, coarsest first; a rollup's time column is named like its grain. */
export const ROLLUP_GRAINS = ['day', 'hour', 'quarter_hour'] as const
export type RollupGrain = (typeof ROLLUP_GRAINS)[number]

export const GRAIN_MS: Record<RollupGrain, number> = { day: 86_400_000, hour: 3_600_000, quarter_hour: 900_000 }

/** SQL truncating the timestamptz expression `time` to the start of its UTC `grain`. */
export function grainStart(grain: RollupGrain, time: string): string {
  return grain === 'quarter_hour' ? `date_bin('15 minutes', ${time}, TIMESTAMPTZ '2000-01-01 00:00:00+00')` : `date_trunc('${grain}', ${time}, 'UTC')`
}

export interface RollupTable {
  name: string
  grain: RollupGrain
  /** Key columns after the time column (named like the grain), in primary-key order. */
  keys: readonly RollupKey[]
  /**
   * Also indexed by (bot_id, time): reads by one bot (every bound key's read) would otherwise walk
   * all bots' rows of the range.
   */
  botIndex?: boolean
}

const MODEL_KEYS: readonly RollupKey[] = ['provider', 'model', 'request_type', 'success']
const BOT_KEYS: readonly RollupKey[] = ['bot_id', 'success']
const TOTAL_KEYS: readonly RollupKey[] = ['success']

/**
 * Every rollup, in the order writers lock them: insertEvents upserts them in this order (each
 * after the previous one finished) and repriceEvents locks them in this order too.
 *
 * Per grain there is the full key and narrower tables (all bots per model; all models per bot):
 * readers take the narrowest one that has the keys a question needs (ROLLUPS_NARROWEST_FIRST).
 * The quarter-hour grain exists only per model: it serves the boundary hour of zones whose
 * offset is not whole hours (Asia/Kolkata, Asia/Kathmandu), which otherwise reads raw events.
 * The totals tables (keyed by time and success only, at every grain) answer the unfiltered,
 * ungrouped questions (a dashboard's series and totals) from two rows per day, hour or quarter.
 */
export const ROLLUP_TABLES: readonly RollupTable[] = [
  { name: 'usage_hourly', grain: 'hour', keys: ROLLUP_KEY_COLUMNS, botIndex: true },
  { name: 'usage_daily', grain: 'day', keys: ROLLUP_KEY_COLUMNS, botIndex: true },
  { name: 'usage_daily_models', grain: 'day', keys: MODEL_KEYS },
  { name: 'usage_daily_bots', grain: 'day', keys: BOT_KEYS },
  { name: 'usage_hourly_models', grain: 'hour', keys: MODEL_KEYS },
  { name: 'usage_hourly_bots', grain: 'hour', keys: BOT_KEYS },
  { name: 'usage_quarter_hourly_models', grain: 'quarter_hour', keys: MODEL_KEYS },
  { name: 'usage_daily_totals', grain: 'day', keys: TOTAL_KEYS },
  { name: 'usage_hourly_totals', grain: 'hour', keys: TOTAL_KEYS },
  { name: 'usage_quarter_hourly_totals', grain: 'quarter_hour', keys: TOTAL_KEYS },
]

const byName = (name: string): RollupTable => {
  const table = ROLLUP_TABLES.find((r) => r.name === name)
  if (!table) throw new Error(`unknown rollup ${name}`)
  return table
}

/**
 * Rollups of each grain in the order readers prefer them: fewest rows per unit first (models are
 * usually fewer than bots), the full key last. A reader takes the first one that has every key
 * it needs; a grain with no such table is read from the next finer grain (or raw events).
 */
export const ROLLUPS_NARROWEST_FIRST: Record<RollupGrain, readonly RollupTable[]> = {
  day: ['usage_daily_totals', 'usage_daily_models', 'usage_daily_bots', 'usage_daily'].map(byName),
  hour: ['usage_hourly_totals', 'usage_hourly_models', 'usage_hourly_bots', 'usage_hourly'].map(byName),
  quarter_hour: ['usage_quarter_hourly_totals', 'usage_quarter_hourly_models'].map(byName),
}

/** Top error messages group by this many leading characters of the message (stored messages may have 4000). */
export const ERROR_MESSAGE_KEY_LENGTH = 300

/** The SQL of the message key of an events row (NULL when it has no message). */
export const errorMessageKey = (column = 'error_message'): string => `left(${column}, ${ERROR_MESSAGE_KEY_LENGTH})`

export interface ErrorRollupTable {
  name: string
  /** UTC grain of its time column (named like the grain). */
  grain: 'day' | 'hour'
  /** Unique constraint over `columns`, the upsert's conflict target (messages may be NULL). */
  constraint: string
  /** Every key column in constraint (and lock) order, the day and the message included. */
  columns: readonly string[]
  /** Which filter dimensions the table has. */
  keys: readonly RollupKey[]
}

/**
 * Failures per UTC day (or hour) and message, upserted after ROLLUP_TABLES in the ingest
 * statement, in this order; readers take, per grain, the first one with every key they filter on
 * (the narrowest first). The hourly one serves ranges that are not whole UTC days (the last 24
 * hours, the partial edge days of any range), which would otherwise read raw failures.
 */
export const ERROR_ROLLUPS: readonly ErrorRollupTable[] = [
  {
    name: 'usage_daily_errors_models',
    grain: 'day',
    constraint: 'usage_daily_errors_models_key',
    columns: ['day', 'provider', 'model', 'request_type', 'message'],
    keys: ['provider', 'model', 'request_type'],
  },
  {
    name: 'usage_daily_errors',
    grain: 'day',
    constraint: 'usage_daily_errors_key',
    columns: ['bot_id', 'day', 'provider', 'model', 'request_type', 'message'],
    keys: ['bot_id', 'provider', 'model', 'request_type'],
  },
  {
    name: 'usage_hourly_errors_models',
    grain: 'hour',
    constraint: 'usage_hourly_errors_models_key',
    columns: ['hour', 'provider', 'model', 'request_type', 'message'],
    keys: ['provider', 'model', 'request_type'],
  },
]


/**
 * Rollups of declared metadata keys (METADATA_ROLLUP_KEYS). The registry (METADATA_KEYS_TABLE)
 * says which keys are folded and since when: every event of an active key with
 * created_at >= since is in the rollups; earlier ones are read from raw events.
 *
 * Cardinality is bounded per key: the first `max_values` distinct values folded get their own
 * rows (METADATA_VALUES_TABLE, listed), every later value is listed as not listed and its events
 * fold into the key's one "other" row of each bucket. The choice is made once per (key, value),
 * not per bucket, so a listed value's row is exact over any range and "other" holds exactly the
 * events of the values that are not listed. Events without the key fold into the absent row.
 */
export const METADATA_KEYS_TABLE = 'metadata_rollup_keys'
export const METADATA_VALUES_TABLE = 'metadata_rollup_values'

/** What a metadata rollup row stands for: one value, the other values, or events without the key. */
export const METADATA_ROW_KIND = { value: 'v', other: 'o', absent: 'a' } as const

export interface MetadataRollupTable {
  name: string
  grain: Extract<RollupGrain, 'day' | 'hour'>
  /** Key columns between the time column and (kind, value): what a question may filter or group by besides the key. */
  keys: readonly MetadataRollupKey[]
}

export type MetadataRollupKey = 'bot_id' | 'success'

/**
 * The metadata rollups, coarsest first, in the order writers lock them (after ROLLUP_TABLES and
 * ERROR_ROLLUPS). The per-bot ones answer questions about some bots or by bot; the day one
 * without the bot the rest: a value seen by many bots (a chat, a tenant) has one row per day and
 * outcome there instead of one per bot. Every one keeps success: failures are its calls where
 * success is false.
 */
export const METADATA_ROLLUPS: readonly MetadataRollupTable[] = [
  { name: 'usage_daily_metadata', grain: 'day', keys: ['bot_id', 'success'] },
  { name: 'usage_hourly_metadata', grain: 'hour', keys: ['bot_id', 'success'] },
  { name: 'usage_daily_metadata_values', grain: 'day', keys: ['success'] },
]

/** Primary key (and lock) order of a metadata rollup, after its time column's position (second). */
export const metadataRollupKey = (t: MetadataRollupTable): string[] => ['key', t.grain, ...t.keys, 'kind', 'value']

/**
 * The select list of a metadata rollup's key before (kind, value), in metadataRollupKey's order,
 * from events aliased `events` joined to METADATA_KEYS_TABLE as k (folds, repricing deltas, checks).
 */
export const metadataRollupKeyFrom = (t: MetadataRollupTable, events: string): string =>
  [`k.key`, `${grainStart(t.grain, `${events}.created_at`)} AS ${t.grain}`, ...t.keys.map((c) => `${events}.${c}`)].join(', ')

/**
 * The group a metadata value of an events row stands for in an answer that reads the rollups:
 * 'v:' || value for a listed value (or one never folded), 'o' for the other values, NULL when the
 * event has no such key. Rollup rows yield the same (metadataRowGroup), so raw edges and rollup
 * rows of one answer group together.
 */
export function metadataEventGroup(key: string): SQL {
  const value = sql`(metadata ->> ${key})`
  return sql`CASE WHEN ${value} IS NULL THEN NULL
    WHEN EXISTS (SELECT 1 FROM ${sql.raw(METADATA_VALUES_TABLE)} mv WHERE mv.key = ${key} AND mv.value = ${value} AND NOT mv.listed) THEN 'o'
    ELSE 'v:' || ${value} END`
}

/** The group of a metadata rollup row (see metadataEventGroup). */
export const metadataRowGroup = (): SQL => sql.raw(`CASE kind WHEN 'v' THEN 'v:' || value WHEN 'o' THEN 'o' END`)
