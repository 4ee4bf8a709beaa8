import { sql, type SQL } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import {
  DAILY_ROLLUPS_NARROWEST_FIRST,
  filterConditions,
  HOURLY_ROLLUP,
  inLatencyBucket,
  LATENCY_BUCKETS,
  type EventFilter,
  type RollupKey,
  type RollupTable,
} from '../db/event-store.js'

/**
 * Exact aggregates over any time range, read mostly from rollups.
 *
 * A range is cut at every bucket boundary (local days, weeks, months of a time zone). Between two
 * cuts, whole UTC days come from usage_daily, the remaining whole UTC hours from usage_hourly, and
 * only the partial hours at the edges from raw usage_events. A rollup row is used only when its
 * whole hour or day lies inside one bucket, so a zone whose offset is not a whole number of hours
 * (Asia/Kolkata, +05:30) reads raw events for the hour its boundary splits, and answers stay exact.
 */

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000

/** [from, to) in epoch ms; -Infinity / Infinity for an open side. */
export interface TimeSpan {
  from: number
  to: number
}

export interface SourcePlan {
  daily: TimeSpan[]
  hourly: TimeSpan[]
  raw: TimeSpan[]
}

const floorTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.floor(t / unit) * unit : t)
const ceilTo = (t: number, unit: number) => (Number.isFinite(t) ? Math.ceil(t / unit) * unit : t)

function push(spans: TimeSpan[], from: number, to: number): void {
  if (from >= to) return
  const last = spans[spans.length - 1]
  if (last && last.to === from) last.to = to
  else spans.push({ from, to })
}

/** Which source answers which part of [from, to), given the bucket boundaries inside it. */
export function planSources(from: number, to: number, cuts: readonly number[] = []): SourcePlan {
  const plan: SourcePlan = { daily: [], hourly: [], raw: [] }
  const points = [from, ...cuts.filter((c) => c > from && c < to).sort((a, b) => a - b), to]
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]]
    const [hourFrom, hourTo] = [ceilTo(a, HOUR_MS), floorTo(b, HOUR_MS)]
    if (hourFrom >= hourTo) {
      push(plan.raw, a, b)
      continue
    }
    push(plan.raw, a, hourFrom)
    const [dayFrom, dayTo] = [ceilTo(hourFrom, DAY_MS), floorTo(hourTo, DAY_MS)]
    if (dayFrom >= dayTo) {
      push(plan.hourly, hourFrom, hourTo)
    } else {
      push(plan.hourly, hourFrom, dayFrom)
      push(plan.daily, dayFrom, dayTo)
      push(plan.hourly, dayTo, hourTo)
    }
    push(plan.raw, hourTo, b)
  }
  return plan
}

/** Every part of the range from raw events: for dimensions no rollup has (metadata keys). */
export const rawOnlyPlan = (from: number, to: number): SourcePlan => ({ daily: [], hourly: [], raw: from < to ? [{ from, to }] : [] })

export type ColumnDimension = 'bot_id' | 'provider' | 'model' | 'request_type'
export type Dimension = { column: ColumnDimension } | { metadataKey: string }

/** How much latency detail to aggregate: histograms cost 35 more sums per row. */
export type LatencyDetail = 'none' | 'average' | 'histogram'

export type BucketUnit = 'hour' | 'day' | 'week' | 'month'

export interface AggregateSpec {
  /** Dimension filters; its from/to are ignored (the plan decides the time ranges). */
  filter: EventFilter
  from: number
  to: number
  dimensions?: Dimension[]
  /** Group by the bucket of `unit` in `tz` too; the plan must then be cut at the bucket starts. */
  bucket?: { unit: BucketUnit; tz: string; starts: readonly number[] }
  latency?: LatencyDetail
}

const ADDITIVE = [
  'calls',
  'failures',
  'input_tokens',
  'output_tokens',
  'total_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'reasoning_tokens',
  'cost',
  'unpriced_calls',
  'unpriced_input_tokens',
  'unpriced_output_tokens',
] as const

/** The measure columns an aggregate of this latency detail has, in select-list order. */
export function measureColumns(latency: LatencyDetail): string[] {
  const columns: string[] = [...ADDITIVE]
  if (latency !== 'none') columns.push('latency_sum_ms', 'latency_count')
  if (latency === 'histogram') columns.push('latency_max_ms', ...LATENCY_BUCKETS.map((b) => b.column))
  return columns
}

/**
 * The select list that aggregates measure columns of that name (a union of sources, or an
 * already aggregated relation being rolled up further).
 */
export function measureAggregates(latency: LatencyDetail): SQL {
  return sql.raw(measureColumns(latency).map((c) => (c === 'latency_max_ms' ? `max(${c}) AS ${c}` : `sum(${c}) AS ${c}`)).join(', '))
}

function rollupMeasures(latency: LatencyDetail): string {
  return measureColumns(latency)
    .map((c) => (c === 'failures' ? 'CASE WHEN success THEN 0 ELSE calls END AS failures' : c))
    .join(', ')
}

function rawMeasures(latency: LatencyDetail): string {
  const raw: Record<string, string> = {
    calls: '1::bigint',
    failures: '(NOT success)::int',
    cost: 'coalesce(cost, 0)',
    unpriced_calls: '(NOT priced)::int',
    unpriced_input_tokens: 'CASE WHEN priced THEN 0 ELSE input_tokens END',
    unpriced_output_tokens: 'CASE WHEN priced THEN 0 ELSE output_tokens END',
    latency_sum_ms: 'coalesce(latency_ms, 0)',
    latency_count: '(latency_ms IS NOT NULL)::int',
    latency_max_ms: 'latency_ms',
  }
  for (const b of LATENCY_BUCKETS) raw[b.column] = `CASE WHEN ${inLatencyBucket(b)} THEN 1 END`
  return measureColumns(latency)
    .map((c) => (raw[c] === undefined ? c : `${raw[c]} AS ${c}`))
    .join(', ')
}

function spansCondition(column: string, spans: TimeSpan[]): SQL {
  const col = sql.raw(column)
  const parts = spans.map((s) => {
    const bounds: SQL[] = []
    if (Number.isFinite(s.from)) bounds.push(sql`${col} >= ${new Date(s.from).toISOString()}`)
    if (Number.isFinite(s.to)) bounds.push(sql`${col} < ${new Date(s.to).toISOString()}`)
    return bounds.length === 0 ? sql`TRUE` : sql`(${sql.join(bounds, sql` AND `)})`
  })
  return sql`(${sql.join(parts, sql` OR `)})`
}

function dimensionExpressions(dimensions: Dimension[]): SQL[] {
  return dimensions.map((d, i) => {
    const alias = sql.raw(`g${i}`)
    return 'column' in d ? sql`${sql.raw(d.column)} AS ${alias}` : sql`metadata ->> ${d.metadataKey} AS ${alias}`
  })
}

/** The key columns a spec filters or groups on. */
function neededKeys(spec: AggregateSpec): RollupKey[] {
  const f = spec.filter
  const keys = new Set<RollupKey>(['success'])
  if (f.botIds) keys.add('bot_id')
  if (f.model !== undefined) keys.add('model')
  if (f.provider !== undefined) keys.add('provider')
  if (f.requestType !== undefined) keys.add('request_type')
  for (const d of spec.dimensions ?? []) if ('column' in d) keys.add(d.column)
  return [...keys]
}

/** The daily rollup with the fewest rows that still has every key the spec needs. */
export function dailyRollupFor(spec: AggregateSpec): RollupTable {
  const needed = neededKeys(spec)
  const table = DAILY_ROLLUPS_NARROWEST_FIRST.find((r) => needed.every((k) => r.keys.includes(k)))
  if (!table) throw new Error(`no daily rollup has keys ${needed.join(', ')}`)
  return table
}

/** The rows of every source the plan needs, with uniform columns: t, g0..gN, measures. */
function unionOfSources(spec: AggregateSpec, plan: SourcePlan): SQL {
  const latency = spec.latency ?? 'none'
  const dims = dimensionExpressions(spec.dimensions ?? [])
  const dimList = dims.length > 0 ? sql`, ${sql.join(dims, sql`, `)}` : sql``
  const where = filterConditions({ ...spec.filter, from: undefined, to: undefined })
  const branches: SQL[] = []
  const rollup = (table: string, time: string, spans: TimeSpan[]) => {
    if (spans.length === 0) return
    branches.push(sql`SELECT ${sql.raw(time)} AS t${dimList}, ${sql.raw(rollupMeasures(latency))}
      FROM ${sql.raw(table)} WHERE ${where} AND ${spansCondition(time, spans)}`)
  }
  rollup(dailyRollupFor(spec).name, 'day', plan.daily)
  rollup(HOURLY_ROLLUP.name, 'hour', plan.hourly)
  if (plan.raw.length > 0) {
    branches.push(sql`SELECT created_at AS t${dimList}, ${sql.raw(rawMeasures(latency))}
      FROM usage_events WHERE ${where} AND ${spansCondition('created_at', plan.raw)}`)
  }
  if (branches.length === 0) {
    // An empty range still yields a well-typed (empty) relation.
    return sql`SELECT created_at AS t${dimList}, ${sql.raw(rawMeasures(latency))} FROM usage_events WHERE FALSE`
  }
  return sql.join(branches, sql` UNION ALL `)
}

/** The plan for a spec: raw only when a dimension needs raw events, else cut at the bucket starts. */
export function planFor(spec: AggregateSpec): SourcePlan {
  if ((spec.dimensions ?? []).some((d) => 'metadataKey' in d)) return rawOnlyPlan(spec.from, spec.to)
  return planSources(spec.from, spec.to, spec.bucket?.starts ?? [])
}

/**
 * One row per (bucket, g0..gN) with the summed measures. Columns: bucket (when bucketed),
 * g0..gN, then the measure columns (see parseTotals).
 */
export function aggregateSql(spec: AggregateSpec, plan: SourcePlan = planFor(spec)): SQL {
  const latency = spec.latency ?? 'none'
  const groups: SQL[] = []
  if (spec.bucket) groups.push(sql`date_trunc(${spec.bucket.unit}, t, ${spec.bucket.tz}) AS bucket`)
  ;(spec.dimensions ?? []).forEach((_, i) => groups.push(sql.raw(`g${i}`)))
  const groupList = groups.length > 0 ? sql`${sql.join(groups, sql`, `)}, ` : sql``
  const groupBy =
    groups.length > 0 ? sql` GROUP BY ${sql.raw(groups.map((_, i) => String(i + 1)).join(', '))}` : sql``
  return sql`SELECT ${groupList}${measureAggregates(latency)} FROM (${unionOfSources(spec, plan)}) sources${groupBy}`
}

/** Summed measures as the drivers return them (bigint as string or number, numeric as string). */
export interface Totals {
  calls: number
  failures: number
  inputTokens: number
  outputTokens: number
  totalTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  /** Exact decimal USD. */
  cost: string
  unpricedCalls: number
  unpricedInputTokens: number
  unpricedOutputTokens: number
  latencySumMs: number
  latencyCount: number
  latencyMaxMs: number | null
  /** Counts per LATENCY_BUCKETS entry, when aggregated with latency 'histogram'. */
  histogram: number[] | null
}

export type SqlValue = string | number | boolean | null | Date
export type SqlRow = Record<string, SqlValue | undefined>

const toNumber = (v: SqlValue | undefined) => (v === null || v === undefined ? 0 : Number(v))

/** Normalizes a numeric as the drivers return it into a plain decimal string. */
export function decimalText(v: SqlValue | undefined): string {
  if (v === null || v === undefined) return '0'
  return String(v)
}

export function parseTotals(row: SqlRow): Totals {
  return {
    calls: toNumber(row.calls),
    failures: toNumber(row.failures),
    inputTokens: toNumber(row.input_tokens),
    outputTokens: toNumber(row.output_tokens),
    totalTokens: toNumber(row.total_tokens),
    cacheReadTokens: toNumber(row.cache_read_tokens),
    cacheWriteTokens: toNumber(row.cache_write_tokens),
    reasoningTokens: toNumber(row.reasoning_tokens),
    cost: decimalText(row.cost),
    unpricedCalls: toNumber(row.unpriced_calls),
    unpricedInputTokens: toNumber(row.unpriced_input_tokens),
    unpricedOutputTokens: toNumber(row.unpriced_output_tokens),
    latencySumMs: toNumber(row.latency_sum_ms),
    latencyCount: toNumber(row.latency_count),
    latencyMaxMs: row.latency_max_ms === null || row.latency_max_ms === undefined ? null : Number(row.latency_max_ms),
    histogram: row[LATENCY_BUCKETS[0].column] === undefined ? null : LATENCY_BUCKETS.map((b) => toNumber(row[b.column])),
  }
}

export function runAggregate(database: Database, spec: AggregateSpec): Promise<SqlRow[]> {
  return database.rows<SqlRow>(aggregateSql(spec))
}
