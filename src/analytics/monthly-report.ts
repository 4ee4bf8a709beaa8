import type { FastifyReply } from 'fastify'
import { csvLine } from './csv.js'
import type { MonthlyRow } from './queries.js'
import type { MonthlyReport } from './schemas.js'
import type { Totals } from './sources.js'
import type { Window } from './time-window.js'
import { exactUsd, usd } from './totals.js'

/** Most rows a monthly report may have; more means the caller should filter. */
export const MAX_REPORT_ROWS = 10_000

const REPORT_COLUMNS = [
  'botId',
  'provider',
  'model',
  'calls',
  'failures',
  'inputTokens',
  'outputTokens',
  'totalTokens',
  'cacheReadTokens',
  'cacheWriteTokens',
  'reasoningTokens',
  'cost',
  'unpricedCalls',
]

export function reportMeasures(t: Totals) {
  return {
    calls: t.calls,
    failures: t.failures,
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    totalTokens: t.totalTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    cost: usd(t.cost),
    costExact: exactUsd(t.cost),
    unpricedCalls: t.unpricedCalls,
  }
}

function reportCsvMeasures(t: Totals): (string | number)[] {
  const m = reportMeasures(t)
  return [m.calls, m.failures, m.inputTokens, m.outputTokens, m.totalTokens, m.cacheReadTokens, m.cacheWriteTokens, m.reasoningTokens, m.costExact, m.unpricedCalls]
}

/** Sends the report as JSON, or as CSV with a header row and a final TOTAL row. */
export function sendMonthlyReport(
  reply: FastifyReply,
  report: { month: string; tz: string; window: Window; rows: MonthlyRow[]; totals: Totals },
  format: 'json' | 'csv',
) {
  const { month, tz, window } = report
  if (format === 'csv') {
    const lines = [csvLine(REPORT_COLUMNS)]
    for (const r of report.rows) lines.push(csvLine([r.botId, r.provider, r.model, ...reportCsvMeasures(r.totals)]))
    lines.push(csvLine(['TOTAL', '', '', ...reportCsvMeasures(report.totals)]))
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="usage-${month}.csv"`)
      .send(lines.join(''))
  }
  const body: MonthlyReport = {
    month,
    tz,
    from: window.from.toISOString(),
    to: window.to.toISOString(),
    rows: report.rows.map((r) => ({ botId: r.botId, provider: r.provider, model: r.model, ...reportMeasures(r.totals) })),
    totals: reportMeasures(report.totals),
  }
  return reply.type('application/json; charset=utf-8').send(body)
}
