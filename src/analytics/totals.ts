import { formatUsd, parseUsd } from '../lib/money.js'
import { summarizeLatency } from './latency.js'
import type { BucketRow } from './queries.js'
import type { UsageTotals } from './schemas.js'
import { measureValue, REPORTED_MEASURES, TOTALS_MEASURES, type Totals } from '../db/measures.js'

/** Totals as the queries return them, and as every analytics answer renders them. */

export const rate = (part: number, whole: number) => (whole === 0 ? null : part / whole)
export const usd = (decimal: string) => Number(decimal)
export const exactUsd = (decimal: string) => formatUsd(parseUsd(decimal))


/** The reported measures as numbers (USD as a JS number), keyed by name. */
export function reportedNumbers(t: Totals): Record<string, number> {
  const numbers: Record<string, number> = {}
  for (const m of REPORTED_MEASURES) numbers[m.name] = m.kind === 'usd' ? usd(String(measureValue(t, m))) : Number(measureValue(t, m))
  return numbers
}

// Every answer renders totals per bucket (a 90-day series by model renders ~1000): one plain loop, no spreads.
export function wireTotals(t: Totals): UsageTotals {
  const wire = reportedNumbers(t)
  wire.successes = t.calls - t.failures
  ;(wire as Record<string, number | null>).successRate = rate(t.calls - t.failures, t.calls)
  ;(wire as Record<string, number | null>).avgLatencyMs = t.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10
  return wire as unknown as UsageTotals
}

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

const ZERO_WIRE = wireTotals(ZERO)

export function zeroFilled(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => {
    const totals = byStart.get(s)
    return { start: new Date(s).toISOString(), ...(totals === undefined ? ZERO_WIRE : wireTotals(totals)) }
  })
}

/** Zero-filled buckets that also carry the latency percentiles of each bucket. */
export function zeroFilledWithLatency(starts: number[], rows: BucketRow[]) {
  const byStart = new Map(rows.map((r) => [r.bucket, r.totals]))
  return starts.map((s) => {
    const totals = byStart.get(s) ?? ZERO
    return { start: new Date(s).toISOString(), ...wireTotals(totals), latency: summarizeLatency(totals) }
  })
}
