import { and, asc, eq, inArray, lte, sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { budgetAlerts, budgetDeliveries, budgets } from '../db/schema.js'
import { alertFigures, type AlertFigures } from './alert-store.js'
import { toBudget, type Budget, type ChannelName } from './budget-store.js'
import { uuidv7 } from '../lib/uuidv7.js'
import type { Static } from 'typebox'
import type { DeliveryInfo as DeliveryInfoSchema } from './schemas.js'

type DeliveryInfo = Static<typeof DeliveryInfoSchema>

type DeliveryRow = typeof budgetDeliveries.$inferSelect
export type DeliveryStatus = DeliveryRow['status']

/** A delivery claimed for one attempt, with what the message needs. */
export interface ClaimedDelivery {
  id: string
  channel: ChannelName
  /** Including this one. */
  attempt: number
  alert: AlertFigures & {
    id: string
    /** Lower thresholds that fired in the same evaluation and are reported with this one. */
    alsoCrossed: number[]
    createdAt: Date
  }
  /** The budget as it stands now (channels may have changed since the alert); null when it was deleted meanwhile. */
  budget: Budget | null
}

/**
 * Claims up to `limit` due deliveries for one attempt each. The claim moves next_attempt_at to
 * the end of a lease: another instance takes the delivery over only if this one dies mid-attempt.
 */
export async function claimDueDeliveries(database: Database, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const { db } = database
  const claimed = claimStatement(database, 'budget', limit, leaseMs)
  const rows = await db
    .with(claimed)
    .select({
      id: claimed.id,
      channel: claimed.channel,
      attempts: claimed.attempts,
      alert: budgetAlerts,
      alsoCrossed: sql<number[]>`(SELECT coalesce(json_agg(s.threshold ORDER BY s.threshold), '[]'::json) FROM budget_alerts s
        WHERE s.budget_id = ${budgetAlerts.budgetId} AND s.period_start = ${budgetAlerts.periodStart}
          AND s.superseded_by = ${budgetAlerts.id} AND s.kind = 'threshold')`,
      budget: budgets,
    })
    .from(claimed)
    .innerJoin(budgetAlerts, eq(budgetAlerts.id, claimed.alertId))
    .leftJoin(budgets, eq(budgets.id, budgetAlerts.budgetId))
  return rows.map(({ alert: a, budget: b, ...d }) => ({
    id: d.id,
    channel: d.channel as ChannelName,
    attempt: d.attempts,
    alert: { id: a.id, ...alertFigures(a), alsoCrossed: d.alsoCrossed, createdAt: a.createdAt },
    budget: b === null ? null : toBudget(b),
  }))
}

export type DeliverySource = DeliveryRow['source']

/** A claimed delivery of another source than budgets: what it delivers is looked up by `alertId`. */
export interface ClaimedOutboxDelivery {
  id: string
  alertId: string
  channel: ChannelName
  /** Including this one. */
  attempt: number
}

/** The claim of up to `limit` due deliveries of one source (see claimDueDeliveries), as a CTE. */
function claimStatement(database: Database, source: DeliverySource, limit: number, leaseMs: number) {
  const { db } = database
  const due = db
    .select({ id: budgetDeliveries.id })
    .from(budgetDeliveries)
    .where(and(eq(budgetDeliveries.status, 'pending'), eq(budgetDeliveries.source, source), lte(budgetDeliveries.nextAttemptAt, sql`now()`)))
    .orderBy(asc(budgetDeliveries.nextAttemptAt))
    .limit(limit)
    .for('update', { skipLocked: true })
  return db.$with('claimed').as(
    db
      .update(budgetDeliveries)
      .set({
        attempts: sql`${budgetDeliveries.attempts} + 1`,
        lastAttemptAt: sql`now()`,
        nextAttemptAt: sql`now() + ${leaseMs} * interval '1 millisecond'`,
      })
      .where(inArray(budgetDeliveries.id, due))
      .returning({ id: budgetDeliveries.id, alertId: budgetDeliveries.alertId, channel: budgetDeliveries.channel, attempts: budgetDeliveries.attempts }),
  )
}

/** Claims due deliveries of spend alerts or reports, the same way as claimDueDeliveries. */
export async function claimDueOutboxDeliveries(
  database: Database,
  source: Exclude<DeliverySource, 'budget'>,
  limit: number,
  leaseMs: number,
): Promise<ClaimedOutboxDelivery[]> {
  const claimed = claimStatement(database, source, limit, leaseMs)
  const rows = await database.db.with(claimed).select().from(claimed)
  return rows.map((r) => ({ id: r.id, alertId: r.alertId, channel: r.channel as ChannelName, attempt: r.attempts }))
}

/** Queues one pending delivery per channel of each alert (in the caller's transaction), due now. */
export async function queueDeliveries(
  tx: Pick<Database['db'], 'execute'>,
  source: Exclude<DeliverySource, 'budget'>,
  items: { alertId: string; channels: ChannelName[] }[],
): Promise<number> {
  const rows = items.flatMap((i) => i.channels.map((channel) => ({ id: uuidv7(), alert_id: i.alertId, channel })))
  if (rows.length === 0) return 0
  await tx.execute(sql`
    INSERT INTO budget_deliveries (id, alert_id, channel, source, status, next_attempt_at)
    SELECT id, alert_id, channel, ${source}, 'pending', now()
    FROM json_to_recordset(${JSON.stringify(rows)}::json) AS d(id text, alert_id text, channel text)`)
  return rows.length
}

/** Delivery states of alerts of any source as the API shows them, per alert id, in channel order. */
export async function deliveriesOf(database: Database, alertIds: string[]): Promise<Map<string, DeliveryInfo[]>> {
  const byAlert = new Map<string, DeliveryInfo[]>()
  if (alertIds.length === 0) return byAlert
  const rows = await database.db.select().from(budgetDeliveries).where(inArray(budgetDeliveries.alertId, alertIds)).orderBy(asc(budgetDeliveries.channel))
  for (const d of rows) {
    const info: DeliveryInfo = {
      channel: d.channel as ChannelName,
      status: d.status,
      attempts: d.attempts,
      lastError: d.lastError,
      lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
      nextAttemptAt: d.status === 'pending' ? (d.nextAttemptAt?.toISOString() ?? null) : null,
      deliveredAt: d.deliveredAt?.toISOString() ?? null,
    }
    byAlert.set(d.alertId, [...(byAlert.get(d.alertId) ?? []), info])
  }
  return byAlert
}

export async function markDelivered(database: Database, id: string): Promise<void> {
  await database.db.execute(sql`
    UPDATE budget_deliveries SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL, last_error = NULL
    WHERE id = ${id}`)
}

/** Records a failed attempt: due again after `retryInMs`, or failed for good when that is null. */
export async function markAttemptFailed(database: Database, id: string, error: string, retryInMs: number | null): Promise<void> {
  await database.db.execute(sql`
    UPDATE budget_deliveries SET last_error = ${error},
      status = ${retryInMs === null ? 'failed' : 'pending'},
      next_attempt_at = ${retryInMs === null ? null : sql`now() + ${retryInMs} * interval '1 millisecond'`}
    WHERE id = ${id}`)
}

export async function markCancelled(database: Database, id: string, reason: string): Promise<void> {
  await database.db.execute(sql`
    UPDATE budget_deliveries SET status = 'cancelled', last_error = ${reason}, next_attempt_at = NULL WHERE id = ${id}`)
}

/** Gives an interrupted attempt back (shutdown): due at once, the attempt not counted. */
export async function releaseClaim(database: Database, id: string): Promise<void> {
  await database.db.execute(sql`
    UPDATE budget_deliveries SET attempts = greatest(attempts - 1, 0), next_attempt_at = now()
    WHERE id = ${id} AND status = 'pending'`)
}

/** Milliseconds until the next pending delivery is due (0 when overdue), null when none is pending. */
export async function msUntilNextDelivery(database: Database): Promise<number | null> {
  const [row] = await database.rows<{ ms: string | number | null }>(sql`
    SELECT greatest(0, extract(epoch FROM min(next_attempt_at) - now()) * 1000) AS ms
    FROM budget_deliveries WHERE status = 'pending'`)
  return row === undefined || row.ms === null ? null : Math.ceil(Number(row.ms))
}
