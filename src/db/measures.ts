/**
 * The one table of measures: what every aggregate of usage events sums up. The rollup columns
 * (db/schema.ts), the rollup writes (usage/rollups.ts), the reads from rollups and raw edges and
 * the parsed totals (analytics/sources.ts), adding totals, their wire form and the report columns
 * (analytics/totals.ts, monthly-report.ts) are all derived from it. Adding a token kind is one
 * entry here, its usage_events column, and a migration.
 */

/**
 * - `count`: a non-negative integer sum (bigint in rollups).
 * - `usd`: an exact decimal sum (numeric(30,12) in rollups), a decimal string in totals.
 * - `max`: the largest value (integer, NULL when there is none).
 */
export type MeasureKind = 'count' | 'usd' | 'max'

/**
 * - `core`: in every aggregate.
 * - `latency`: when a mean latency is asked for.
 * - `histogram`: when percentiles are asked for (the max and the histogram buckets).
 */
export type MeasureGroup = 'core' | 'latency' | 'histogram'

export interface Measure {
  /** Name in Totals and on the wire. */
  readonly name: string
  /** Column in every rollup table and in aggregate SQL results. */
  readonly column: string
  readonly kind: MeasureKind
  readonly group: MeasureGroup
  /** What one usage_events row contributes (SQL over the row's columns). */
  readonly perEvent: string
  /**
   * When the rollups do not store the measure: how a rollup row yields it from its key and
   * stored measures (failures come from the success key and calls).
   */
  readonly fromRollup?: string
  /** The aggregate over a group of events, when it is not the sum of perEvent. */
  readonly ofEvents?: string
  /** Empty buckets are stored as NULL (histogram buckets: NULL costs one bit, zero eight bytes). */
  readonly nullWhenZero?: boolean
  /** Rendered in every wire total (UsageTotals) and in the monthly report. */
  readonly reported?: boolean
  /** In wire totals but not among the monthly report's columns. */
  readonly wireOnly?: boolean
  /** Its description in the API documentation. */
  readonly description?: string
}

const count = <N extends string>(name: N, column: string, perEvent: string) =>
  ({ name, column, kind: 'count', group: 'core', perEvent, reported: true }) as const

/** The measures every aggregate has, in wire and report order. */
export const CORE_MEASURES = [
  { ...count('calls', 'calls', '1::bigint'), ofEvents: 'count(*)' },
  { name: 'failures', column: 'failures', kind: 'count', group: 'core', perEvent: '(NOT success)::int', fromRollup: 'CASE WHEN success THEN 0 ELSE calls END', reported: true },
  count('inputTokens', 'input_tokens', 'input_tokens'),
  count('outputTokens', 'output_tokens', 'output_tokens'),
  count('totalTokens', 'total_tokens', 'total_tokens'),
  count('cacheReadTokens', 'cache_read_tokens', 'cache_read_tokens'),
  count('cacheWriteTokens', 'cache_write_tokens', 'cache_write_tokens'),
  count('reasoningTokens', 'reasoning_tokens', 'reasoning_tokens'),
  {
    name: 'cost',
    column: 'cost',
    kind: 'usd',
    group: 'core',
    perEvent: 'coalesce(cost, 0)',
    reported: true,
    description: 'Summed exactly; unpriced events count with their reported cost or nothing, USD',
  },
  { ...count('unpricedCalls', 'unpriced_calls', '(NOT priced)::int'), description: 'Events the price catalog could not price' },
  { ...count('unpricedInputTokens', 'unpriced_input_tokens', 'CASE WHEN priced THEN 0 ELSE input_tokens END'), wireOnly: true },
  { ...count('unpricedOutputTokens', 'unpriced_output_tokens', 'CASE WHEN priced THEN 0 ELSE output_tokens END'), wireOnly: true },
] as const satisfies readonly Measure[]

export const LATENCY_MEASURES = [
  { name: 'latencySumMs', column: 'latency_sum_ms', kind: 'count', group: 'latency', perEvent: 'coalesce(latency_ms, 0)' },
  { name: 'latencyCount', column: 'latency_count', kind: 'count', group: 'latency', perEvent: '(latency_ms IS NOT NULL)::int' },
] as const satisfies readonly Measure[]

export const LATENCY_MAX_MEASURE = {
  name: 'latencyMaxMs',
  column: 'latency_max_ms',
  kind: 'max',
  group: 'histogram',
  perEvent: 'latency_ms',
} as const satisfies Measure

/**
 * Lower bounds (ms) of the latency histogram kept in every rollup row: bucket i counts calls with
 * LATENCY_BUCKET_LOWER_BOUNDS_MS[i] <= latencyMs < LATENCY_BUCKET_LOWER_BOUNDS_MS[i + 1]; the last
 * bucket is open-ended. Above 100 ms the bounds follow the R10 series (ten per decade, each at most
 * 26% above the previous), so a percentile read from the histogram is off by at most one bucket
 * width: <= 50 ms below 100 ms, <= 26% of the true value from 100 ms to 100 s (docs/analytics.md).
 * Changing this list changes the table layout: it needs a migration and a rollup rebuild.
 */
export const LATENCY_BUCKET_LOWER_BOUNDS_MS = [
  0, 10, 25, 50,
  100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
  1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000,
  10000, 12500, 16000, 20000, 25000, 31500, 40000, 50000, 63000, 80000,
  100000,
] as const

export const latencyBucketColumn = (lowerMs: number) => `latency_ge_${lowerMs}`

export interface LatencyBucket {
  column: string
  lowerMs: number
  /** Exclusive; null for the last, open-ended bucket. */
  upperMs: number | null
}

export const LATENCY_BUCKETS: readonly LatencyBucket[] = LATENCY_BUCKET_LOWER_BOUNDS_MS.map((lowerMs, i) => ({
  column: latencyBucketColumn(lowerMs),
  lowerMs,
  upperMs: i + 1 < LATENCY_BUCKET_LOWER_BOUNDS_MS.length ? LATENCY_BUCKET_LOWER_BOUNDS_MS[i + 1] : null,
}))

/** `latency_ms` falls into the bucket (a SQL boolean over an events row). */
export function inLatencyBucket(bucket: LatencyBucket, latency: string = 'latency_ms'): string {
  return bucket.upperMs === null ? `${latency} >= ${bucket.lowerMs}` : `${latency} >= ${bucket.lowerMs} AND ${latency} < ${bucket.upperMs}`
}

/** One measure per histogram bucket: the calls whose latency falls into it. */
export const HISTOGRAM_MEASURES: readonly Measure[] = LATENCY_BUCKETS.map((b) => ({
  name: b.column,
  column: b.column,
  kind: 'count',
  group: 'histogram',
  perEvent: `CASE WHEN ${inLatencyBucket(b)} THEN 1 END`,
  nullWhenZero: true,
}))

/** Every measure, in select-list order. */
export const MEASURES: readonly Measure[] = [...CORE_MEASURES, ...LATENCY_MEASURES, LATENCY_MAX_MEASURE, ...HISTOGRAM_MEASURES]

/** The measures a rollup table stores (all but those derived from its key). */
export const STORED_MEASURES: readonly Measure[] = MEASURES.filter((m) => m.fromRollup === undefined)

/** How much latency detail an aggregate carries: histograms cost 35 more sums per row. */
export type LatencyDetail = 'none' | 'average' | 'histogram'

const GROUPS_OF: Record<LatencyDetail, readonly MeasureGroup[]> = {
  none: ['core'],
  average: ['core', 'latency'],
  histogram: ['core', 'latency', 'histogram'],
}

/** The measures an aggregate of this latency detail has, in select-list order. */
export function measuresFor(latency: LatencyDetail): readonly Measure[] {
  const groups = GROUPS_OF[latency]
  return MEASURES.filter((m) => groups.includes(m.group))
}

/** The measures in every wire total, in order. */
export const REPORTED_MEASURES: readonly Measure[] = MEASURES.filter((m) => m.reported === true)

/** The monthly report's measure columns, in order. */
export const REPORT_MEASURES: readonly Measure[] = REPORTED_MEASURES.filter((m) => m.wireOnly !== true)

type Core = (typeof CORE_MEASURES)[number]
type Latency = (typeof LATENCY_MEASURES)[number]

/** Summed measures of an aggregate, as parsed from the drivers' rows. */
export type Totals = { [M in Core | Latency as M['name']]: M['kind'] extends 'usd' ? string : number } & {
  latencyMaxMs: number | null
  /** Counts per LATENCY_BUCKETS entry, when aggregated with latency 'histogram'. */
  histogram: number[] | null
}

/** Names of the measures in every aggregate (all of them reported). */
export type CoreMeasureName = Core['name']

/** Names of the monthly report's measures. */
export type ReportMeasureName = Exclude<CoreMeasureName, 'unpricedInputTokens' | 'unpricedOutputTokens'>

/** A measure's value in totals, by the measure's name. */
export const measureValue = (t: Totals, m: Measure): number | string | null => (t as unknown as Record<string, number | string | null>)[m.name]
