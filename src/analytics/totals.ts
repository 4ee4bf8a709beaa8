import { formatUsd, parseUsd } from '../lib/money.js'
import { summarizeLatency } from './latency.js'
import type { BucketRow } from './queries.js'
import type { UsageTotals } from './schemas.js'
import type { Totals } from './sources.js'

/** Totals as the queries return them, and as every analytics answer renders them. */

export const rate = (part: number, whole: number) => (whole === 0 ? null : part / whole)
export const usd = (decimal: string) => Number(decimal)
export const exactUsd = (decimal: string) => formatUsd(parseUsd(decimal))

export function wireTotals(t: Totals): UsageTotals {
  return {
    calls: t.calls,
    successes: t.calls - t.failures,
    failures: t.failures,
    successRate: rate(t.calls - t.failures, t.calls),
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    totalTokens: t.totalTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    cost: usd(t.cost),
    unpricedCalls: t.unpricedCalls,
    unpricedInputTokens: t.unpricedInputTokens,
    unpricedOutputTokens: t.unpricedOutputTokens,
    avgLatencyMs: t.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10,
  }
}

export const ZERO: Totals = {
  calls: 0,
  failures: 0,
  inputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  reasoningTokens: 0,
  cost: '0',
  unpricedCalls: 0,
  unpricedInputTokens: 0,
  unpricedOutputTokens: 0,
  latencySumMs: 0,
  latencyCount: 0,
  latencyMaxMs: null,
  histogram: null,
}

/** Adds totals exactly (cost as pico-USD bigints). */
export function addTotals(a: Totals, b: Totals): Totals {
  return {
    calls: a.calls + b.calls,
    failures: a.failures + b.failures,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    cost: formatUsd(parseUsd(a.cost) + parseUsd(b.cost)),
    unpricedCalls: a.unpricedCalls + b.unpricedCalls,
    unpricedInputTokens: a.unpricedInputTokens + b.unpricedInputTokens,
    unpricedOutputTokens: a.unpricedOutputTokens + b.unpricedOutputTokens,
    latencySumMs: a.latencySumMs + b.latencySumMs,
    latencyCount: a.latencyCount + b.latencyCount,
    latencyMaxMs: a.latencyMaxMs === null ? b.latencyMaxMs : b.latencyMaxMs === null ? a.latencyMaxMs : Math.max(a.latencyMaxMs, b.latencyMaxMs),
    histogram: null,
  }
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
