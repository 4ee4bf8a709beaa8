import { and, asc, desc, eq, inArray, not, sql } from 'drizzle-orm'
import { rowsOf, type Database } from '../db/connect.js'
import { reportSchedules, reportSends } from '../db/schema.js'
import { uuidv7 } from '../lib/uuidv7.js'
import { CHANNELS } from './budget-store.js'
import { queueDeliveries } from './delivery-store.js'
import type { PeriodWindow } from './periods.js'
import type { ScheduledReport } from './report-schedule-schemas.js'

/** Storage of report schedules and of the reports they sent (see report-schedule.ts). */

export type ReportSchedule = typeof reportSchedules.$inferSelect
export type ReportSend = Omit<typeof reportSends.$inferSelect, 'report'> & { report: ScheduledReport }

export async function listReportSchedules(database: Database): Promise<ReportSchedule[]> {
  return database.db.select().from(reportSchedules).orderBy(asc(reportSchedules.createdAt), asc(reportSchedules.id))
}

export async function findReportSchedule(database: Database, id: string): Promise<ReportSchedule | null> {
  const [row] = await database.db.select().from(reportSchedules).where(eq(reportSchedules.id, id))
  return row ?? null
}

export async function insertReportSchedule(database: Database, s: ReportSchedule): Promise<void> {
  try {
    await database.db.insert(reportSchedules).values(s)
  } catch (err) {
    // Drizzle's error quotes the parameters (channel secrets); the driver's own error does not.
    const cause = (err as { cause?: unknown }).cause
    throw cause instanceof Error ? cause : new Error('storing the report schedule failed')
  }
}

/** Stores a schedule's changeable fields (name, send hour, enabled); false when it does not exist. */
export async function updateReportSchedule(database: Database, s: ReportSchedule): Promise<boolean> {
  const rows = await database.db
    .update(reportSchedules)
    .set({ name: s.name, sendHour: s.sendHour, enabled: s.enabled, updatedAt: s.updatedAt })
    .where(eq(reportSchedules.id, s.id))
    .returning({ id: reportSchedules.id })
  return rows.length > 0
}

/** Deletes a schedule with its sends and their deliveries. */
export async function deleteReportSchedule(database: Database, id: string): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`DELETE FROM budget_deliveries WHERE source = 'report' AND alert_id IN (SELECT id FROM report_sends WHERE schedule_id = ${id})`)
    await tx.execute(sql`DELETE FROM report_sends WHERE schedule_id = ${id}`)
    const rows = await tx.delete(reportSchedules).where(eq(reportSchedules.id, id)).returning({ id: reportSchedules.id })
    return rows.length > 0
  })
}

/** Whether the schedule already sent the period (a cheap check before building the report). */
export async function periodSent(database: Database, scheduleId: string, window: PeriodWindow): Promise<boolean> {
  const rows = await database.db
    .select({ id: reportSends.id })
    .from(reportSends)
    .where(and(eq(reportSends.scheduleId, scheduleId), eq(reportSends.periodStart, window.start), not(reportSends.manual)))
    .limit(1)
  return rows.length > 0
}

/**
 * Records a report and, in the same transaction, one delivery per channel. A scheduled send is
 * the claim of its period: of several instances (or restarts) recording the same period, only the
 * one whose INSERT wins gets an id back and queues messages; the others get null.
 */
export async function recordSend(
  database: Database,
  schedule: ReportSchedule,
  window: PeriodWindow,
  report: ScheduledReport,
  manual: boolean,
): Promise<{ id: string; deliveries: number } | null> {
  const id = uuidv7()
  const values = sql`(${id}, ${schedule.id}, ${window.start.toISOString()}::timestamptz, ${window.end.toISOString()}::timestamptz, ${manual}, ${JSON.stringify(report)}::jsonb)`
  return database.db.transaction(async (tx) => {
    const inserted = rowsOf<{ id: string }>(
      await tx.execute(sql`
        INSERT INTO report_sends (id, schedule_id, period_start, period_end, manual, report) VALUES ${values}
        ON CONFLICT (schedule_id, period_start) WHERE NOT manual DO NOTHING
        RETURNING id`),
    )
    if (inserted.length === 0) return null
    const channels = CHANNELS.filter((c) => schedule.channels[c] !== undefined)
    return { id, deliveries: await queueDeliveries(tx, 'report', [{ alertId: id, channels }]) }
  })
}

export async function listSends(database: Database, scheduleId: string, limit: number): Promise<ReportSend[]> {
  const rows = await database.db
    .select()
    .from(reportSends)
    .where(eq(reportSends.scheduleId, scheduleId))
    .orderBy(desc(reportSends.createdAt), desc(reportSends.id))
    .limit(limit)
  return rows as ReportSend[]
}

/** Sends by id with their schedule (null when it was deleted meanwhile): what a delivery sends. */
export async function sendsWithSchedules(database: Database, ids: string[]): Promise<{ send: ReportSend; schedule: ReportSchedule | null }[]> {
  if (ids.length === 0) return []
  const rows = await database.db
    .select({ send: reportSends, schedule: reportSchedules })
    .from(reportSends)
    .leftJoin(reportSchedules, eq(reportSchedules.id, reportSends.scheduleId))
    .where(inArray(reportSends.id, ids))
  return rows.map((r) => ({ send: r.send as ReportSend, schedule: r.schedule }))
}
