import { asc, desc, eq, inArray, sql } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { spendAlertRules, spendAlerts, type StoredBudgetChannels } from '../db/schema.js'
import { formatUsd, parseDecimal, parseUsd } from '../lib/money.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { CHANNELS } from './budget-store.js'
import { queueDeliveries } from './delivery-store.js'

/** Storage of unusual-spend rules and of the spikes they alerted (see anomaly.ts for the method). */

export interface SpendAlertRule {
  id: string
  name: string
  scope: { botId: string | null; model: string | null }
  per: 'bot' | 'model'
  /** The multiple in hundredths: 300n is 3x. */
  multipleHundredths: bigint
  /** pico-USD */
  minSpend: bigint
  baselineDays: number
  channels: StoredBudgetChannels
  enabled: boolean
  createdAt: Date
  updatedAt: Date
}

type RuleRow = typeof spendAlertRules.$inferSelect
type SpikeRow = typeof spendAlerts.$inferSelect

/** "3.5" -> 350n */
export function hundredthsOf(decimal: string): bigint {
  const { units, scale } = parseDecimal(decimal)
  return scale <= 2 ? units * 10n ** BigInt(2 - scale) : units / 10n ** BigInt(scale - 2)
}

export const formatHundredths = (h: bigint) => `${h / 100n}.${String(h % 100n).padStart(2, '0')}`

function toRule(r: RuleRow): SpendAlertRule {
  return {
    id: r.id,
    name: r.name,
    scope: { botId: r.botId, model: r.model },
    per: r.per,
    multipleHundredths: hundredthsOf(r.multiple),
    minSpend: parseUsd(r.minSpendUsd),
    baselineDays: r.baselineDays,
    channels: r.channels,
    enabled: r.enabled,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }
}

export async function listSpendAlertRules(database: Database): Promise<SpendAlertRule[]> {
  const rows = await database.db.select().from(spendAlertRules).orderBy(asc(spendAlertRules.createdAt), asc(spendAlertRules.id))
  return rows.map(toRule)
}

export async function findSpendAlertRule(database: Database, id: string): Promise<SpendAlertRule | null> {
  const [row] = await database.db.select().from(spendAlertRules).where(eq(spendAlertRules.id, id))
  return row ? toRule(row) : null
}

export async function insertSpendAlertRule(database: Database, r: SpendAlertRule): Promise<void> {
  try {
    await database.db.insert(spendAlertRules).values({
      id: r.id,
      name: r.name,
      botId: r.scope.botId,
      model: r.scope.model,
      per: r.per,
      multiple: formatHundredths(r.multipleHundredths),
      minSpendUsd: formatUsd(r.minSpend),
      baselineDays: r.baselineDays,
      channels: r.channels,
      enabled: r.enabled,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    })
  } catch (err) {
    // Drizzle's error quotes the parameters (channel secrets); the driver's own error does not.
    const cause = (err as { cause?: unknown }).cause
    throw cause instanceof Error ? cause : new Error('storing the spend alert failed')
  }
}

/** Stores a rule's changeable fields (name, method, enabled); false when it does not exist. */
export async function updateSpendAlertRule(database: Database, r: SpendAlertRule): Promise<boolean> {
  const rows = await database.db
    .update(spendAlertRules)
    .set({
      name: r.name,
      multiple: formatHundredths(r.multipleHundredths),
      minSpendUsd: formatUsd(r.minSpend),
      baselineDays: r.baselineDays,
      enabled: r.enabled,
      updatedAt: r.updatedAt,
    })
    .where(eq(spendAlertRules.id, r.id))
    .returning({ id: spendAlertRules.id })
  return rows.length > 0
}

/** Deletes a rule with its spikes and their deliveries. */
export async function deleteSpendAlertRule(database: Database, id: string): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`DELETE FROM budget_deliveries WHERE source = 'spend' AND alert_id IN (SELECT id FROM spend_alerts WHERE rule_id = ${id})`)
    await tx.execute(sql`DELETE FROM spend_alerts WHERE rule_id = ${id}`)
    const rows = await tx.delete(spendAlertRules).where(eq(spendAlertRules.id, id)).returning({ id: spendAlertRules.id })
    return rows.length > 0
  })
}

/** A spike an evaluation found: one series' hour over its threshold. */
export interface SpikeCandidate {
  rule: SpendAlertRule
  botId: string
  /** '' for a per-bot series. */
  model: string
  hour: Date
  spent: bigint
  baseline: bigint
  threshold: bigint
  partial: boolean
}

export const spikeKey = (c: { rule: { id: string }; botId: string; model: string; hour: Date }) =>
  `${c.rule.id}\u0000${c.botId}\u0000${c.model}\u0000${c.hour.toISOString()}`

/**
 * Stores the spikes not stored yet and, in the same transaction, their deliveries: exactly the
 * caller whose INSERT wins a key gets it back (and queues its messages), whatever other instances
 * do at the same time. Rows go in key order, so concurrent evaluators cannot deadlock.
 */
export async function recordSpikes(database: Database, candidates: SpikeCandidate[]): Promise<{ id: string; ruleId: string; deliveries: number }[]> {
  if (candidates.length === 0) return []
  const sorted = [...candidates].sort((a, b) => (spikeKey(a) < spikeKey(b) ? -1 : 1))
  const channelsOf = new Map(sorted.map((c) => [c.rule.id, CHANNELS.filter((ch) => c.rule.channels[ch] !== undefined)]))
  const payload = JSON.stringify(
    sorted.map((c, ord) => ({
      ord,
      id: uuidv7(),
      rule_id: c.rule.id,
      bot_id: c.botId,
      model: c.model,
      hour: c.hour.toISOString(),
      spent_usd: formatUsd(c.spent),
      baseline_usd: formatUsd(c.baseline),
      threshold_usd: formatUsd(c.threshold),
      partial: c.partial,
    })),
  )
  return database.db.transaction(async (tx) => {
    const inserted = rowsOf<{ id: string; ruleId: string }>(
      await tx.execute(sql`
        INSERT INTO spend_alerts (id, rule_id, bot_id, model, hour, spent_usd, baseline_usd, threshold_usd, partial)
        SELECT id, rule_id, bot_id, model, hour, spent_usd, baseline_usd, threshold_usd, partial
        FROM json_to_recordset(${payload}::json) AS c(ord int, id text, rule_id text, bot_id text, model text, hour timestamptz,
          spent_usd numeric, baseline_usd numeric, threshold_usd numeric, partial boolean)
        ORDER BY ord
        ON CONFLICT (rule_id, bot_id, model, hour) DO NOTHING
        RETURNING id, rule_id AS "ruleId"`),
    )
    await queueDeliveries(tx, 'spend', inserted.map((a) => ({ alertId: a.id, channels: channelsOf.get(a.ruleId) ?? [] })))
    return inserted.map((a) => ({ ...a, deliveries: channelsOf.get(a.ruleId)?.length ?? 0 }))
  })
}

export interface StoredSpike {
  id: string
  ruleId: string
  botId: string
  model: string
  hour: Date
  spent: bigint
  baseline: bigint
  threshold: bigint
  partial: boolean
  createdAt: Date
}

function toSpike(r: SpikeRow): StoredSpike {
  return {
    id: r.id,
    ruleId: r.ruleId,
    botId: r.botId,
    model: r.model,
    hour: r.hour,
    spent: parseUsd(r.spentUsd),
    baseline: parseUsd(r.baselineUsd),
    threshold: parseUsd(r.thresholdUsd),
    partial: r.partial,
    createdAt: r.createdAt,
  }
}

/** A rule's spikes, newest first. */
export async function listSpikes(database: Database, ruleId: string, limit: number): Promise<StoredSpike[]> {
  const rows = await database.db
    .select()
    .from(spendAlerts)
    .where(eq(spendAlerts.ruleId, ruleId))
    .orderBy(desc(spendAlerts.createdAt), desc(spendAlerts.id))
    .limit(limit)
  return rows.map(toSpike)
}

/** Spikes by id with their rule (null when it was deleted meanwhile): what a delivery sends. */
export async function spikesWithRules(database: Database, ids: string[]): Promise<{ spike: StoredSpike; rule: SpendAlertRule | null }[]> {
  if (ids.length === 0) return []
  const rows = await database.db
    .select({ spike: spendAlerts, rule: spendAlertRules })
    .from(spendAlerts)
    .leftJoin(spendAlertRules, eq(spendAlertRules.id, spendAlerts.ruleId))
    .where(inArray(spendAlerts.id, ids))
  return rows.map((r) => ({ spike: toSpike(r.spike), rule: r.rule === null ? null : toRule(r.rule) }))
}
