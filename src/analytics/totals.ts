import { formatUsd, parseUsd } from '../lib/money.js'
import { summarizeLatency } from './latency.js'
import type { BucketRow } from './queries.js'
import type { UsageTotals } from './schemas.js'
import { measureValue, MEASURES, REPORTED_MEASURES, type Totals } from '../db/measures.js'

/** Totals as the queries return them, and as every analytics answer renders them. */

export const rate = (part: number, whole: number) => (whole === 0 ? null : part / whole)
export const usd = (decimal: string) => Number(decimal)
export const exactUsd = (decimal: string) => formatUsd(parseUsd(decimal))

const SUMMED = MEASURES.filter((m) => m.group !== 'histogram')

/** The reported measures as numbers (USD as a JS number), keyed by name. */
export function reportedNumbers(t: Totals): Record<string, number> {
  return Object.fromEntries(REPORTED_MEASURES.map((m) => [m.name, m.kind === 'usd' ? usd(String(measureValue(t, m))) : Number(measureValue(t, m))]))
}

export function wireTotals(t: Totals): UsageTotals {
  return {
    ...(reportedNumbers(t) as Pick<UsageTotals, (typeof REPORTED_MEASURES)[number]['name'] & keyof UsageTotals>),
    successes: t.calls - t.failures,
    successRate: rate(t.calls - t.failures, t.calls),
    avgLatencyMs: t.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10,
  } as UsageTotals
}

export const ZERO: Totals = {
  ...(Object.fromEntries(SUMMED.map((m) => [m.name, m.kind === 'usd' ? '0' : m.kind === 'max' ? null : 0])) as Omit<Totals, 'histogram'>),
  histogram: null,
}

/** Adds totals exactly (cost as pico-USD bigints); the histogram is not carried. */
export function addTotals(a: Totals, b: Totals): Totals {
  const sum: Record<string, number | string | null> = {}
  for (const m of SUMMED) {
    const [p, q] = [measureValue(a, m), measureValue(b, m)]
    if (m.kind === 'usd') sum[m.name] = formatUsd(parseUsd(String(p)) + parseUsd(String(q)))
    else if (m.kind === 'max') sum[m.name] = p === null ? q : q === null ? p : Math.max(Number(p), Number(q))
    else sum[m.name] = Number(p) + Number(q)
  }
  return { ...(sum as Omit<Totals, 'histogram'>), histogram: null }
}

/** Relative change; null when there is nothing to compare with. */
export function change(current: number, previous: number): number | null {
  return previous === 0 ? null : (current - previous) / previous
}

export function zeroFilled(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => ({ start: new Date(s).toISOString(), ...wireTotals(byStart.get(s) ?? ZERO) }))
}

/** Zero-filled buckets that also carry the latency percentiles of each bucket. */
export function zeroFilledWithLatency(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => {
    const totals = byStart.get(s) ?? ZERO
    return { start: new Date(s).toISOString(), ...wireTotals(totals), latency: summarizeLatency(totals) }
  })
}
