import type { FastifyReply } from 'fastify'
import { csvLine } from './csv.js'
import type { MonthlyRow } from './queries.js'
import type { MonthlyReport } from './schemas.js'
import { measureValue, REPORT_MEASURES, type Totals } from '../db/measures.js'
import type { Window } from './time-window.js'
import { exactUsd, usd } from './totals.js'

/** Most rows a monthly report may have; more means the caller should filter. */
export const MAX_REPORT_ROWS = 10_000

const REPORT_COLUMNS = ['botId', 'provider', 'model', ...REPORT_MEASURES.map((m) => m.name)]

/** The report's measures of one row: the measure table's report columns, the cost also exact. */
function reportMeasures(t: Totals): MonthlyReport['totals'] {
  const measures: Record<string, number | string> = {}
  for (const m of REPORT_MEASURES) {
    if (m.kind === 'usd') {
      measures[m.name] = usd(String(measureValue(t, m)))
      measures[`${m.name}Exact`] = exactUsd(String(measureValue(t, m)))
    } else measures[m.name] = Number(measureValue(t, m))
  }
  return measures as MonthlyReport['totals']
}

/** CSV cells of a row's measures, in REPORT_COLUMNS order; money as exact decimals. */
const reportCsvMeasures = (t: Totals): (string | number)[] =>
  REPORT_MEASURES.map((m) => (m.kind === 'usd' ? exactUsd(String(measureValue(t, m))) : Number(measureValue(t, m))))

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
