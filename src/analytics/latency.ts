import { LATENCY_BUCKETS } from '../db/measures.js'

export interface LatencySummary {
  /** Calls that reported a latency. */
  samples: number
  avgMs: number | null
  maxMs: number | null
  p50Ms: number | null
  p95Ms: number | null
  p99Ms: number | null
}

/**
 * Percentile `p` (0..1) from bucket counts: finds the bucket holding the sample of rank
 * ceil(p * n) and interpolates linearly inside it. The true percentile lies in the same bucket,
 * so the error is at most that bucket's width (see LATENCY_BUCKET_LOWER_BOUNDS_MS). The
 * open-ended last bucket is bounded by the largest latency seen.
 */
export function percentileFromHistogram(counts: readonly number[], p: number, maxMs: number | null): number | null {
  const n = counts.reduce((a, b) => a + b, 0)
  if (n === 0) return null
  const rank = Math.max(1, Math.ceil(p * n))
  let before = 0
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i]
    if (inBucket === 0 || before + inBucket < rank) {
      before += inBucket
      continue
    }
    const bucket = LATENCY_BUCKETS[i]
    const upper = Math.max(bucket.lowerMs, Math.min(bucket.upperMs ?? Infinity, (maxMs ?? bucket.lowerMs) + 1))
    const estimate = bucket.lowerMs + ((rank - before) / inBucket) * (upper - bucket.lowerMs)
    return Math.round(maxMs === null ? estimate : Math.min(estimate, maxMs))
  }
  return null
}

export function summarizeLatency(t: { latencySumMs: number; latencyCount: number; latencyMaxMs: number | null; histogram: number[] | null }): LatencySummary {
  const counts = t.histogram ?? []
  return {
    samples: t.latencyCount,
    avgMs: t.latencyCount === 0 ? null : Math.round((t.latencySumMs / t.latencyCount) * 10) / 10,
    maxMs: t.latencyMaxMs,
    p50Ms: percentileFromHistogram(counts, 0.5, t.latencyMaxMs),
    p95Ms: percentileFromHistogram(counts, 0.95, t.latencyMaxMs),
    p99Ms: percentileFromHistogram(counts, 0.99, t.latencyMaxMs),
  }
}

export interface HistogramBucket {
  lowerMs: number
  upperMs: number | null
  count: number
}

/** The non-empty buckets, for clients that draw the distribution themselves. */
export function histogramBuckets(counts: readonly number[] | null): HistogramBucket[] {
  return (counts ?? []).flatMap((count, i) => (count === 0 ? [] : [{ lowerMs: LATENCY_BUCKETS[i].lowerMs, upperMs: LATENCY_BUCKETS[i].upperMs, count }]))
}
