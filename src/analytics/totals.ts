import { formatUsd, parseUsd } from '../lib/money.js'
import { summarizeLatency } from './latency.js'
import type { BucketRow } from './queries.js'
import type { UsageTotals } from './schemas.js'
import { measureValue, REPORTED_MEASURES, TOTALS_MEASURES, type Totals } from '../db/measures.js'
import { compileRecordBuilder, quoted, type RecordField } from '../lib/record-builder.js'

/** Totals as the queries return them, and as every analytics answer renders them. */

export const rate = (part: number, whole: number) => (whole === 0 ? null : part / whole)
export const usd = (decimal: string) => Number(decimal)
export const exactUsd = (decimal: string) => formatUsd(parseUsd(decimal))


/** The fields of a wire total, computed from Totals `t`: the reported measures (USD as a JS number), then the derived rates. */
const WIRE_FIELDS: RecordField[] = [
  ...REPORTED_MEASURES.map((m) => ({ name: m.name, expression: `${m.kind === 'usd' ? 'usd' : 'Number'}(t[${quoted(m.name)}])` })),
  { name: 'successes', expression: 't.calls - t.failures' },
  { name: 'successRate', expression: 'rate(t.calls - t.failures, t.calls)' },
  { name: 'avgLatencyMs', expression: 't.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10' },
]

// Every answer renders totals per bucket (a 90-day series by model renders ~1000): compiled from
// the measure table into one object literal (compileRecordBuilder), no loops over keys, no spreads.
export const wireTotals = compileRecordBuilder<(t: Totals) => UsageTotals>(['t'], WIRE_FIELDS, { usd, rate })

/** A bucket of a series: its start, then its wire totals. */
const wireBucket = compileRecordBuilder<(start: string, t: Totals) => { start: string } & UsageTotals>(
  ['start', 't'],
  [{ name: 'start', expression: 'start' }, ...WIRE_FIELDS],
  { usd, rate },
)

export const ZERO: Totals = {
  ...(Object.fromEntries(TOTALS_MEASURES.map((m) => [m.name, m.kind === 'usd' ? '0' : m.kind === 'max' ? null : 0])) as Omit<Totals, 'histogram'>),
  histogram: null,
}

/** Adds totals exactly (cost as pico-USD bigints); the histogram is not carried. */
export function addTotals(a: Totals, b: Totals): Totals {
  return sumTotals([a, b])
}

/** The sum of many totals, exactly: each USD measure parsed once and formatted once. */
export function sumTotals(all: readonly Totals[]): Totals {
  const sum: Record<string, number | string | null> = {}
  for (const m of TOTALS_MEASURES) {
    if (m.kind === 'usd') {
      let pico = 0n
      for (const t of all) pico += parseUsd(String(measureValue(t, m)))
      sum[m.name] = formatUsd(pico)
    } else if (m.kind === 'max') {
      let max: number | null = null
      for (const t of all) {
        const v = measureValue(t, m)
        if (v !== null) max = max === null ? Number(v) : Math.max(max, Number(v))
      }
      sum[m.name] = max
    } else {
      let total = 0
      for (const t of all) total += Number(measureValue(t, m))
      sum[m.name] = total
    }
  }
  return { ...(sum as Omit<Totals, 'histogram'>), histogram: null }
}

/** Relative change; null when there is nothing to compare with. */
export function change(current: number, previous: number): number | null {
  return previous === 0 ? null : (current - previous) / previous
}

export function zeroFilled(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => wireBucket(new Date(s).toISOString(), byStart.get(s) ?? ZERO))
}

/** Zero-filled buckets that also carry the latency percentiles of each bucket. */
export function zeroFilledWithLatency(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => {
    const totals = byStart.get(s) ?? ZERO
    return { start: new Date(s).toISOString(), ...wireTotals(totals), latency: summarizeLatency(totals) }
  })
}
