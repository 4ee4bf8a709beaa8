import { monthlyReport, reportMeasures, topErrorMessages, totalsOver } from '../analytics/reader.js'
import type { Database } from '../db/connect.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import { dollars, type AlertMessage } from './channels.js'
import { periodWindow, type PeriodWindow } from './periods.js'
import type { ReportSchedule } from './report-schedule-store.js'
import type { ScheduledReport } from './report-schedule-schemas.js'

/**
 * What a scheduled report says: the rows and totals of GET /api/reports/monthly computed over the
 * report's period (a calendar month or an ISO week in its time zone), cost by model and by bot,
 * the most frequent errors, and the change against the period before.
 */

/** Rows a report may hold (as GET /api/reports/monthly); the totals always cover everything. */
const MAX_ROWS = 10_000
const TOP = 10
const TOP_ERRORS = 5

/** Relative change as GET /api/usage/summary computes it; null when there is nothing to compare with. */
const change = (current: number, previous: number) => (previous === 0 ? null : (current - previous) / previous)

const localDate = (at: Date, timeZone: string) => new Intl.DateTimeFormat('sv-SE', { timeZone, dateStyle: 'short' }).format(at)

export function periodLabel(period: ReportSchedule['period'], window: PeriodWindow, timeZone: string): string {
  if (period === 'month') return localDate(window.start, timeZone).slice(0, 7)
  return `${localDate(window.start, timeZone)}..${localDate(new Date(window.end.getTime() - 1), timeZone)}`
}

/** The period before `window` of the same kind. */
export const previousPeriod = (s: Pick<ReportSchedule, 'period' | 'timeZone'>, window: PeriodWindow) =>
  periodWindow(new Date(window.start.getTime() - 1), s.period, s.timeZone)

/** Highest cost first (then most calls), at most TOP, with the cost as USD. */
function ranked<T extends { pico: bigint; calls: number }>(groups: Iterable<T>) {
  return [...groups]
    .sort((a, b) => (a.pico === b.pico ? b.calls - a.calls : a.pico > b.pico ? -1 : 1))
    .slice(0, TOP)
    .map(({ pico, ...rest }) => ({ ...rest, cost: Number(formatUsd(pico)), costExact: formatUsd(pico) }))
}

export async function buildReport(database: Database, schedule: ReportSchedule, window: PeriodWindow): Promise<ScheduledReport> {
  const filter = { botIds: schedule.botId === null ? null : [schedule.botId] }
  const span = (w: PeriodWindow) => ({ from: w.start.getTime(), to: w.end.getTime() })
  const before = previousPeriod(schedule, window)
  const report = await monthlyReport(database, filter, span(window), MAX_ROWS)
  const previous = await totalsOver(database, filter, span(before))
  const errors = await topErrorMessages(database, { ...filter, from: window.start, to: window.end }, TOP_ERRORS)

  const rows = report.rows.map((r) => ({ botId: r.botId, provider: r.provider, model: r.model, ...reportMeasures(r.totals) }))
  const models = new Map<string, { provider: string; model: string; pico: bigint; calls: number }>()
  const bots = new Map<string, { botId: string; pico: bigint; calls: number }>()
  for (const r of report.rows) {
    const pico = parseUsd(r.totals.cost)
    const m = models.get(`${r.provider}\u0000${r.model}`) ?? { provider: r.provider, model: r.model, pico: 0n, calls: 0 }
    models.set(`${r.provider}\u0000${r.model}`, { ...m, pico: m.pico + pico, calls: m.calls + r.totals.calls })
    const b = bots.get(r.botId) ?? { botId: r.botId, pico: 0n, calls: 0 }
    bots.set(r.botId, { ...b, pico: b.pico + pico, calls: b.calls + r.totals.calls })
  }
  const totals = reportMeasures(report.totals)
  const prior = reportMeasures(previous)
  return {
    scheduleId: schedule.id,
    name: schedule.name,
    period: schedule.period,
    timeZone: schedule.timeZone,
    botId: schedule.botId,
    label: periodLabel(schedule.period, window, schedule.timeZone),
    from: window.start.toISOString(),
    to: window.end.toISOString(),
    rows,
    totals,
    byModel: ranked(models.values()),
    byBot: ranked(bots.values()),
    topErrors: errors.map((e) => ({ message: e.message, count: e.count })),
    previous: { from: before.start.toISOString(), to: before.end.toISOString(), totals: prior },
    change: {
      calls: change(totals.calls, prior.calls),
      cost: change(totals.cost, prior.cost),
      failures: change(totals.failures, prior.failures),
    },
  }
}

const percent = (c: number) => `${c >= 0 ? '+' : ''}${Math.round(c * 1000) / 10}%`
/** "+25%; previous 8", or "previous 0" when there is no change to compute. */
const versus = (c: number | null, previous: string) => (c === null ? `previous ${previous}` : `${percent(c)}; previous ${previous}`)
const usdText = (exact: string) => dollars(parseUsd(exact))
const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)
const lines = (items: string[]) => (items.length === 0 ? 'none' : items.join('\n'))

/** The report as people and programs read it, through every channel (webhook body: the whole report). */
export function composeReport(sendId: string, report: ScheduledReport, manual: boolean): AlertMessage {
  const adjective = report.period === 'week' ? 'Weekly' : 'Monthly'
  const subject =
    `${adjective} usage report "${report.name}", ${report.label} (${report.timeZone}): ${usdText(report.totals.costExact)}, ` +
    `${report.totals.calls} calls${report.change.cost === null ? '' : ` (cost ${percent(report.change.cost)} vs the previous ${report.period})`}`
  const facts = [
    { label: 'Period', value: `${report.label} (${report.timeZone})${report.botId === null ? '' : `, bot ${report.botId}`}` },
    { label: 'Calls', value: `${report.totals.calls} (${versus(report.change.calls, String(report.previous.totals.calls))})` },
    { label: 'Cost', value: `${usdText(report.totals.costExact)} (${versus(report.change.cost, usdText(report.previous.totals.costExact))})` },
    { label: 'Failures', value: `${report.totals.failures} (${versus(report.change.failures, String(report.previous.totals.failures))})` },
    { label: 'Cost by model', value: lines(report.byModel.slice(0, 5).map((m) => `${m.provider}/${cut(m.model, 60)}: ${usdText(m.costExact)} (${m.calls} calls)`)) },
    { label: 'Cost by bot', value: lines(report.byBot.slice(0, 5).map((b) => `${cut(b.botId, 60)}: ${usdText(b.costExact)} (${b.calls} calls)`)) },
    { label: 'Top errors', value: lines(report.topErrors.map((e) => `${e.count}x ${cut(e.message ?? '(no message)', 120)}`)) },
  ]
  if (report.totals.unpricedCalls > 0) facts.push({ label: 'Unpriced calls', value: `${report.totals.unpricedCalls} (no price known: not in the cost)` })
  return {
    subject,
    facts,
    text: [subject, '', ...facts.map((f) => (f.value.includes('\n') ? `${f.label}:\n  ${f.value.split('\n').join('\n  ')}` : `${f.label}: ${f.value}`))].join('\n'),
    payload: { id: sendId, type: manual ? 'report.sent_now' : 'report.scheduled', ...report, message: subject },
  }
}
