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

/** Key columns a rollup may have after its time column, in primary-key (and lock) order. */
export const ROLLUP_KEY_COLUMNS = ['bot_id', 'provider', 'model', 'request_type', 'success'] as const
export type RollupKey = (typeof ROLLUP_KEY_COLUMNS)[number]

export type RollupGrain = 'hour' | 'day'

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

/**
 * Every rollup, in the order writers lock them: insertEvents upserts them in this order (each
 * after the previous one finished) and repriceEvents locks them in this order too.
 */
export const ROLLUP_TABLES: readonly RollupTable[] = [
  { name: 'usage_hourly', grain: 'hour', keys: ROLLUP_KEY_COLUMNS, botIndex: true },
  { name: 'usage_daily', grain: 'day', keys: ROLLUP_KEY_COLUMNS, botIndex: true },
  { name: 'usage_daily_models', grain: 'day', keys: ['provider', 'model', 'request_type', 'success'] },
  { name: 'usage_daily_bots', grain: 'day', keys: ['bot_id', 'success'] },
]

export const HOURLY_ROLLUP = ROLLUP_TABLES[0]

/**
 * Daily rollups in the order readers prefer them: fewest rows per day first (models are usually
 * fewer than bots), the full key last. A reader takes the first one that has every key it needs.
 */
export const DAILY_ROLLUPS_NARROWEST_FIRST: readonly RollupTable[] = ['usage_daily_models', 'usage_daily_bots', 'usage_daily'].map((name) => {
  const table = ROLLUP_TABLES.find((r) => r.name === name)
  if (!table) throw new Error(`unknown rollup ${name}`)
  return table
})
