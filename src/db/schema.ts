import { sql } from 'drizzle-orm'
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  type PgColumn,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
} from 'drizzle-orm/pg-core'
import { METADATA_ROLLUPS, metadataRollupKey, ROLLUP_TABLES, type MetadataRollupTable, type RollupKey, type RollupTable } from './event-store.js'
import { STORED_MEASURES } from './measures.js'

/**
 * All tables. Every unique key and rollup key includes bot_id so the schema can later be
 * distributed on bot_id (Citus) without redesign (docs/SCALING.md, "Past one Postgres").
 *
 * Money is numeric(24,12): exact to a pico-dollar, summed in SQL, never a float.
 */

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })
const usd = (name: string) => numeric(name, { precision: 24, scale: 12 })
const usdSum = (name: string) => numeric(name, { precision: 30, scale: 12 })
const count = (name: string) => bigint(name, { mode: 'number' }).notNull().default(0)
/** A 64-bit transaction id (Postgres xid8), as text: compared only in SQL. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => 'xid8' })

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
    /** inputTokens + outputTokens: each fits 32 bits (MAX_TOKENS), their sum may not. */
    totalTokens: bigint('total_tokens', { mode: 'number' }).notNull(),
    cacheReadTokens: integer('cache_read_tokens').notNull().default(0),
    cacheWriteTokens: integer('cache_write_tokens').notNull().default(0),
    cacheWrite1hTokens: integer('cache_write_1h_tokens').notNull().default(0),
    reasoningTokens: integer('reasoning_tokens').notNull().default(0),
    /** Part of inputTokens that was audio. */
    inputAudioTokens: integer('input_audio_tokens').notNull().default(0),
    /** Part of outputTokens that was audio. */
    outputAudioTokens: integer('output_audio_tokens').notNull().default(0),
    webSearchRequests: integer('web_search_requests').notNull().default(0),
    /** 'standard' | 'flex' | 'priority' | 'batch': the tier the provider billed. */
    serviceTier: text('service_tier').notNull().default('standard'),
    /** The region the provider reported (Anthropic inference_geo), or null. */
    inferenceGeo: text('inference_geo'),
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
    /**
     * The inserting transaction: the insertion order the rollup fold follows (rollup_watermark).
     * Every row of one transaction shares it; rows below the watermark are in every rollup.
     */
    txid: xid8('txid').notNull().default(sql`pg_current_xact_id()`),
  },
  (t) => [
    primaryKey({ name: 'usage_events_pkey', columns: [t.botId, t.id] }),
    // The unfolded tail (txid >= rolled_below) is read by the fold and by every rollup read.
    index('usage_events_txid_idx').on(t.txid),
    index('usage_events_created_at_idx').on(t.createdAt),
    index('usage_events_bot_created_at_idx').on(t.botId, t.createdAt),
    // Failures are a few percent of events: this index costs little on ingest and lets the errors
    // endpoint read only them (newest first, bot checked in the index).
    index('usage_events_failures_idx').on(t.createdAt, t.botId).where(sql`NOT ${t.success}`),
  ],
)

const nullableCount = (name: string) => bigint(name, { mode: 'number' })

/**
 * What every rollup row sums up for its key, one column per stored measure of the measure table
 * (db/measures.ts); the same columns in every rollup table.
 */
function rollupMeasures() {
  const columns: Record<string, ReturnType<typeof count> | ReturnType<typeof nullableCount> | ReturnType<typeof usdSum> | ReturnType<typeof integer>> = {}
  for (const m of STORED_MEASURES) {
    if (m.kind === 'usd') columns[m.name] = usdSum(m.column).notNull().default('0')
    else if (m.kind === 'max') columns[m.name] = integer(m.column)
    else columns[m.name] = m.nullWhenZero ? nullableCount(m.column) : count(m.column)
  }
  return columns
}

const KEY_COLUMNS: Record<RollupKey, () => ReturnType<typeof text> | ReturnType<typeof boolean>> = {
  bot_id: () => text('bot_id').notNull(),
  provider: () => text('provider').notNull(),
  model: () => text('model').notNull(),
  request_type: () => text('request_type').notNull(),
  success: () => boolean('success').notNull(),
}

/**
 * A rollup table of the event store's layout (db/event-store.ts, ROLLUP_TABLES): its time column
 * (UTC hour or day), its key columns, and the stored measures; primary key (time, keys...).
 */
function rollupTable(layout: RollupTable) {
  const keys = Object.fromEntries(layout.keys.map((k) => [k, KEY_COLUMNS[k]()]))
  return pgTable(layout.name, { [layout.grain]: ts(layout.grain).notNull(), ...keys, ...rollupMeasures() }, (t) => [
    primaryKey({ name: `${layout.name}_pkey`, columns: [t[layout.grain], ...layout.keys.map((k) => t[k])] }),
    ...(layout.botIndex ? [index(`${layout.name}_bot_${layout.grain}_idx`).on(t.bot_id, t[layout.grain])] : []),
  ])
}

const rollupLayout = (name: string) => {
  const layout = ROLLUP_TABLES.find((r) => r.name === name)
  if (!layout) throw new Error(`unknown rollup ${name}`)
  return layout
}

/**
 * Hourly rollup (UTC hours), maintained in the same statement as the raw insert. Aggregates read
 * it for whole hours and raw rows only for partial edge hours, so answers stay exact.
 */
export const usageHourly = rollupTable(rollupLayout('usage_hourly'))

/**
 * Daily rollup (UTC days) of the same measures: a 90-day range reads ~24x fewer rows than from
 * the hourly table. Maintained in the same statement as usage_hourly.
 */
export const usageDaily = rollupTable(rollupLayout('usage_daily'))

/**
 * Daily rollup over all bots, per model: what dashboards ask most (stats, timeseries, cost by
 * model across bots) reads ~20 rows per day here instead of ~1000 in usage_daily. It has no
 * bot_id, unlike every other key: it is a derived cache that a deployment distributed on bot_id
 * would keep local or leave out (readers pick it only when present; docs/analytics.md).
 */
export const usageDailyModels = rollupTable(rollupLayout('usage_daily_models'))

/** Daily rollup per bot, all models together: totals and cost by bot read ~2 rows per bot and day. */
export const usageDailyBots = rollupTable(rollupLayout('usage_daily_bots'))

/**
 * Hourly rollups over all bots per model, and per bot over all models: the edge hours of a local
 * day (daily rollup plus or minus the hours where the zone's day and the UTC day differ) read
 * ~20 or ~100 rows per hour here instead of ~1000 in usage_hourly.
 */
export const usageHourlyModels = rollupTable(rollupLayout('usage_hourly_models'))

export const usageHourlyBots = rollupTable(rollupLayout('usage_hourly_bots'))

/**
 * Quarter-hour rollup over all bots per model (UTC quarters, :00 :15 :30 :45): the hour split by
 * the day boundary of a zone with a :30 or :45 offset (Asia/Kolkata, Asia/Kathmandu) is read
 * from here instead of from raw events.
 */
export const usageQuarterHourlyModels = rollupTable(rollupLayout('usage_quarter_hourly_models'))

/**
 * Totals over everything (keyed by time and success only) per UTC day, hour and quarter-hour:
 * an unfiltered, ungrouped series in any zone reads two rows per day plus its edge hours and
 * quarters, instead of a row per model. Sums of the finer rollups of the same grain.
 */
export const usageDailyTotals = rollupTable(rollupLayout('usage_daily_totals'))

export const usageHourlyTotals = rollupTable(rollupLayout('usage_hourly_totals'))

export const usageQuarterHourlyTotals = rollupTable(rollupLayout('usage_quarter_hourly_totals'))

/**
 * How far the rollups are folded (src/usage/rollup-worker.ts): every event with txid < rolled_below
 * is in every rollup, every event with txid >= rolled_below (the tail) in none. Readers add the
 * tail to the rollup rows in the same statement, so answers stay exact. One row.
 */
export const rollupWatermark = pgTable(
  'rollup_watermark',
  {
    id: boolean('id').primaryKey().default(true),
    rolledBelow: xid8('rolled_below').notNull(),
  },
  (t) => [check('rollup_watermark_one_row', sql`${t.id}`)],
)

/**
 * The declared metadata keys (METADATA_ROLLUP_KEYS, synced at start): events of an active key
 * with created_at >= since are folded into the metadata rollups; a key no longer declared is
 * inactive (reads go raw), and declared again it starts over with a new since.
 */
export const metadataRollupKeys = pgTable('metadata_rollup_keys', {
  key: text('key').primaryKey(),
  since: ts('since').notNull(),
  maxValues: integer('max_values').notNull(),
  active: boolean('active').notNull(),
})

/**
 * Every value folded for a key, and whether it has rows of its own (the first max_values
 * values) or counts in the key's "other" row. A reference table: small, and not per bot, so a
 * value is listed for every bot or for none.
 */
export const metadataRollupValues = pgTable(
  'metadata_rollup_values',
  {
    key: text('key').notNull(),
    value: text('value').notNull(),
    listed: boolean('listed').notNull(),
  },
  (t) => [primaryKey({ name: 'metadata_rollup_values_pkey', columns: [t.key, t.value] })],
)

/**
 * A metadata rollup (db/event-store.ts, METADATA_ROLLUPS): per key, UTC day or hour, its keys
 * (bot and success, or success alone) and value (kind 'v' with the value, 'o' for the other values, 'a' for events without
 * the key, value '' for the last two), the stored measures.
 */
function metadataRollupTable(layout: MetadataRollupTable) {
  return pgTable(
    layout.name,
    {
      key: text('key').notNull(),
      [layout.grain]: ts(layout.grain).notNull(),
      ...(layout.keys.includes('bot_id') ? { bot_id: text('bot_id').notNull() } : {}),
      ...(layout.keys.includes('success') ? { success: boolean('success').notNull() } : {}),
      kind: text('kind').notNull(),
      value: text('value').notNull(),
      ...rollupMeasures(),
    },
    (t) => {
      // The key columns depend on the layout, so they are looked up by name.
      const byName = t as unknown as Record<string, PgColumn>
      const [first, ...rest] = metadataRollupKey(layout).map((c) => byName[c])
      return [primaryKey({ name: `${layout.name}_pkey`, columns: [first, ...rest] })]
    },
  )
}

export const usageDailyMetadata = metadataRollupTable(METADATA_ROLLUPS[0])
export const usageHourlyMetadata = metadataRollupTable(METADATA_ROLLUPS[1])
export const usageDailyMetadataValues = metadataRollupTable(METADATA_ROLLUPS[2])

/**
 * Failures per UTC day and error message (its first ERROR_MESSAGE_KEY_LENGTH characters; NULL
 * when the event had none): the errors endpoint's top messages read whole days here and raw
 * failures only for partial days. Per bot (bot_id first: a bound key reads its own rows) and over
 * all bots per model.
 */
export const usageDailyErrors = pgTable(
  'usage_daily_errors',
  {
    botId: text('bot_id').notNull(),
    day: ts('day').notNull(),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    requestType: text('request_type').notNull(),
    message: text('message'),
    failures: count('failures'),
    lastSeen: ts('last_seen').notNull(),
  },
  (t) => [unique('usage_daily_errors_key').on(t.botId, t.day, t.provider, t.model, t.requestType, t.message).nullsNotDistinct()],
)

export const usageDailyErrorsModels = pgTable(
  'usage_daily_errors_models',
  {
    day: ts('day').notNull(),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    requestType: text('request_type').notNull(),
    message: text('message'),
    failures: count('failures'),
    lastSeen: ts('last_seen').notNull(),
  },
  (t) => [unique('usage_daily_errors_models_key').on(t.day, t.provider, t.model, t.requestType, t.message).nullsNotDistinct()],
)

/**
 * Failures per UTC hour and error message over all bots per model: top errors over ranges that
 * are not whole UTC days (the last 24 hours, partial edge days) read hours here, and raw failures
 * only for the partial edge hours.
 */
export const usageHourlyErrorsModels = pgTable(
  'usage_hourly_errors_models',
  {
    hour: ts('hour').notNull(),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    requestType: text('request_type').notNull(),
    message: text('message'),
    failures: count('failures'),
    lastSeen: ts('last_seen').notNull(),
  },
  (t) => [unique('usage_hourly_errors_models_key').on(t.hour, t.provider, t.model, t.requestType, t.message).nullsNotDistinct()],
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

/** Channel settings of a budget, secrets included; the API never returns the secrets. */
export interface StoredBudgetChannels {
  webhook?: { url: string; secret: string }
  email?: { to: string[] }
  telegram?: { chatId: string; botToken: string | null }
  /** A Slack incoming-webhook URL: the URL itself is the secret. */
  slack?: { url: string }
}

/**
 * Spending limits. Budgets are few and read by every instance, so they are not keyed by bot_id
 * (a Citus reference table, not a distributed one).
 */
export const budgets = pgTable('budgets', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** Scope: each null column matches everything. */
  botId: text('bot_id'),
  provider: text('provider'),
  model: text('model'),
  /** 'day' | 'week' | 'month': calendar periods in time_zone (weeks start on Monday). */
  period: text('period').notNull(),
  timeZone: text('time_zone').notNull(),
  limitUsd: usd('limit_usd').notNull(),
  /** Percent of the limit, ascending. */
  thresholds: integer('thresholds').array().notNull(),
  notifyProjected: boolean('notify_projected').notNull().default(true),
  channels: jsonb('channels').$type<StoredBudgetChannels>().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
  /** 'alert': only alerts; 'block': GET /api/budgets/allowance answers allowed: false once spent. */
  action: text('action').$type<'alert' | 'block'>().notNull().default('alert'),
  /** Set: the limit applies to each distinct value of metadata[per_user_key] separately. */
  perUserKey: text('per_user_key'),
})

/**
 * One row per alert that fired. The unique key is what makes each threshold fire once per
 * period (and per limit: raising a limit re-arms its thresholds) across instances and restarts:
 * evaluators INSERT ... ON CONFLICT DO NOTHING and only the inserter creates deliveries.
 */
export const budgetAlerts = pgTable(
  'budget_alerts',
  {
    id: text('id').primaryKey(),
    /** No foreign key: drizzle-kit would pin it to the "public" schema (DATABASE_SCHEMA). Deleting a budget deletes its alerts. */
    budgetId: text('budget_id').notNull(),
    periodStart: ts('period_start').notNull(),
    periodEnd: ts('period_end').notNull(),
    /** Projected rows carry threshold 100. */
    kind: text('kind').$type<'threshold' | 'projected'>().notNull(),
    threshold: integer('threshold').notNull(),
    limitUsd: usd('limit_usd').notNull(),
    spentUsd: usd('spent_usd').notNull(),
    projectedUsd: usd('projected_usd'),
    /** Set when a higher threshold fired in the same evaluation and was the one delivered. */
    supersededBy: text('superseded_by'),
    createdAt: ts('created_at').notNull().defaultNow(),
    /** Per-user budgets: the user (metadata value) it fired for; '' for every other budget (NULLs would not conflict). */
    userId: text('user_id').notNull().default(''),
  },
  (t) => [
    uniqueIndex('budget_alerts_once_idx').on(t.budgetId, t.periodStart, t.kind, t.threshold, t.limitUsd, t.userId),
    index('budget_alerts_created_at_idx').on(t.createdAt),
  ],
)

/** One row per alert and channel: the delivery's state, claimed by whichever instance is free. */
export const budgetDeliveries = pgTable(
  'budget_deliveries',
  {
    id: text('id').primaryKey(),
    alertId: text('alert_id').notNull(),
    /** 'webhook' | 'email' | 'telegram' | 'slack' */
    channel: text('channel').notNull(),
    /**
     * What alert_id names: a budget_alerts row ('budget'), a spend_alerts row ('spend') or a
     * report_sends row ('report'). One outbox, claimed and retried the same way for all three.
     */
    source: text('source').$type<'budget' | 'spend' | 'report'>().notNull().default('budget'),
    status: text('status').$type<'pending' | 'delivered' | 'failed' | 'cancelled'>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** When a pending delivery is next due; while an attempt runs, the end of its lease. */
    nextAttemptAt: ts('next_attempt_at'),
    lastAttemptAt: ts('last_attempt_at'),
    lastError: text('last_error'),
    deliveredAt: ts('delivered_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('budget_deliveries_alert_channel_idx').on(t.alertId, t.channel),
    index('budget_deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
  ],
)

/**
 * Unusual-spend rules (docs/budgets.md, "Unusual spend"): alert when an hour's spend of a bot (or
 * of a bot's model) exceeds `multiple` times the median of the same UTC hour on the previous
 * `baseline_days` days, and at least min_spend_usd. Few and read by every instance (reference table).
 */
export const spendAlertRules = pgTable('spend_alert_rules', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** Scope: null matches every bot (each bot is watched on its own) / every model. */
  botId: text('bot_id'),
  model: text('model'),
  /** 'bot': one series per bot; 'model': one per bot and model. */
  per: text('per').$type<'bot' | 'model'>().notNull(),
  multiple: numeric('multiple', { precision: 10, scale: 2 }).notNull(),
  minSpendUsd: usd('min_spend_usd').notNull(),
  baselineDays: integer('baseline_days').notNull(),
  channels: jsonb('channels').$type<StoredBudgetChannels>().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
})

/**
 * One row per spike that alerted. The unique key makes a spike alert once across instances and
 * restarts: evaluators INSERT ... ON CONFLICT DO NOTHING and only the inserter creates deliveries.
 */
export const spendAlerts = pgTable(
  'spend_alerts',
  {
    id: text('id').primaryKey(),
    ruleId: text('rule_id').notNull(),
    botId: text('bot_id').notNull(),
    /** '' for a per-bot series. */
    model: text('model').notNull(),
    /** First instant of the UTC hour that spiked. */
    hour: ts('hour').notNull(),
    spentUsd: usd('spent_usd').notNull(),
    baselineUsd: usd('baseline_usd').notNull(),
    thresholdUsd: usd('threshold_usd').notNull(),
    /** The hour was still in progress when it alerted (spent is what it had spent so far). */
    partial: boolean('partial').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('spend_alerts_once_idx').on(t.ruleId, t.botId, t.model, t.hour),
    index('spend_alerts_created_at_idx').on(t.createdAt),
  ],
)

/** Weekly or monthly usage reports sent on a schedule (docs/budgets.md, "Scheduled reports"). */
export const reportSchedules = pgTable('report_schedules', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** 'week' (ISO, from Monday) | 'month', calendar periods in time_zone. */
  period: text('period').$type<'week' | 'month'>().notNull(),
  timeZone: text('time_zone').notNull(),
  /** Scope: null reports every bot. */
  botId: text('bot_id'),
  /** Local hour (0-23) of the period's first day after which the previous period is sent. */
  sendHour: integer('send_hour').notNull(),
  channels: jsonb('channels').$type<StoredBudgetChannels>().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
})

/**
 * One row per report sent, with the numbers as sent. Scheduled sends are unique per schedule and
 * period (the claim: INSERT ... ON CONFLICT DO NOTHING), so a period is sent once across
 * instances and restarts; sends asked for through the API ("send now") are not limited.
 */
export const reportSends = pgTable(
  'report_sends',
  {
    id: text('id').primaryKey(),
    scheduleId: text('schedule_id').notNull(),
    periodStart: ts('period_start').notNull(),
    periodEnd: ts('period_end').notNull(),
    manual: boolean('manual').notNull(),
    report: jsonb('report').$type<Record<string, unknown>>().notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('report_sends_once_idx').on(t.scheduleId, t.periodStart).where(sql`NOT manual`),
    index('report_sends_schedule_idx').on(t.scheduleId, t.createdAt),
  ],
)
