import { asc, eq, sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { budgets, type StoredBudgetChannels } from '../db/schema.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { BudgetPeriod } from './periods.js'

export const CHANNELS = ['webhook', 'email', 'telegram', 'slack'] as const
export type ChannelName = (typeof CHANNELS)[number]

export interface BudgetScope {
  botId: string | null
  provider: string | null
  model: string | null
}

export type BudgetAction = 'alert' | 'block'

export interface Budget {
  id: string
  name: string
  scope: BudgetScope
  period: BudgetPeriod
  timeZone: string
  /** pico-USD */
  limit: bigint
  /** Percent of the limit, ascending. */
  thresholds: number[]
  notifyProjected: boolean
  channels: StoredBudgetChannels
  enabled: boolean
  createdAt: Date
  updatedAt: Date
  /** 'block': the allowance answers allowed: false while spent >= limit. */
  action: BudgetAction
  /** The limit applies to each distinct value of metadata[key] separately; null: to the whole scope. */
  perUser: { key: string } | null
}

export type BudgetRow = typeof budgets.$inferSelect

export function toBudget(r: BudgetRow): Budget {
  return {
    id: r.id,
    name: r.name,
    scope: { botId: r.botId, provider: r.provider, model: r.model },
    period: r.period as BudgetPeriod,
    timeZone: r.timeZone,
    limit: parseUsd(r.limitUsd),
    thresholds: [...r.thresholds].sort((a, b) => a - b),
    notifyProjected: r.notifyProjected,
    channels: r.channels,
    enabled: r.enabled,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    action: r.action,
    perUser: r.perUserKey === null ? null : { key: r.perUserKey },
  }
}

function toRow(b: Budget): BudgetRow {
  return {
    id: b.id,
    name: b.name,
    botId: b.scope.botId,
    provider: b.scope.provider,
    model: b.scope.model,
    period: b.period,
    timeZone: b.timeZone,
    limitUsd: formatUsd(b.limit),
    thresholds: b.thresholds,
    notifyProjected: b.notifyProjected,
    channels: b.channels,
    enabled: b.enabled,
    createdAt: b.createdAt,
    updatedAt: b.updatedAt,
    action: b.action,
    perUserKey: b.perUser?.key ?? null,
  }
}

export async function listBudgets(database: Database): Promise<Budget[]> {
  const rows = await database.db.select().from(budgets).orderBy(asc(budgets.createdAt), asc(budgets.id))
  return rows.map(toBudget)
}

export async function findBudget(database: Database, id: string): Promise<Budget | null> {
  const [row] = await database.db.select().from(budgets).where(eq(budgets.id, id))
  return row ? toBudget(row) : null
}

/**
 * Drizzle's query errors carry the statement's parameters (here: channel secrets) in their
 * message and properties, which the error log would print; the driver's own error does not.
 */
async function withoutParameters<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    throw cause instanceof Error ? cause : new Error('storing the budget failed')
  }
}

export async function insertBudget(database: Database, b: Budget): Promise<void> {
  await withoutParameters(() => database.db.insert(budgets).values(toRow(b)))
}

export async function updateBudget(database: Database, b: Budget): Promise<boolean> {
  const { id, createdAt: _createdAt, ...rest } = toRow(b)
  const rows = await withoutParameters(() => database.db.update(budgets).set(rest).where(eq(budgets.id, id)).returning({ id: budgets.id }))
  return rows.length > 0
}

/** Deletes a budget with its alert history and pending deliveries. */
export async function deleteBudget(database: Database, id: string): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`DELETE FROM budget_deliveries WHERE alert_id IN (SELECT id FROM budget_alerts WHERE budget_id = ${id})`)
    await tx.execute(sql`DELETE FROM budget_alerts WHERE budget_id = ${id}`)
    const rows = await tx.delete(budgets).where(eq(budgets.id, id)).returning({ id: budgets.id })
    return rows.length > 0
  })
}
