import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import type { DeliveryWorker, OutboxMessage, OutboxSource } from './delivery.js'
import { offsetAt, periodWindow, type PeriodWindow } from './periods.js'
import { buildReport, composeReport, previousPeriod } from './report-content.js'
import { listReportSchedules, periodSent, recordSend, sendsWithSchedules, type ReportSchedule } from './report-schedule-store.js'

/**
 * Sends each report schedule's report once per period: the period just ended is due at
 * `sendHour` (local) of the next period's first day. Every instance checks on a timer; the first
 * to record the period's send (a unique key per schedule and period) queues its messages, the
 * others find it recorded. A period whose due time passed while no instance ran is sent when one
 * starts, as long as the next period is not due yet; a schedule's first report is the first
 * period due after it was created.
 */

const HOUR_MS = 3_600_000

/** The instant of local `hour`:00 on the local day starting at `dayStart` (DST changes that day included). */
export function atLocalHour(dayStart: Date, hour: number, timeZone: string): Date {
  const naive = dayStart.getTime() + hour * HOUR_MS
  return new Date(naive + offsetAt(dayStart.getTime(), timeZone) - offsetAt(naive, timeZone))
}

type Timing = Pick<ReportSchedule, 'period' | 'timeZone' | 'sendHour'>

/** The period the schedule's latest due report covers, and when it was (or is) due. */
export function latestDue(s: Timing, now: Date): { window: PeriodWindow; dueAt: Date } {
  const current = periodWindow(now, s.period, s.timeZone)
  return { window: previousPeriod(s, current), dueAt: atLocalHour(current.start, s.sendHour, s.timeZone) }
}

/** When the next report is due. */
export function nextSendAt(s: Timing, now: Date): Date {
  const { dueAt } = latestDue(s, now)
  if (now.getTime() < dueAt.getTime()) return dueAt
  return atLocalHour(periodWindow(now, s.period, s.timeZone).end, s.sendHour, s.timeZone)
}

export interface ReportSchedulerOptions {
  intervalMs: number
  log: FastifyBaseLogger
  clock?: () => Date
  /** Where reports are computed (the read pool or replica, as GET /api/reports/monthly reads). */
  reads: Database
}

export class ReportScheduler implements OutboxSource {
  readonly source = 'report' as const
  readonly clock: () => Date
  /** schedule id + period start of sends known to be recorded. */
  private readonly known = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  private tail: Promise<void> = Promise.resolve()
  private closed = false

  constructor(
    private readonly database: Database,
    private readonly delivery: DeliveryWorker,
    private readonly opts: ReportSchedulerOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date())
    delivery.addSource(this)
  }

  start(): void {
    void this.check()
    this.scheduleTick()
  }

  /** Sends every report that is due and not sent yet, after any check in flight; resolves when done. */
  check(): Promise<void> {
    const next = this.tail.then(() => (this.closed ? undefined : this.run()))
    this.tail = next.catch(() => undefined)
    return next.catch((err: unknown) => this.opts.log.warn({ err }, 'checking report schedules failed; the next tick retries'))
  }

  /** The report of `window`, recorded and queued on every channel of the schedule (manual: not the period's claim). */
  async send(schedule: ReportSchedule, window: PeriodWindow, manual: boolean): Promise<{ id: string; deliveries: number } | null> {
    const report = await buildReport(this.opts.reads, schedule, window)
    const sent = await recordSend(this.database, schedule, window, report, manual)
    if (sent !== null) {
      this.opts.log.info({ reportSendId: sent.id, reportScheduleId: schedule.id, periodStart: window.start.toISOString(), manual }, 'report sent')
      if (sent.deliveries > 0) this.delivery.kick()
    }
    return sent
  }

  async resolve(alertIds: string[]): Promise<Map<string, OutboxMessage>> {
    const found = new Map<string, OutboxMessage>()
    for (const { send, schedule } of await sendsWithSchedules(this.database, alertIds)) {
      if (schedule !== null) {
        found.set(send.id, { channels: schedule.channels, message: composeReport(send.id, send.report, send.manual), log: { reportScheduleId: schedule.id } })
      }
    }
    return found
  }

  async stop(): Promise<void> {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    await this.tail
  }

  private scheduleTick(): void {
    if (this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.check().finally(() => this.scheduleTick())
    }, this.opts.intervalMs)
    this.timer.unref()
  }

  private async run(): Promise<void> {
    const now = this.clock()
    for (const schedule of await listReportSchedules(this.database)) {
      if (!schedule.enabled || this.closed) continue
      const { window, dueAt } = latestDue(schedule, now)
      const key = `${schedule.id}|${window.start.toISOString()}`
      if (now.getTime() < dueAt.getTime() || dueAt.getTime() < schedule.createdAt.getTime() || this.known.has(key)) continue
      try {
        if (!(await periodSent(this.database, schedule.id, window))) await this.send(schedule, window, false)
        this.known.add(key)
      } catch (err) {
        this.opts.log.warn({ err, reportScheduleId: schedule.id }, 'sending a scheduled report failed; the next tick retries')
      }
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's report scheduler (tests check it at a moment they choose). */
    reportScheduler: ReportScheduler
  }
}
