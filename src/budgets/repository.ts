import { asc, eq, sql } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { budgets, type StoredBudgetChannels } from '../db/schema.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { wholeHours, type BudgetPeriod, type PeriodWindow } from './periods.js'

export const CHANNELS = ['webhook', 'email', 'telegram'] as const
export type ChannelName = (typeof CHANNELS)[number]
export type AlertKind = 'threshold' | 'projected'
export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'cancelled'

export interface BudgetScope {
  botId: string | null
  provider: string | null
  model: string | null
}

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
}

type BudgetRow = typeof budgets.$inferSelect

const toDate = (v: Date | string) => (v instanceof Date ? v : new Date(v))
const picoOrNull = (v: string | null) => (v === null ? null : parseUsd(v))

function toBudget(r: BudgetRow): Budget {
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

export interface SpendRequest {
  budgetId: string
  scope: BudgetScope
  window: PeriodWindow
}

/**
 * Spend of each budget in its window, in pico-USD, in one statement. Whole UTC hours come from
 * the hourly rollup; the partial hours at the edges (zones offset by :30 or :45) from raw events.
 */
export async function spendByBudget(database: Database, requests: SpendRequest[]): Promise<Map<string, bigint>> {
  const spent = new Map<string, bigint>()
  if (requests.length === 0) return spent
  const payload = JSON.stringify(
    requests.map((r) => {
      const hours = wholeHours(r.window)
      return {
        id: r.budgetId,
        bot_id: r.scope.botId,
        provider: r.scope.provider,
        model: r.scope.model,
        start_at: r.window.start.toISOString(),
        end_at: r.window.end.toISOString(),
        hour_from: hours.from.toISOString(),
        hour_to: hours.to.toISOString(),
      }
    }),
  )
  const rows = await database.rows<{ id: string; spent: string }>(sql`
    SELECT b.id, (
      (SELECT coalesce(sum(h.cost), 0) FROM usage_hourly h
        WHERE h.hour >= b.hour_from AND h.hour < b.hour_to
          AND (b.bot_id IS NULL OR h.bot_id = b.bot_id)
          AND (b.provider IS NULL OR h.provider = b.provider)
          AND (b.model IS NULL OR h.model = b.model))
      + CASE WHEN b.start_at = b.hour_from AND b.end_at = b.hour_to THEN 0 ELSE
        (SELECT coalesce(sum(e.cost), 0) FROM usage_events e
          WHERE ((e.created_at >= b.start_at AND e.created_at < b.hour_from) OR (e.created_at >= b.hour_to AND e.created_at < b.end_at))
            AND (b.bot_id IS NULL OR e.bot_id = b.bot_id)
            AND (b.provider IS NULL OR e.provider = b.provider)
            AND (b.model IS NULL OR e.model = b.model)) END
    )::text AS spent
    FROM json_to_recordset(${payload}::json) AS b(id text, bot_id text, provider text, model text,
      start_at timestamptz, end_at timestamptz, hour_from timestamptz, hour_to timestamptz)`)
  for (const r of rows) spent.set(r.id, parseUsd(r.spent))
  return spent
}

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
}

export interface RecordedAlert {
  id: string
  budgetId: string
  kind: AlertKind
  threshold: number
  deliveries: number
}

const candidateKey = (c: AlertCandidate) => `${c.budgetId}\u0000${c.window.start.toISOString()}\u0000${c.kind}\u0000${String(c.threshold).padStart(5, '0')}`

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
    })),
  )
  return retryOnDeadlock(() =>
    database.db.transaction(async (tx) => {
      const inserted = rowsOf<{ id: string; budget_id: string; kind: AlertKind; threshold: number }>(
        await tx.execute(sql`
          INSERT INTO budget_alerts (id, budget_id, period_start, period_end, kind, threshold, limit_usd, spent_usd, projected_usd)
          SELECT id, budget_id, period_start, period_end, kind, threshold, limit_usd, spent_usd, projected_usd
          FROM json_to_recordset(${payload}::json) AS c(ord int, id text, budget_id text, period_start timestamptz,
            period_end timestamptz, kind text, threshold int, limit_usd numeric, spent_usd numeric, projected_usd numeric)
          ORDER BY ord
          ON CONFLICT (budget_id, period_start, kind, threshold, limit_usd) DO NOTHING
          RETURNING id, budget_id, kind, threshold`),
      )
      // One message per budget and evaluation: the highest threshold crossed, else the projection.
      const rank = (a: { kind: AlertKind; threshold: number }) => (a.kind === 'threshold' ? 10_000 + a.threshold : 0)
      const top = new Map<string, { id: string; rank: number }>()
      for (const a of inserted) {
        const best = top.get(a.budget_id)
        if (!best || rank(a) > best.rank) top.set(a.budget_id, { id: a.id, rank: rank(a) })
      }
      const superseded = inserted.flatMap((a) => {
        const best = top.get(a.budget_id)
        return best && best.id !== a.id ? [{ id: a.id, by: best.id }] : []
      })
      if (superseded.length > 0) {
        await tx.execute(sql`
          UPDATE budget_alerts a SET superseded_by = s.by
          FROM json_to_recordset(${JSON.stringify(superseded)}::json) AS s(id text, by text) WHERE a.id = s.id`)
      }
      const deliveries = inserted.flatMap((a) =>
        top.get(a.budget_id)?.id === a.id
          ? (channelsOf.get(a.budget_id) ?? []).map((channel) => ({ id: uuidv7(), alert_id: a.id, channel }))
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
        budgetId: a.budget_id,
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

/** A delivery claimed for one attempt, with what the message needs. */
/** What an alert says, as both the delivery worker and the alert history read it. */
export interface AlertFigures {
  kind: AlertKind
  threshold: number
  window: PeriodWindow
  limit: bigint
  spent: bigint
  projected: bigint | null
}

/** The budget_alerts columns behind AlertFigures, as selected (money as text). */
interface AlertFiguresRow {
  kind: AlertKind
  threshold: number
  period_start: Date | string
  period_end: Date | string
  limit_usd: string
  spent_usd: string
  projected_usd: string | null
}

function alertFigures(r: AlertFiguresRow): AlertFigures {
  return {
    kind: r.kind,
    threshold: r.threshold,
    window: { start: toDate(r.period_start), end: toDate(r.period_end) },
    limit: parseUsd(r.limit_usd),
    spent: parseUsd(r.spent_usd),
    projected: picoOrNull(r.projected_usd),
  }
}

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
  /** null when the budget was deleted meanwhile. */
  budget: Pick<Budget, 'id' | 'name' | 'scope' | 'period' | 'timeZone' | 'channels'> | null
}

interface ClaimRow extends AlertFiguresRow {
  id: string
  channel: ChannelName
  attempts: number
  alert_id: string
  alert_created_at: Date | string
  also_crossed: number[]
  budget_id: string | null
  name: string | null
  bot_id: string | null
  provider: string | null
  model: string | null
  period: BudgetPeriod | null
  time_zone: string | null
  channels: StoredBudgetChannels | null
}

/**
 * Claims up to `limit` due deliveries for one attempt each. The claim moves next_attempt_at to
 * the end of a lease: another instance takes the delivery over only if this one dies mid-attempt.
 */
export async function claimDueDeliveries(database: Database, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const rows = await database.rows<ClaimRow>(sql`
    WITH due AS (
      SELECT id FROM budget_deliveries
      WHERE status = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE budget_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(),
        next_attempt_at = now() + ${leaseMs} * interval '1 millisecond'
      FROM due WHERE d.id = due.id
      RETURNING d.id, d.alert_id, d.channel, d.attempts
    )
    SELECT c.id, c.channel, c.attempts, a.id AS alert_id, a.kind, a.threshold, a.period_start, a.period_end,
      a.limit_usd::text AS limit_usd, a.spent_usd::text AS spent_usd, a.projected_usd::text AS projected_usd,
      a.created_at AS alert_created_at,
      (SELECT coalesce(json_agg(s.threshold ORDER BY s.threshold), '[]'::json) FROM budget_alerts s
        WHERE s.budget_id = a.budget_id AND s.period_start = a.period_start AND s.superseded_by = a.id
          AND s.kind = 'threshold') AS also_crossed,
      b.id AS budget_id, b.name, b.bot_id, b.provider, b.model, b.period, b.time_zone, b.channels
    FROM claimed c JOIN budget_alerts a ON a.id = c.alert_id LEFT JOIN budgets b ON b.id = a.budget_id`)
  return rows.map((r) => ({
    id: r.id,
    channel: r.channel,
    attempt: r.attempts,
    alert: {
      id: r.alert_id,
      ...alertFigures(r),
      alsoCrossed: r.also_crossed,
      createdAt: toDate(r.alert_created_at),
    },
    budget:
      r.budget_id === null || r.name === null || r.period === null || r.time_zone === null || r.channels === null
        ? null
        : {
            id: r.budget_id,
            name: r.name,
            scope: { botId: r.bot_id, provider: r.provider, model: r.model },
            period: r.period,
            timeZone: r.time_zone,
            channels: r.channels,
          },
  }))
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

export interface StoredDelivery {
  channel: ChannelName
  status: DeliveryStatus
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

interface AlertRow extends AlertFiguresRow {
  id: string
  budget_id: string
  budget_name: string | null
  superseded_by: string | null
  created_at: Date | string
  deliveries: Array<{
    channel: ChannelName
    status: DeliveryStatus
    attempts: number
    last_error: string | null
    last_attempt_at: string | null
    next_attempt_at: string | null
    delivered_at: string | null
  }>
}

const dateOrNull = (v: string | null) => (v === null ? null : new Date(v))

export interface AlertFilter {
  budgetId?: string
  periodStart?: Date
  /** Inclusive. */
  since?: Date
  /** Exclusive: created before this (pagination cursor). */
  before?: Date
  limit: number
}

/** Alert history, newest first, each with its deliveries. */
export async function listAlerts(database: Database, f: AlertFilter): Promise<StoredAlert[]> {
  const conditions = [sql`TRUE`]
  if (f.budgetId !== undefined) conditions.push(sql`a.budget_id = ${f.budgetId}`)
  if (f.periodStart !== undefined) conditions.push(sql`a.period_start = ${f.periodStart.toISOString()}`)
  if (f.since !== undefined) conditions.push(sql`a.created_at >= ${f.since.toISOString()}`)
  if (f.before !== undefined) conditions.push(sql`a.created_at < ${f.before.toISOString()}`)
  const rows = await database.rows<AlertRow>(sql`
    SELECT a.id, a.budget_id, b.name AS budget_name, a.kind, a.threshold, a.period_start, a.period_end,
      a.limit_usd::text AS limit_usd, a.spent_usd::text AS spent_usd, a.projected_usd::text AS projected_usd,
      a.superseded_by, a.created_at,
      coalesce((SELECT json_agg(json_build_object('channel', d.channel, 'status', d.status, 'attempts', d.attempts,
          'last_error', d.last_error, 'last_attempt_at', d.last_attempt_at, 'next_attempt_at', d.next_attempt_at,
          'delivered_at', d.delivered_at) ORDER BY d.channel)
        FROM budget_deliveries d WHERE d.alert_id = a.id), '[]'::json) AS deliveries
    FROM budget_alerts a LEFT JOIN budgets b ON b.id = a.budget_id
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY a.created_at DESC, a.id DESC
    LIMIT ${f.limit}`)
  return rows.map((r) => ({
    id: r.id,
    budgetId: r.budget_id,
    budgetName: r.budget_name,
    ...alertFigures(r),
    supersededBy: r.superseded_by,
    createdAt: toDate(r.created_at),
    deliveries: r.deliveries.map((d) => ({
      channel: d.channel,
      status: d.status,
      attempts: d.attempts,
      lastError: d.last_error,
      lastAttemptAt: dateOrNull(d.last_attempt_at),
      nextAttemptAt: d.status === 'pending' ? dateOrNull(d.next_attempt_at) : null,
      deliveredAt: dateOrNull(d.delivered_at),
    })),
  }))
}
