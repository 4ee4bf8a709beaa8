import { sql } from 'drizzle-orm'
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core'

/**
 * All tables. Every unique key and rollup key includes bot_id so the schema can later be
 * distributed on bot_id (Citus) without redesign (DESIGN.md, "Scaling past one machine").
 *
 * Money is numeric(24,12): exact to a pico-dollar, summed in SQL, never a float.
 */

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })
const usd = (name: string) => numeric(name, { precision: 24, scale: 12 })
const usdSum = (name: string) => numeric(name, { precision: 30, scale: 12 })
const count = (name: string) => bigint(name, { mode: 'number' }).notNull().default(0)

/** One row per model call. */
export const usageEvents = pgTable(
  'usage_events',
  {
    /** Client idempotency key when sent, else a server UUIDv7 (time-ordered, so inserts append). */
    id: text('id').notNull(),
    botId: text('bot_id').notNull(),
    /** Time of the call as the client reports it (default: receive time). */
    createdAt: ts('created_at').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    requestType: text('request_type').notNull(),
    success: boolean('success').notNull(),
    errorMessage: text('error_message'),
    inputTokens: integer('input_tokens').notNull(),
    outputTokens: integer('output_tokens').notNull(),
    totalTokens: integer('total_tokens').notNull(),
    cacheReadTokens: integer('cache_read_tokens').notNull().default(0),
    cacheWriteTokens: integer('cache_write_tokens').notNull().default(0),
    cacheWrite1hTokens: integer('cache_write_1h_tokens').notNull().default(0),
    reasoningTokens: integer('reasoning_tokens').notNull().default(0),
    latencyMs: integer('latency_ms'),
    /** Authoritative cost: catalog price when priced, else the client's reported cost, else null. */
    cost: usd('cost'),
    /** estimatedCost as the client sent it, kept for audit. */
    reportedCost: usd('reported_cost'),
    /** True when the service's price catalog priced this event. */
    priced: boolean('priced').notNull().default(false),
    /** Which price was used: 'genai-prices@x:provider/model', 'override:<id>', 'reported' or null. */
    priceSource: text('price_source'),
    metadata: jsonb('metadata').$type<Record<string, unknown>>(),
  },
  (t) => [
    primaryKey({ name: 'usage_events_pkey', columns: [t.botId, t.id] }),
    index('usage_events_created_at_idx').on(t.createdAt),
    index('usage_events_bot_created_at_idx').on(t.botId, t.createdAt),
  ],
)

/**
 * Hourly rollup, maintained in the same statement as the raw insert. Aggregates read it for
 * whole hours and raw rows only for partial edge hours, so answers stay exact.
 */
export const usageHourly = pgTable(
  'usage_hourly',
  {
    hour: ts('hour').notNull(),
    botId: text('bot_id').notNull(),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    requestType: text('request_type').notNull(),
    success: boolean('success').notNull(),
    calls: count('calls'),
    inputTokens: count('input_tokens'),
    outputTokens: count('output_tokens'),
    totalTokens: count('total_tokens'),
    cacheReadTokens: count('cache_read_tokens'),
    cacheWriteTokens: count('cache_write_tokens'),
    reasoningTokens: count('reasoning_tokens'),
    cost: usdSum('cost').notNull().default('0'),
    unpricedCalls: count('unpriced_calls'),
    unpricedInputTokens: count('unpriced_input_tokens'),
    unpricedOutputTokens: count('unpriced_output_tokens'),
    latencySumMs: count('latency_sum_ms'),
    latencyCount: count('latency_count'),
  },
  (t) => [
    primaryKey({
      name: 'usage_hourly_pkey',
      columns: [t.hour, t.botId, t.provider, t.model, t.requestType, t.success],
    }),
  ],
)

export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    /** First characters of the key, shown in listings so a human can tell keys apart. */
    prefix: text('prefix').notNull(),
    /** SHA-256 of the full key; the key itself is never stored. */
    hash: text('hash').notNull(),
    scopes: text('scopes').array().notNull(),
    botId: text('bot_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    revokedAt: ts('revoked_at'),
    lastUsedAt: ts('last_used_at'),
  },
  (t) => [uniqueIndex('api_keys_hash_idx').on(t.hash)],
)

export const priceOverrides = pgTable(
  'price_overrides',
  {
    id: text('id').primaryKey(),
    provider: text('provider').notNull(),
    modelPattern: text('model_pattern').notNull(),
    effectiveFrom: ts('effective_from').notNull(),
    effectiveTo: ts('effective_to'),
    /** USD per million tokens. */
    input: usd('input').notNull(),
    output: usd('output').notNull(),
    cacheRead: usd('cache_read'),
    cacheWrite: usd('cache_write'),
    cacheWrite1h: usd('cache_write_1h'),
    reasoning: usd('reasoning'),
    tiers: jsonb('tiers')
      .$type<Array<Record<string, string | number | null>>>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    note: text('note'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [index('price_overrides_provider_idx').on(t.provider)],
)
