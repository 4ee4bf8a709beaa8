import { and, desc, eq, gte, lt, sql, type SQL } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { budgetAlerts, budgetDeliveries, budgets } from '../db/schema.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { ChannelName } from './budget-store.js'
import type { PeriodWindow } from './periods.js'

type AlertRow = typeof budgetAlerts.$inferSelect
type DeliveryRow = typeof budgetDeliveries.$inferSelect
export type AlertKind = AlertRow['kind']

export interface AlertCandidate {
  budgetId: string
  window: PeriodWindow
  kind: AlertKind
  threshold: number
  limit: bigint
  spent: bigint
  projected: bigint | null
  /** Channels the budget has now: one delivery each if this alert is the one delivered. */
  channels: ChannelName[]
  /** Per-user budgets: the user whose spend crossed it; absent or '' for the others. */
  userId?: string
}

export interface RecordedAlert {
  id: string
  budgetId: string
  kind: AlertKind
  threshold: number
  deliveries: number
}

const candidateKey = (c: AlertCandidate) =>
  `${c.budgetId}\u0000${c.window.start.toISOString()}\u0000${c.kind}\u0000${String(c.threshold).padStart(5, '0')}\u0000${c.userId ?? ''}`

/**
 * Stores the alerts not stored yet and, in the same transaction, their deliveries: exactly the
 * caller whose INSERT wins a key gets it back, whatever other instances do at the same time.
 * Of several alerts of a budget recorded at once, only the highest threshold is delivered (its
 * message carries the projection); the others point at it.
 * Rows are inserted in key order, so concurrent evaluators cannot deadlock on the unique index.
 */
export async function recordAlerts(database: Database, candidates: AlertCandidate[]): Promise<RecordedAlert[]> {
  if (candidates.length === 0) return []
  const sorted = [...candidates].sort((a, b) => (candidateKey(a) < candidateKey(b) ? -1 : 1))
  const channelsOf = new Map(sorted.map((c) => [c.budgetId, c.channels]))
  const payload = JSON.stringify(
    sorted.map((c, ord) => ({
      ord,
      id: uuidv7(),
      budget_id: c.budgetId,
      period_start: c.window.start.toISOString(),
      period_end: c.window.end.toISOString(),
      kind: c.kind,
      threshold: c.threshold,
      limit_usd: formatUsd(c.limit),
      spent_usd: formatUsd(c.spent),
      projected_usd: c.projected === null ? null : formatUsd(c.projected),
      user_id: c.userId ?? '',
    })),
  )
  return retryOnDeadlock(() =>
    database.db.transaction(async (tx) => {
      const inserted = rowsOf<Pick<AlertRow, 'id' | 'budgetId' | 'kind' | 'threshold' | 'userId'>>(
        await tx.execute(sql`
          INSERT INTO budget_alerts (id, budget_id, period_start, period_end, kind, threshold, limit_usd, spent_usd, projected_usd, user_id)
          SELECT id, budget_id, period_start, period_end, kind, threshold, limit_usd, spent_usd, projected_usd, user_id
          FROM json_to_recordset(${payload}::json) AS c(ord int, id text, budget_id text, period_start timestamptz,
            period_end timestamptz, kind text, threshold int, limit_usd numeric, spent_usd numeric, projected_usd numeric, user_id text)
          ORDER BY ord
          ON CONFLICT (budget_id, period_start, kind, threshold, limit_usd, user_id) DO NOTHING
          RETURNING id, budget_id AS "budgetId", kind, threshold, user_id AS "userId"`),
      )
      // One message per budget (and user) and evaluation: the highest threshold crossed, else the projection.
      const rank = (a: { kind: AlertKind; threshold: number }) => (a.kind === 'threshold' ? 10_000 + a.threshold : 0)
      const whose = (a: { budgetId: string; userId: string }) => `${a.budgetId}\u0000${a.userId}`
      const top = new Map<string, { id: string; rank: number }>()
      for (const a of inserted) {
        const best = top.get(whose(a))
        if (!best || rank(a) > best.rank) top.set(whose(a), { id: a.id, rank: rank(a) })
      }
      const superseded = inserted.flatMap((a) => {
        const best = top.get(whose(a))
        return best && best.id !== a.id ? [{ id: a.id, by: best.id }] : []
      })
      if (superseded.length > 0) {
        await tx.execute(sql`
          UPDATE budget_alerts a SET superseded_by = s.by
          FROM json_to_recordset(${JSON.stringify(superseded)}::json) AS s(id text, by text) WHERE a.id = s.id`)
      }
      const deliveries = inserted.flatMap((a) =>
        top.get(whose(a))?.id === a.id
          ? (channelsOf.get(a.budgetId) ?? []).map((channel) => ({ id: uuidv7(), alert_id: a.id, channel }))
          : [],
      )
      if (deliveries.length > 0) {
        await tx.execute(sql`
          INSERT INTO budget_deliveries (id, alert_id, channel, status, next_attempt_at)
          SELECT id, alert_id, channel, 'pending', now()
          FROM json_to_recordset(${JSON.stringify(deliveries)}::json) AS d(id text, alert_id text, channel text)`)
      }
      return inserted.map((a) => ({
        id: a.id,
        budgetId: a.budgetId,
        kind: a.kind,
        threshold: a.threshold,
        deliveries: deliveries.filter((d) => d.alert_id === a.id).length,
      }))
    }),
  )
}

async function retryOnDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (attempt >= 3 || (code !== '40P01' && code !== '40001')) throw err
    }
  }
}

/** What an alert says, as both the delivery worker and the alert history read it. */
export interface AlertFigures {
  kind: AlertKind
  threshold: number
  window: PeriodWindow
  limit: bigint
  spent: bigint
  projected: bigint | null
  /** Per-user budgets: whose spend it is; null for the others. */
  userId: string | null
}

export function alertFigures(
  r: Pick<AlertRow, 'kind' | 'threshold' | 'periodStart' | 'periodEnd' | 'limitUsd' | 'spentUsd' | 'projectedUsd' | 'userId'>,
): AlertFigures {
  return {
    userId: r.userId === '' ? null : r.userId,
    kind: r.kind,
    threshold: r.threshold,
    window: { start: r.periodStart, end: r.periodEnd },
    limit: parseUsd(r.limitUsd),
    spent: parseUsd(r.spentUsd),
    projected: r.projectedUsd === null ? null : parseUsd(r.projectedUsd),
  }
}

export interface StoredDelivery {
  channel: ChannelName
  status: DeliveryRow['status']
  attempts: number
  lastError: string | null
  lastAttemptAt: Date | null
  nextAttemptAt: Date | null
  deliveredAt: Date | null
}

export interface StoredAlert extends AlertFigures {
  id: string
  budgetId: string
  budgetName: string | null
  supersededBy: string | null
  createdAt: Date
  deliveries: StoredDelivery[]
}

/** A delivery as json_build_object renders it: timestamps as ISO text. */
type DeliveryJson = {
  [K in 'channel' | 'status' | 'attempts' | 'lastError' | 'lastAttemptAt' | 'nextAttemptAt' | 'deliveredAt']: DeliveryRow[K] extends Date | null
    ? string | null
    : DeliveryRow[K]
}

const dateOrNull = (v: string | null) => (v === null ? null : new Date(v))

export interface AlertFilter {
  budgetId?: string
  periodStart?: Date
  /** '' for alerts of no user (budgets that are not per user). */
  userId?: string
  /** Inclusive. */
  since?: Date
  /** Exclusive: created before this (pagination cursor). */
  before?: Date
  limit: number
}

/** Alert history, newest first, each with its deliveries. */
export async function listAlerts(database: Database, f: AlertFilter): Promise<StoredAlert[]> {
  const conditions: SQL[] = []
  if (f.budgetId !== undefined) conditions.push(eq(budgetAlerts.budgetId, f.budgetId))
  if (f.periodStart !== undefined) conditions.push(eq(budgetAlerts.periodStart, f.periodStart))
  if (f.userId !== undefined) conditions.push(eq(budgetAlerts.userId, f.userId))
  if (f.since !== undefined) conditions.push(gte(budgetAlerts.createdAt, f.since))
  if (f.before !== undefined) conditions.push(lt(budgetAlerts.createdAt, f.before))
  const rows = await database.db
    .select({
      alert: budgetAlerts,
      budgetName: budgets.name,
      deliveries: sql<DeliveryJson[]>`coalesce((SELECT json_agg(json_build_object('channel', d.channel, 'status', d.status,
          'attempts', d.attempts, 'lastError', d.last_error, 'lastAttemptAt', d.last_attempt_at,
          'nextAttemptAt', d.next_attempt_at, 'deliveredAt', d.delivered_at) ORDER BY d.channel)
        FROM budget_deliveries d WHERE d.alert_id = ${budgetAlerts.id}), '[]'::json)`,
    })
    .from(budgetAlerts)
    .leftJoin(budgets, eq(budgets.id, budgetAlerts.budgetId))
    .where(and(...conditions))
    .orderBy(desc(budgetAlerts.createdAt), desc(budgetAlerts.id))
    .limit(f.limit)
  return rows.map(({ alert: a, budgetName, deliveries }) => ({
    id: a.id,
    budgetId: a.budgetId,
    budgetName,
    ...alertFigures(a),
    supersededBy: a.supersededBy,
    createdAt: a.createdAt,
    deliveries: deliveries.map((d) => ({
      channel: d.channel as ChannelName,
      status: d.status,
      attempts: d.attempts,
      lastError: d.lastError,
      lastAttemptAt: dateOrNull(d.lastAttemptAt),
      nextAttemptAt: d.status === 'pending' ? dateOrNull(d.nextAttemptAt) : null,
      deliveredAt: dateOrNull(d.deliveredAt),
    })),
  }))
}
